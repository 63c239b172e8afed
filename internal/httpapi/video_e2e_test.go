package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
	"github.com/vidda/vidda/signaling/visitclient"
)

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
// websocket, the visit layer, the SFU. Each participant's browser is
// played by signaling/visitclient (a pion PeerConnection speaking the
// visit protocol). Media flows between the patient and the clinician only
// once the patient is admitted.
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*hang) // detects a hang only
	defer cancel()
	join := func(bearer string) *visitclient.Client {
		t.Helper()
		a := s.joinToken(t, bearer, "a1")
		c, err := visitclient.Dial(ctx, &visitclient.Grant{Token: a.Token, WS: a.WS, ICEServers: a.ICEServers, Participant: a.Participant})
		if err != nil {
			t.Fatalf("%s joins: %v", a.Participant, err)
		}
		t.Cleanup(c.Close)
		t.Cleanup(func() {
			// The negotiation the browser plays must not have failed on
			// the way, even where media still flowed.
			if err := c.Err(); err != nil {
				t.Errorf("%s: %v", a.Participant, err)
			}
		})
		return c
	}
	await := func(c *visitclient.Client, typ signaling.MessageType) signaling.Message {
		t.Helper()
		m, err := c.Await(ctx, typ)
		if err != nil {
			t.Fatalf("%s: %v", c.Participant, err)
		}
		return m
	}

	clin := join(s.staff(t, auth.RoleClinician, "c1"))
	pat := join(s.token(t, auth.RolePatient, "p1"))
	await(pat, signaling.TypeWaiting)
	// Admit hands over the clinician's waiting room once both peers
	// connected, before the admission.
	if err := visitclient.Admit(ctx, clin, pat, func(w signaling.Message) error {
		if len(w.Waiting) != 1 {
			return fmt.Errorf("waiting %+v", w)
		}
		if n := pat.ReceivedFrom("Practitioner/c1", "video") + pat.ReceivedFrom("Practitioner/c1", "audio"); n != 0 {
			return fmt.Errorf("a waiting patient received %d packets", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*visitclient.Client{{clin, pat}, {pat, clin}} {
		to, from := pair[0], pair[1]
		eventually(t, to.Participant+" receives "+from.Participant, func() bool {
			return to.ReceivedFrom(from.Participant, "video") > 25 && to.ReceivedFrom(from.Participant, "audio") > 25
		})
	}

	if err := clin.Send(signaling.Message{Type: signaling.TypeEnd}); err != nil {
		t.Fatal(err)
	}
	await(pat, signaling.TypeEnded)
	await(clin, signaling.TypeEnded)
}
