package sfu_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
)

// liveness bounds how long a test waits for something that must happen;
// it is a deadlock guard, not a performance threshold.
const liveness = 30 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSFU(t *testing.T, mutate func(*sfu.Config)) *sfu.SFU {
	t.Helper()
	cfg := sfu.DefaultConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	cfg.TCPAddr = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := sfu.New(cfg, quiet())
	if err != nil {
		t.Fatalf("start SFU: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// client is a participant's browser played by a pion PeerConnection: it
// offers its own audio and video first, answers the server's offers and
// counts the packets it receives per publishing participant and kind.
type client struct {
	t    *testing.T
	name string
	pc   *webrtc.PeerConnection
	peer *sfu.Peer

	video, audio *webrtc.TrackLocalStaticSample
	layers       []*webrtc.TrackLocalStaticRTP
	simSender    *webrtc.RTPSender

	mu        sync.Mutex
	events    []signaling.MediaEvent
	received  map[string]*atomic.Uint64 // "<stream id> <kind>"
	jumps     map[string]int            // sequence number jumps seen
	hold      atomic.Bool               // keep the server's offers in held
	held      []signaling.Description
	connected chan struct{}
	offers    atomic.Int32
	ufrags    map[string]bool // of the server's descriptions so far, in event order
	stop      chan struct{}
	wg        sync.WaitGroup
}

type clientOpts struct {
	config   webrtc.Configuration
	networks []webrtc.NetworkType
	noMedia  bool
	// simulcast publishes a second video track in three rid layers
	// (q, h, f) that sendSimulcast feeds.
	simulcast bool
}

func newClient(t *testing.T, s *sfu.SFU, room, name string, o clientOpts) *client {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if o.networks == nil {
		o.networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	se.SetNetworkTypes(o.networks)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(o.config)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{
		t: t, name: name, pc: pc, received: map[string]*atomic.Uint64{}, jumps: map[string]int{},
		connected: make(chan struct{}), stop: make(chan struct{}),
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(c.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		key := tr.StreamID() + " " + tr.ID() // our clients name their tracks "audio", "video" and "screen"
		n := c.counter(key)
		var last uint16
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if n.Add(1) > 1 {
				if jump := p.SequenceNumber - last; jump > 50 && jump < 65000 {
					c.mu.Lock()
					c.jumps[key]++
					c.mu.Unlock()
				}
			}
			last = p.SequenceNumber
		}
	})
	if o.simulcast {
		c.addSimulcast()
	}
	if !o.noMedia {
		c.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam")
		if err != nil {
			t.Fatal(err)
		}
		c.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cam")
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range []webrtc.TrackLocal{c.video, c.audio} {
			sender, err := pc.AddTrack(tr)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					if _, _, err := sender.ReadRTCP(); err != nil {
						return
					}
				}
			}()
		}
	}

	mp, err := s.Connect(context.Background(), room, name, c.onEvent)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	c.peer = mp.(*sfu.Peer) //nolint:forcetypeassert // the SFU's own type
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		_ = c.peer.AddCandidate(signaling.Candidate{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex})
	})
	t.Cleanup(c.close)

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := c.peer.Remote(context.Background(), signaling.Description{Type: "offer", SDP: offer.SDP}); err != nil {
		t.Fatalf("%s's offer: %v", name, err)
	}
	return c
}

func (c *client) counter(key string) *atomic.Uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.received[key]
	if n == nil {
		n = &atomic.Uint64{}
		c.received[key] = n
	}
	return n
}

// got is how many packets of kind ("video", "audio") from participant
// arrived.
func (c *client) got(participant, kind string) uint64 {
	return c.counter(participant + " " + kind).Load()
}

// onEvent plays the browser's side of the protocol.
func (c *client) onEvent(e signaling.MediaEvent) {
	c.mu.Lock()
	c.events = append(c.events, e)
	early := ""
	switch {
	case e.Kind == signaling.EventDescription:
		if c.ufrags == nil {
			c.ufrags = map[string]bool{}
		}
		c.ufrags[ufrag(e.Description.SDP)] = true
	case e.Kind == signaling.EventCandidate && e.Candidate.Candidate != "":
		// A browser drops a candidate whose ufrag is not its current
		// description's: the server must send a generation's candidates
		// after the description that introduced it. (A late one of an
		// older generation is dropped harmlessly.)
		if u := candidateUfrag(*e.Candidate); u != "" && !c.ufrags[u] {
			early = u
		}
	}
	c.mu.Unlock()
	if early != "" {
		c.fail("%s: a candidate of ufrag %s came before the description that introduced it", c.name, early)
	}
	select {
	case <-c.stop:
		return // leaving: renegotiation no longer matters
	default:
	}
	switch e.Kind {
	case signaling.EventDescription:
		d := e.Description
		if d.Type == "answer" {
			if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
				c.fail("%s: apply answer: %v", c.name, err)
			}
			return
		}
		c.offers.Add(1)
		if c.hold.Load() {
			c.mu.Lock()
			c.held = append(c.held, *d)
			c.mu.Unlock()
			return
		}
		c.answer(d)
	case signaling.EventCandidate:
		if e.Candidate.Candidate == "" {
			return
		}
		_ = c.pc.AddICECandidate(webrtc.ICECandidateInit{
			Candidate: e.Candidate.Candidate, SDPMid: e.Candidate.SDPMid, SDPMLineIndex: e.Candidate.SDPMLineIndex,
		})
	case signaling.EventQuality, signaling.EventAudioOnly, signaling.EventConnection:
	}
}

// answer applies a server offer and answers it.
func (c *client) answer(d *signaling.Description) {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
		c.fail("%s: apply offer: %v", c.name, err)
		return
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		c.fail("%s: answer: %v", c.name, err)
		return
	}
	if err := c.pc.SetLocalDescription(answer); err != nil {
		c.fail("%s: set answer: %v", c.name, err)
		return
	}
	if err := c.peer.Remote(context.Background(), signaling.Description{Type: "answer", SDP: answer.SDP}); err != nil {
		c.fail("%s: send answer: %v", c.name, err)
	}
}

// fail reports a protocol error, unless the client is leaving (then its
// connection closing under a renegotiation is expected).
func (c *client) fail(format string, args ...any) {
	select {
	case <-c.stop:
	default:
		c.t.Errorf(format, args...)
	}
}

// heard reports whether the client got an event of kind with quality q.
func (c *client) heard(kind signaling.MediaEventKind, q string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.Kind == kind && string(e.Quality) == q {
			return true
		}
	}
	return false
}

// audioOnlyEvents are the EventAudioOnly the client has heard.
func (c *client) audioOnlyEvents() []signaling.MediaEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []signaling.MediaEvent
	for _, e := range c.events {
		if e.Kind == signaling.EventAudioOnly {
			out = append(out, e)
		}
	}
	return out
}

// send starts sending VP8 keyframe-sized video (30 fps) and Opus (50
// packets/s) until the client closes.
func (c *client) send() {
	frame := make([]byte, 1000) // all zero: the VP8 P bit is 0, a keyframe
	opus := make([]byte, 80)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			_ = c.audio.WriteSample(media.Sample{Data: opus, Duration: 20 * time.Millisecond})
			if i%2 == 0 {
				_ = c.video.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond})
			}
		}
	}()
}

func (c *client) waitConnected() {
	c.t.Helper()
	select {
	case <-c.connected:
	case <-time.After(liveness):
		c.t.Fatalf("%s never connected", c.name)
	}
}

func (c *client) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	_ = c.peer.Close()
	_ = c.pc.Close()
}

// eventually polls cond until it holds or liveness runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exchanges waits until every client has received more than n video and
// audio packets from every other.
func exchanges(t *testing.T, n uint64, cs ...*client) {
	t.Helper()
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			eventually(t, a.name+" receives "+b.name, func() bool {
				return a.got(b.name, "video") > n && a.got(b.name, "audio") > n
			})
		}
	}
}

func hasRelayCandidate(sdp string) bool { return strings.Contains(sdp, "typ relay") }

// candidateUfrag is the ufrag a candidate names: its usernameFragment,
// or the "ufrag" extension of its line.
func candidateUfrag(c signaling.Candidate) string {
	if c.UsernameFragment != nil && *c.UsernameFragment != "" {
		return *c.UsernameFragment
	}
	f := strings.Fields(c.Candidate)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "ufrag" {
			return f[i+1]
		}
	}
	return ""
}
