package sfu_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
	"github.com/vidda/vidda/signaling/turn"
)

// Participant names are FHIR references, as the visit layer uses them;
// "/" reaches the client percent-escaped in the stream id.
const (
	patient   = "Patient/p1"
	nurse     = "Practitioner/n1"
	relative  = "RelatedPerson/r1"
	patientID = "Patient%2Fp1"
	nurseID   = "Practitioner%2Fn1"
	relID     = "RelatedPerson%2Fr1"
)

func admitAndSend(cs ...*client) {
	for _, c := range cs {
		c.peer.SetAdmitted(true)
		c.send()
	}
}

func TestTwoParticipantsExchangeAudioAndVideo(t *testing.T) {
	s := newSFU(t, nil)
	a := newClient(t, s, "appt-1", patient, clientOpts{})
	b := newClient(t, s, "appt-1", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID // how each appears to the other
	admitAndSend(a, b)
	a.waitConnected()
	b.waitConnected()
	exchanges(t, 20, a, b)
	if st := a.peer.Stats(); st.PacketsIn == 0 || st.PacketsOut == 0 {
		t.Fatalf("stats of %s: %+v", patient, st)
	}
}

func TestThreeParticipantsEachReceiveTheOtherTwo(t *testing.T) {
	s := newSFU(t, nil)
	a := newClient(t, s, "appt-3", patient, clientOpts{})
	b := newClient(t, s, "appt-3", nurse, clientOpts{})
	c := newClient(t, s, "appt-3", relative, clientOpts{})
	a.name, b.name, c.name = patientID, nurseID, relID
	admitAndSend(a, b, c)
	exchanges(t, 20, a, b, c)
}

func TestNoMediaIsForwardedBeforeAdmission(t *testing.T) {
	s := newSFU(t, nil)
	nurseC := newClient(t, s, "appt-w", nurse, clientOpts{})
	patientC := newClient(t, s, "appt-w", patient, clientOpts{})
	nurseC.peer.SetAdmitted(true)
	nurseC.send()
	patientC.send() // in the waiting room, camera on
	nurseC.waitConnected()
	patientC.waitConnected()

	eventually(t, "the SFU receives the waiting patient's media", func() bool {
		return patientC.peer.Stats().PacketsIn > 100 && nurseC.peer.Stats().PacketsIn > 100
	})
	if n := nurseC.got(patientID, "video") + nurseC.got(patientID, "audio"); n != 0 {
		t.Fatalf("the nurse received %d packets from a patient still waiting", n)
	}
	if n := patientC.got(nurseID, "video") + patientC.got(nurseID, "audio"); n != 0 {
		t.Fatalf("the waiting patient received %d packets", n)
	}
	if st := patientC.peer.Stats(); st.PacketsOut != 0 {
		t.Fatalf("the SFU sent %d packets to the waiting patient", st.PacketsOut)
	}

	patientC.peer.SetAdmitted(true)
	nurseC.name, patientC.name = nurseID, patientID
	exchanges(t, 20, nurseC, patientC)

	// Sent back to the waiting room: the subscriptions go away.
	patientC.peer.SetAdmitted(false)
	eventually(t, "nothing is forwarded to or from the patient", func() bool {
		return !patientC.peer.VideoForwardedTo() && !nurseC.peer.VideoForwardedTo()
	})
}

func TestICERestartKeepsMediaFlowing(t *testing.T) {
	s := newSFU(t, nil)
	a := newClient(t, s, "appt-r", patient, clientOpts{})
	b := newClient(t, s, "appt-r", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)

	before := a.pc.RemoteDescription().SDP
	offers := a.offers.Load()
	if err := a.peer.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the restart offer is answered", func() bool {
		return a.offers.Load() > offers && a.pc.SignalingState() == webrtc.SignalingStateStable
	})
	if ufrag(a.pc.RemoteDescription().SDP) == ufrag(before) {
		t.Fatal("the restart offer kept the ICE username fragment")
	}
	video := a.got(nurseID, "video")
	eventually(t, "media flows after the restart", func() bool {
		return a.got(nurseID, "video") > video+30 && a.pc.ICEConnectionState() == webrtc.ICEConnectionStateConnected
	})
}

func TestARelayOnlyClientConnectsThroughTheEmbeddedTURN(t *testing.T) {
	tcfg := turn.DefaultConfig()
	tcfg.Listen = "127.0.0.1:0"
	tcfg.AllowLoopback = true
	ts, err := turn.New(tcfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	s := newSFU(t, nil)

	var servers []webrtc.ICEServer
	for _, is := range ts.ICEServers(patient, time.Now()) {
		servers = append(servers, webrtc.ICEServer{URLs: is.URLs[:1], Username: is.Username, Credential: is.Credential})
	}
	a := newClient(t, s, "appt-t", patient, clientOpts{config: webrtc.Configuration{
		ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	}})
	b := newClient(t, s, "appt-t", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)
	if !hasRelayCandidate(a.pc.LocalDescription().SDP) {
		t.Fatal("the relay-only client has no relay candidate")
	}
}

func TestARelayOnlyClientWithABadCredentialGetsNoRelay(t *testing.T) {
	tcfg := turn.DefaultConfig()
	tcfg.Listen = "127.0.0.1:0"
	tcfg.AllowLoopback = true
	ts, err := turn.New(tcfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	is := ts.ICEServers(patient, time.Now())[0]
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{
		ICEServers:         []webrtc.ICEServer{{URLs: is.URLs[:1], Username: is.Username, Credential: "d3Jvbmc="}},
		ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	if hasRelayCandidate(pc.LocalDescription().SDP) {
		t.Fatal("a wrong TURN password got a relay")
	}
}

func TestAClientRestrictedToTCPConnectsOverICETCP(t *testing.T) {
	s := newSFU(t, nil)
	a := newClient(t, s, "appt-tcp", patient, clientOpts{networks: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}})
	b := newClient(t, s, "appt-tcp", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)
	pair, err := a.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair %v (%v) is not TCP", pair, err)
	}
}

func TestLeavingLeavesNoGoroutinesBehind(t *testing.T) {
	s := newSFU(t, nil)
	settle(t, runtime.NumGoroutine()) // let the SFU's own start-up finish
	before := runtime.NumGoroutine()

	a := newClient(t, s, "appt-g", patient, clientOpts{})
	b := newClient(t, s, "appt-g", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)
	b.close()
	a.close()
	settle(t, before)
}

// settle waits until no more than n goroutines run, and fails with their
// stacks if that never happens.
func settle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestABadLinkFallsBackToAudioOnlyAndRecovers(t *testing.T) {
	s := newSFU(t, func(c *sfu.Config) {
		c.MonitorInterval = time.Hour // the test ticks
		c.BadTicks, c.GoodTicks = 2, 2
	})
	a := newClient(t, s, "appt-a", patient, clientOpts{})
	b := newClient(t, s, "appt-a", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)
	if !a.peer.VideoForwardedTo() || !b.peer.VideoForwardedTo() {
		t.Fatal("video is not forwarded before the link goes bad")
	}

	a.peer.SetEstimateForTest(100_000) // below the lowest video layer
	a.peer.TickForTest()
	if len(a.audioOnlyEvents()) != 0 {
		t.Fatal("one bad interval already stopped video")
	}
	a.peer.TickForTest()
	wantEvents(t, a, b, signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: true, Reason: sfu.ReasonBandwidth})
	if a.peer.VideoForwardedTo() || b.peer.VideoForwardedTo() {
		t.Fatal("video still forwarded after the fallback")
	}
	if !a.peer.Stats().AudioOnly || !b.peer.Stats().AudioOnly {
		t.Fatal("stats do not say audio only")
	}
	a.peer.TickForTest()
	if q := a.peer.Stats().Quality; q != signaling.QualityPoor {
		t.Fatalf("quality on an audio-only link is %s, want poor", q)
	}
	eventually(t, "a hears its quality is poor", func() bool { return a.heard(signaling.EventQuality, string(signaling.QualityPoor)) })
	audio := b.got(patientID, "audio")
	eventually(t, "audio keeps flowing", func() bool { return b.got(patientID, "audio") > audio+20 })

	a.peer.SetEstimateForTest(180_000) // better, but not enough to resume
	a.peer.TickForTest()
	a.peer.TickForTest()
	a.peer.SetEstimateForTest(600_000)
	a.peer.TickForTest()
	a.peer.TickForTest()
	wantEvents(t, a, b,
		signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: true, Reason: sfu.ReasonBandwidth},
		signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: false, Reason: sfu.ReasonRecovered})
	video := b.got(patientID, "video")
	eventually(t, "video resumes", func() bool { return b.got(patientID, "video") > video+10 })

	b.peer.SetAudioOnly(true)
	wantEvents(t, a, b,
		signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: true, Reason: sfu.ReasonBandwidth},
		signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: false, Reason: sfu.ReasonRecovered},
		signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: true, Reason: sfu.ReasonRequested})
}

// wantEvents waits until both clients have heard exactly want.
func wantEvents(t *testing.T, a, b *client, want ...signaling.MediaEvent) {
	t.Helper()
	for _, c := range []*client{a, b} {
		eventually(t, c.name+" hears the audio-only events", func() bool { return len(c.audioOnlyEvents()) >= len(want) })
		got := c.audioOnlyEvents()
		if len(got) != len(want) {
			t.Fatalf("%s heard %+v, want %+v", c.name, got, want)
		}
		for i := range want {
			if got[i].AudioOnly != want[i].AudioOnly || got[i].Reason != want[i].Reason {
				t.Fatalf("%s heard %+v, want %+v", c.name, got, want)
			}
		}
	}
}

func TestGarbageDescriptionsAreRefusedWithoutPanic(t *testing.T) {
	s := newSFU(t, nil)
	mp, err := s.Connect(context.Background(), "appt-x", patient, func(signaling.MediaEvent) {})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	if err := mp.Restart(context.Background()); err == nil {
		t.Error("an ICE restart before any offer was accepted")
	}
	for _, d := range []signaling.Description{
		{Type: "offer", SDP: ""},
		{Type: "offer", SDP: "v=0"},
		{Type: "offer", SDP: "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"},
		{Type: "offer", SDP: "\x00\xff\xfe garbage \r\n m=audio x"},
		{Type: "answer", SDP: "v=0"},
		{Type: "pranswer", SDP: "v=0"},
		{Type: "rollback"},
		{Type: "", SDP: ""},
	} {
		if err := mp.Remote(context.Background(), d); !errors.Is(err, sfu.ErrBadDescription) {
			t.Errorf("Remote(%q, %q) = %v, want ErrBadDescription", d.Type, d.SDP, err)
		}
	}
}

func TestAParticipantConnectsOncePerRoom(t *testing.T) {
	s := newSFU(t, nil)
	mp, err := s.Connect(context.Background(), "appt-d", patient, func(signaling.MediaEvent) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(context.Background(), "appt-d", patient, func(signaling.MediaEvent) {}); !errors.Is(err, sfu.ErrParticipantConnected) {
		t.Fatalf("second connect: %v", err)
	}
	_ = mp.Close()
	mp, err = s.Connect(context.Background(), "appt-d", patient, func(signaling.MediaEvent) {})
	if err != nil {
		t.Fatalf("connect after leaving: %v", err)
	}
	_ = mp.Close()
	_ = mp.Close() // twice is fine
	if err := mp.Remote(context.Background(), signaling.Description{Type: "offer", SDP: "v=0"}); !errors.Is(err, sfu.ErrClosed) {
		t.Fatalf("Remote after Close: %v", err)
	}
}

func ufrag(sdp string) string {
	const key = "a=ice-ufrag:"
	for i := 0; i+len(key) < len(sdp); i++ {
		if sdp[i:i+len(key)] == key {
			end := i + len(key)
			for end < len(sdp) && sdp[end] != '\r' && sdp[end] != '\n' {
				end++
			}
			return sdp[i+len(key) : end]
		}
	}
	return ""
}
