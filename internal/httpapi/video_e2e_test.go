package httpapi_test

import (
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
)

// browser is a participant's browser played by a pion PeerConnection that
// speaks the visit protocol over the server's real websocket: it offers
// its audio and video after joining, answers the server's offers, trickles
// candidates both ways and counts the packets it receives per publishing
// participant and kind.
type browser struct {
	t      *testing.T
	name   string
	ws     *wsClient
	pc     *webrtc.PeerConnection
	audio  *webrtc.TrackLocalStaticSample
	video  *webrtc.TrackLocalStaticSample
	events chan signaling.Message // everything but offer, answer and candidate

	mu        sync.Mutex
	received  map[string]*atomic.Uint64 // "<participant> <kind>"
	connected chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
}

func newBrowser(t *testing.T, s *videoServer, a joinAnswer) *browser {
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
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{
		t: t, name: a.Participant, pc: pc, events: make(chan signaling.Message, 256),
		received: map[string]*atomic.Uint64{}, connected: make(chan struct{}), stop: make(chan struct{}),
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(b.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		from, err := url.PathUnescape(tr.StreamID()) // the SFU names streams by participant
		if err != nil {
			from = tr.StreamID()
		}
		n := b.counter(from + " " + tr.Kind().String())
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			n.Add(1)
		}
	})
	b.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cam")
	if err != nil {
		t.Fatal(err)
	}
	b.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cam")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{b.video, b.audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	b.ws = s.dial(t, a.WS)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		b.ws.send(signaling.Message{Type: signaling.TypeCandidate, Candidate: &signaling.Candidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
		}})
	})
	b.wg.Add(1)
	go b.pump()
	t.Cleanup(b.close)

	b.ws.send(signaling.Message{Type: signaling.TypeJoin, Token: a.Token})
	if m := b.expect(signaling.TypeJoined); m.Self == nil || m.Self.ID != a.Participant {
		t.Fatalf("joined %+v", m)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	b.ws.send(signaling.Message{Type: signaling.TypeOffer, Description: &signaling.Description{Type: "offer", SDP: offer.SDP}})
	b.send()
	return b
}

// pump plays the browser's side of negotiation and hands every other
// message to the test.
func (b *browser) pump() {
	defer b.wg.Done()
	defer close(b.events)
	for m := range b.ws.msgs {
		switch m.Type { //nolint:exhaustive // the rest go to the test
		case signaling.TypeAnswer:
			if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.Description.SDP}); err != nil {
				b.fail("%s: apply answer: %v", b.name, err)
			}
		case signaling.TypeOffer:
			b.answer(m.Description.SDP)
		case signaling.TypeCandidate:
			if m.Candidate.Candidate != "" {
				_ = b.pc.AddICECandidate(webrtc.ICECandidateInit{
					Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex,
				})
			}
		default:
			b.events <- m
		}
	}
}

func (b *browser) answer(sdp string) {
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		b.fail("%s: apply offer: %v", b.name, err)
		return
	}
	ans, err := b.pc.CreateAnswer(nil)
	if err != nil {
		b.fail("%s: answer: %v", b.name, err)
		return
	}
	if err := b.pc.SetLocalDescription(ans); err != nil {
		b.fail("%s: set answer: %v", b.name, err)
		return
	}
	b.ws.send(signaling.Message{Type: signaling.TypeAnswer, Description: &signaling.Description{Type: "answer", SDP: ans.SDP}})
}

// fail reports a negotiation error unless the browser is closing or the
// server closed the connection (the visit ended).
func (b *browser) fail(format string, args ...any) {
	select {
	case <-b.stop:
	default:
		if b.pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
			b.t.Errorf(format, args...)
		}
	}
}

func (b *browser) counter(key string) *atomic.Uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.received[key]
	if n == nil {
		n = &atomic.Uint64{}
		b.received[key] = n
	}
	return n
}

// got is how many packets of kind ("audio", "video") from participant
// arrived.
func (b *browser) got(participant, kind string) uint64 {
	return b.counter(participant + " " + kind).Load()
}

// send publishes VP8 keyframe-sized video at 25 fps and Opus at 50
// packets/s until the browser closes.
func (b *browser) send() {
	frame := make([]byte, 1000) // all zero: the VP8 P bit is 0, a keyframe
	opus := make([]byte, 80)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			_ = b.audio.WriteSample(media.Sample{Data: opus, Duration: 20 * time.Millisecond})
			if i%2 == 0 {
				_ = b.video.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond})
			}
		}
	}()
}

// expect returns the next protocol message, which must be of type typ
// (pings and quality reports are skipped by the websocket client).
func (b *browser) expect(typ signaling.MessageType) signaling.Message {
	b.t.Helper()
	return b.until(typ, "", true)
}

// until skips to the next message of typ (and reason, if given); strict
// fails on any other message first.
func (b *browser) until(typ signaling.MessageType, reason string, strict bool) signaling.Message {
	b.t.Helper()
	for {
		select {
		case m, ok := <-b.events:
			if !ok {
				b.t.Fatalf("%s: connection closed before %s", b.name, typ)
			}
			if m.Type == typ && (reason == "" || m.Reason == reason) {
				return m
			}
			if strict {
				b.t.Fatalf("%s: got %s (%s), want %s", b.name, m.Type, m.Error, typ)
			}
		case <-time.After(hang):
			b.t.Fatalf("%s: no %s", b.name, typ)
		}
	}
}

func (b *browser) waitConnected() {
	b.t.Helper()
	select {
	case <-b.connected:
	case <-time.After(hang):
		b.t.Fatalf("%s never connected", b.name)
	}
}

func (b *browser) close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	_ = b.pc.Close()
	_ = b.ws.c.Close()
	b.wg.Wait()
}

// eventually polls cond; the deadline only detects a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole visit with real pion peers through the real server: the
// websocket, the visit layer, the SFU. Media flows between the patient
// and the clinician only once the patient is admitted.
func TestAVideoVisitWithRealPeersThroughTheSFU(t *testing.T) {
	cfg := sfu.DefaultConfig()
	cfg.UDPAddr, cfg.TCPAddr = "127.0.0.1:0", ""
	media, err := sfu.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start SFU: %v", err)
	}
	t.Cleanup(func() { _ = media.Close() }) // after the server and the visits stopped
	s := newVideoServerWith(t, nil, media)
	s.appointment(t, "a1", "booked", "p1", "c1")

	clin := newBrowser(t, s, s.joinToken(t, s.staff(t, auth.RoleClinician, "c1"), "a1"))
	pat := newBrowser(t, s, s.joinToken(t, s.token(t, auth.RolePatient, "p1"), "a1"))
	pat.expect(signaling.TypeWaiting)
	if w := clin.until(signaling.TypeWaiting, "", false); len(w.Waiting) != 1 {
		t.Fatalf("waiting %+v", w)
	}
	clin.waitConnected()
	pat.waitConnected()
	if n := pat.got("Practitioner/c1", "video") + pat.got("Practitioner/c1", "audio"); n != 0 {
		t.Fatalf("a waiting patient received %d packets", n)
	}

	clin.ws.send(signaling.Message{Type: signaling.TypeAdmit, Participant: "Patient/p1"})
	pat.until(signaling.TypeAdmitted, "", false)
	for _, pair := range [][2]*browser{{clin, pat}, {pat, clin}} {
		to, from := pair[0], pair[1]
		eventually(t, to.name+" receives "+from.name, func() bool {
			return to.got(from.name, "video") > 25 && to.got(from.name, "audio") > 25
		})
	}

	clin.ws.send(signaling.Message{Type: signaling.TypeEnd})
	pat.until(signaling.TypeEnded, "", false)
	clin.until(signaling.TypeEnded, "", false)
}
