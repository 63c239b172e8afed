package sfu_test

import (
	"context"
	"testing"

	"github.com/vidda/vidda/signaling"
)

// A client offer that crosses a server offer is ignored: the server is
// the impolite peer. (A browser then rolls back and answers; pion cannot
// roll back a local offer, so this test stops at the server's side.)
func TestGlareTheServerIgnoresACrossingOffer(t *testing.T) {
	s := newSFU(t, nil)
	a := newClient(t, s, "appt-glare", patient, clientOpts{})
	b := newClient(t, s, "appt-glare", nurse, clientOpts{})
	a.name, b.name = patientID, nurseID
	admitAndSend(a, b)
	exchanges(t, 20, a, b)

	a.hold.Store(true)
	offers := a.offers.Load()
	if err := a.peer.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server's offer is out", func() bool { return a.offers.Load() > offers })
	answers := a.descriptions("answer")

	mine, err := a.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.pc.SetLocalDescription(mine); err != nil {
		t.Fatal(err)
	}
	if err := a.peer.Remote(context.Background(), signaling.Description{Type: "offer", SDP: mine.SDP}); err != nil {
		t.Fatalf("a crossing offer: %v", err)
	}
	if st := a.peer.SignalingState(); st != "have-local-offer" {
		t.Fatalf("the server's signaling state is %s; its offer should still be waiting", st)
	}
	if got := a.descriptions("answer"); got != answers {
		t.Fatalf("the server answered a crossing offer (%d answers, had %d)", got, answers)
	}
}

func (c *client) descriptions(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.events {
		if e.Kind == signaling.EventDescription && e.Description.Type == typ {
			n++
		}
	}
	return n
}
