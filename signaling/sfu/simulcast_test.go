package sfu_test

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling/sfu"
)

func (c *client) addSimulcast() {
	for _, rid := range []string{"q", "h", "f"} {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "screen", "sim", webrtc.WithRTPStreamID(rid))
		if err != nil {
			c.t.Fatal(err)
		}
		c.layers = append(c.layers, tr)
	}
	sender, err := c.pc.AddTrack(c.layers[0])
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range c.layers[1:] {
		if err := sender.AddEncoding(l); err != nil {
			c.t.Fatal(err)
		}
	}
	c.simSender = sender
	go func() {
		for {
			if _, _, err := sender.ReadSimulcastRTCP("q"); err != nil {
				return
			}
		}
	}()
}

// sendSimulcast sends the three layers at about 100, 300 and 900
// kbit/s, every packet a VP8 keyframe, with the mid and rid header
// extensions a browser adds.
func (c *client) sendSimulcast() {
	var midID, ridID uint8
	for _, e := range c.simSender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID) //nolint:gosec // small
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID) //nolint:gosec // small
		}
	}
	var mid string
	for _, tr := range c.pc.GetTransceivers() {
		if tr.Sender() == c.simSender {
			mid = tr.Mid()
		}
	}
	if midID == 0 || ridID == 0 || mid == "" {
		c.t.Fatalf("simulcast: mid %q, header extension ids %d and %d", mid, midID, ridID)
	}
	sizes := []int{250, 750, 1100}
	per := []int{1, 1, 2} // packets per 20 ms
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var seq [3]uint16
		for ts := uint32(0); ; ts += 1800 {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			for i, tr := range c.layers {
				payload := make([]byte, sizes[i])
				payload[0] = 0x10 // S=1, PID 0; the next byte 0: a keyframe
				for range per[i] {
					seq[i]++
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[i], Timestamp: ts, PayloadType: 96}, Payload: payload}
					_ = pkt.SetExtension(midID, []byte(mid))
					_ = pkt.SetExtension(ridID, []byte(tr.RID()))
					_ = tr.WriteRTP(pkt)
				}
			}
		}
	}()
}

func TestSimulcastLayersFollowTheReceiversEstimate(t *testing.T) {
	s := newSFU(t, func(c *sfu.Config) {
		c.MonitorInterval = time.Hour // the test ticks
		c.AudioOnlyBelow = 0          // layers only, no fallback
	})
	pub := newClient(t, s, "appt-s", patient, clientOpts{simulcast: true})
	sub := newClient(t, s, "appt-s", nurse, clientOpts{})
	pub.name, sub.name = patientID, nurseID
	admitAndSend(pub, sub)
	pub.waitConnected()
	pub.sendSimulcast()
	start := time.Now()
	eventually(t, "the subscriber receives the simulcast track", func() bool { return sub.got(patientID, "screen") > 50 })
	t.Logf("first packets after %v", time.Since(start))

	// choose ticks the publisher (layer bitrates) and then the subscriber
	// (its estimate) and waits for the layer switch to happen.
	choose := func(estimate uint64, want string) {
		t.Helper()
		sub.peer.SetEstimateForTest(estimate)
		eventually(t, "layer "+want+" at "+time.Duration(estimate).String(), func() bool {
			pub.peer.TickForTest()
			sub.peer.TickForTest()
			time.Sleep(200 * time.Millisecond)
			cur, target := sub.peer.ForwardedLayer(pub.peer)
			return cur == want && target == want
		})
		t.Logf("on %s after %v", want, time.Since(start))
		n := sub.got(patientID, "screen")
		eventually(t, "video keeps flowing on "+want, func() bool { return sub.got(patientID, "screen") > n+20 })
	}
	choose(5_000_000, "f")
	choose(200_000, "q")
	// The subscriber also receives the publisher's camera and audio: its
	// share for this track is (estimate - 48k audio) / 2 video tracks.
	// 1 Mbit/s gives 476 kbit/s: room for h (~313 kbit/s with headers,
	// 360 with the 15 % headroom of a step up), not for f (~900).
	choose(1_000_000, "h")
	choose(5_000_000, "f")

	sub.mu.Lock()
	jumps := sub.jumps[patientID+" screen"]
	sub.mu.Unlock()
	if jumps != 0 {
		t.Fatalf("the subscriber saw %d sequence number jumps across layer switches", jumps)
	}
}
