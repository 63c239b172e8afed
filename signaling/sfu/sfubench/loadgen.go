package sfubench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
)

// Options shape one run.
type Options struct {
	// Command starts the SFU process (Serve on its stdin and stdout).
	Command []string
	// Visits is the number of concurrent 1:1 visits (two peers each).
	Visits int
	// Warmup runs before, Duration is the measured window.
	Warmup, Duration time.Duration
	// VideoPPS, VideoSize, AudioPPS, AudioSize: what each peer sends
	// (default 57 packets/s of 1,100 bytes, about 500 kbit/s, and 50 of
	// 100 bytes).
	VideoPPS, AudioPPS   float64
	VideoSize, AudioSize int
}

// Result is one run's figures.
type Result struct {
	Visits, Participants int
	Window               time.Duration
	NominalPPS           float64 // what the peers are paced to send
	SentPPS              float64 // peers → SFU
	ForwardedPPS         float64 // SFU → peers, as the SFU counts
	ReceivedPPS          float64 // arrived at the peers
	Loss                 float64 // 1 - received/sent in the window
	SFUCores             float64 // CPU seconds of the SFU process per second
	PPSPerCore           float64 // ForwardedPPS / SFUCores
	GeneratorCores       float64
	RSSIdleKiB           int64
	RSSLoadedKiB         int64
	KiBPerParticipant    float64
	AudioOnly            int // peers the SFU had put in audio only
	ConnectTime          time.Duration
}

func (o *Options) defaults() {
	if o.VideoPPS == 0 {
		o.VideoPPS = 57
	}
	if o.VideoSize == 0 {
		o.VideoSize = 1100
	}
	if o.AudioPPS == 0 {
		o.AudioPPS = 50
	}
	if o.AudioSize == 0 {
		o.AudioSize = 100
	}
}

// Run starts the SFU process, connects Visits visits, lets media flow for
// Warmup and measures for Duration.
func Run(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	res := Result{Visits: o.Visits, Participants: 2 * o.Visits}
	if o.Visits < 1 || len(o.Command) == 0 {
		return res, errors.New("sfubench: need visits and a command")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	child, err := startChild(ctx, o.Command)
	if err != nil {
		return res, err
	}
	defer child.stop()
	time.Sleep(300 * time.Millisecond)
	res.RSSIdleKiB = rssKiB(child.cmd.Process.Pid)

	api, err := clientAPI()
	if err != nil {
		return res, err
	}
	start := time.Now()
	clients := make([]*peer, 0, res.Participants)
	for v := range o.Visits {
		for _, side := range []string{"a", "b"} {
			c, err := newPeer(api, child, fmt.Sprintf("v%d%s", v, side), fmt.Sprintf("visit-%d", v))
			if err != nil {
				return res, err
			}
			clients = append(clients, c)
		}
	}
	defer func() {
		for _, c := range clients {
			_ = c.pc.Close()
		}
	}()
	for _, c := range clients {
		child.send(message{Op: "admit", ID: c.id})
	}
	stopSend := make(chan struct{})
	var sendWG sync.WaitGroup
	shards := max(1, runtime.GOMAXPROCS(0))
	for i := range shards {
		var mine []*peer
		for j := i; j < len(clients); j += shards {
			mine = append(mine, clients[j])
		}
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			pace(mine, o, stopSend)
		}()
	}
	defer func() { close(stopSend); sendWG.Wait() }()

	if err := waitFlowing(ctx, clients, child); err != nil {
		return res, err
	}
	res.ConnectTime = time.Since(start)
	select {
	case <-time.After(o.Warmup):
	case <-ctx.Done():
		return res, ctx.Err()
	}

	child.send(message{Op: "window", Start: true})
	s0, err := child.stats(ctx)
	if err != nil {
		return res, err
	}
	sent0, recv0 := totals(clients)
	cpu0, self0 := procCPU(child.cmd.Process.Pid), selfCPU()
	t0 := time.Now()
	select {
	case <-time.After(o.Duration):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	s1, err := child.stats(ctx)
	if err != nil {
		return res, err
	}
	child.send(message{Op: "window"})
	sent1, recv1 := totals(clients)
	cpu1, self1 := procCPU(child.cmd.Process.Pid), selfCPU()
	window := time.Since(t0)
	res.RSSLoadedKiB = rssKiB(child.cmd.Process.Pid)

	secs := window.Seconds()
	res.Window = window
	res.NominalPPS = float64(res.Participants) * (o.VideoPPS + o.AudioPPS)
	res.SentPPS = float64(sent1-sent0) / secs
	res.ForwardedPPS = float64(s1.Out-s0.Out) / secs
	res.ReceivedPPS = float64(recv1-recv0) / secs
	if sent1 > sent0 {
		res.Loss = max(0, 1-float64(recv1-recv0)/float64(sent1-sent0))
	}
	res.SFUCores = (cpu1 - cpu0).Seconds() / secs
	if res.SFUCores > 0 {
		res.PPSPerCore = res.ForwardedPPS / res.SFUCores
	}
	res.GeneratorCores = (self1 - self0).Seconds() / secs
	res.KiBPerParticipant = float64(res.RSSLoadedKiB-res.RSSIdleKiB) / float64(res.Participants)
	res.AudioOnly = s1.AudioOnly
	return res, nil
}

func totals(cs []*peer) (sent, received uint64) {
	for _, c := range cs {
		sent += c.sent.Load()
		received += c.recvVideo.Load() + c.recvAudio.Load()
	}
	return sent, received
}

func waitFlowing(ctx context.Context, cs []*peer, child *child) error {
	deadline := time.Now().Add(2*time.Minute + time.Duration(len(cs))*200*time.Millisecond)
	for {
		ok := true
		for _, c := range cs {
			if c.recvVideo.Load() == 0 || c.recvAudio.Load() == 0 {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if err := child.failed(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			n := 0
			for _, c := range cs {
				if c.recvVideo.Load() > 0 && c.recvAudio.Load() > 0 {
					n++
				}
			}
			return fmt.Errorf("sfubench: only %d of %d peers receive media", n, len(cs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pace sends every peer's audio and video at their rates, in 10 ms
// rounds.
func pace(cs []*peer, o Options, stop <-chan struct{}) {
	const round = 10 * time.Millisecond
	video := make([]byte, o.VideoSize)
	video[0] = 0x10 // VP8 descriptor S=1, PID 0; frame byte 0: a keyframe
	audio := make([]byte, o.AudioSize)
	vPer, aPer := o.VideoPPS*round.Seconds(), o.AudioPPS*round.Seconds()
	t := time.NewTicker(round)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, c := range cs {
			c.vDue += vPer
			for c.vDue >= 1 {
				c.vDue--
				c.vSeq++
				if c.vSeq%2 == 0 {
					c.vTS += 3000
				}
				c.write(c.video, &rtp.Packet{Header: rtp.Header{
					Version: 2, PayloadType: 96, SequenceNumber: c.vSeq, Timestamp: c.vTS, Marker: c.vSeq%2 == 1,
				}, Payload: video})
			}
			c.aDue += aPer
			for c.aDue >= 1 {
				c.aDue--
				c.aSeq++
				c.aTS += 960
				c.write(c.audio, &rtp.Packet{Header: rtp.Header{
					Version: 2, PayloadType: 111, SequenceNumber: c.aSeq, Timestamp: c.aTS,
				}, Payload: audio})
			}
		}
	}
}

// peer is one simulated participant.
type peer struct {
	id           string
	pc           *webrtc.PeerConnection
	child        *child
	video, audio *webrtc.TrackLocalStaticRTP

	sent, recvVideo, recvAudio atomic.Uint64

	// Only the pacing goroutine touches these.
	vDue, aDue float64
	vSeq, aSeq uint16
	vTS, aTS   uint32
}

func (c *peer) write(t *webrtc.TrackLocalStaticRTP, p *rtp.Packet) {
	if t.WriteRTP(p) == nil {
		c.sent.Add(1)
	}
}

func clientAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("sfubench: codecs: %w", err)
	}
	// What a browser does that the SFU depends on: receiver and sender
	// reports, and transport-cc feedback for the SFU's estimator. No NACK
	// and no stats interceptor: the generator shares the machine with the
	// SFU and must stay cheap.
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("sfubench: interceptors: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, fmt.Errorf("sfubench: interceptors: %w", err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

func newPeer(api *webrtc.API, ch *child, id, room string) (*peer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfubench: peer connection: %w", err)
	}
	c := &peer{id: id, pc: pc, child: ch}
	c.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", id)
	if err != nil {
		return nil, fmt.Errorf("sfubench: track: %w", err)
	}
	c.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", id)
	if err != nil {
		return nil, fmt.Errorf("sfubench: track: %w", err)
	}
	for _, t := range []webrtc.TrackLocal{c.video, c.audio} {
		s, err := pc.AddTrack(t)
		if err != nil {
			return nil, fmt.Errorf("sfubench: add track: %w", err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := s.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		n := &c.recvAudio
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			n = &c.recvVideo
		}
		buf := make([]byte, 1500)
		for {
			if _, _, err := t.Read(buf); err != nil {
				return
			}
			n.Add(1)
		}
	})
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		ch.send(message{Op: "candidate", ID: id, Candidate: &signaling.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex,
		}})
	})
	ch.register(id, c.onEvent)
	ch.send(message{Op: "connect", ID: id, Room: room})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("sfubench: offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("sfubench: offer: %w", err)
	}
	ch.send(message{Op: "remote", ID: id, Desc: &signaling.Description{Type: "offer", SDP: offer.SDP}})
	return c, nil
}

// onEvent answers the SFU's offers and takes its answers and candidates.
func (c *peer) onEvent(e *event) {
	switch e.Kind {
	case signaling.EventDescription:
		d := e.Description
		if d.Type == "answer" {
			_ = c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP})
			return
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
			return
		}
		answer, err := c.pc.CreateAnswer(nil)
		if err != nil {
			return
		}
		if err := c.pc.SetLocalDescription(answer); err != nil {
			return
		}
		c.child.send(message{Op: "remote", ID: c.id, Desc: &signaling.Description{Type: "answer", SDP: answer.SDP}})
	case signaling.EventCandidate:
		if e.Candidate != nil && e.Candidate.Candidate != "" {
			_ = c.pc.AddICECandidate(webrtc.ICECandidateInit{
				Candidate: e.Candidate.Candidate, SDPMid: e.Candidate.SDPMid, SDPMLineIndex: e.Candidate.SDPMLineIndex,
			})
		}
	case signaling.EventQuality, signaling.EventAudioOnly, signaling.EventConnection:
	}
}

// child is the SFU process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser

	mu       sync.Mutex
	enc      *json.Encoder
	handlers map[string]func(*event)
	statsCh  chan message
	err      error
	done     chan struct{}
}

func startChild(ctx context.Context, command []string) (*child, error) {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...) //nolint:gosec // our own binary
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("sfubench: stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sfubench: stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sfubench: start the SFU: %w", err)
	}
	c := &child{
		cmd: cmd, in: in, enc: json.NewEncoder(in), handlers: map[string]func(*event){},
		statsCh: make(chan message, 1), done: make(chan struct{}),
	}
	go c.read(out)
	return c, nil
}

func (c *child) register(id string, f func(*event)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[id] = f
}

func (c *child) send(m message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.enc.Encode(m)
}

// read dispatches the SFU's lines: events in order to their peer.
func (c *child) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		switch m.Op {
		case "event":
			c.mu.Lock()
			h := c.handlers[m.ID]
			c.mu.Unlock()
			if h != nil && m.Event != nil {
				h(m.Event)
			}
		case "stats":
			c.statsCh <- m
		case "error":
			c.mu.Lock()
			if c.err == nil {
				c.err = fmt.Errorf("sfubench: SFU: %s: %s", m.ID, m.Error)
			}
			c.mu.Unlock()
		}
	}
}

func (c *child) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *child) stats(ctx context.Context) (message, error) {
	c.send(message{Op: "stats"})
	select {
	case m := <-c.statsCh:
		return m, nil
	case <-c.done:
		return message{}, errors.New("sfubench: the SFU process ended")
	case <-ctx.Done():
		return message{}, ctx.Err()
	}
}

func (c *child) stop() {
	_ = c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	_ = c.cmd.Wait()
}

// procCPU is the user+system CPU time of process pid (/proc/pid/stat).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssKiB is the resident set of process pid (/proc/pid/status VmRSS).
func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
