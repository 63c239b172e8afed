package signaling

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A rejoin without resume (a second tab, a reloaded page) retires the
// participant's peer before it connects a new one. When that Connect
// fails, the join fails, and the old session, left without media, is
// ended as replaced: its grace period runs as after any lost connection.
func TestARejoinWhoseNewPeerFailsEndsTheOldSession(t *testing.T) {
	t.Run("within the grace period they come back admitted with a new peer", func(t *testing.T) {
		f, clin, ptok := rejoinWithAFailingConnect(t, time.Hour)
		_, joined := f.join(t, ptok, false)
		if joined.Self.State != "admitted" {
			t.Fatalf("rejoined within the grace period as %s", joined.Self.State)
		}
		if m := clin.expectUntil(TypeAdmitted, "rejoined"); m.Participant != "Patient/p1" {
			t.Fatalf("clinician told %+v", m)
		}
		peers := f.media.peersOf("Patient/p1")
		if len(peers) != 2 {
			t.Fatalf("%d peers for the patient, want the first and a new one", len(peers))
		}
		if admitted, closed, _ := peers[1].state(); !admitted || closed {
			t.Fatalf("new peer admitted %v closed %v", admitted, closed)
		}
	})
	t.Run("after the grace period they are gone from the room", func(t *testing.T) {
		f, clin, ptok := rejoinWithAFailingConnect(t, 50*time.Millisecond)
		if m := clin.expectUntil(TypeLeft, "timeout"); m.Participant != "Patient/p1" {
			t.Fatalf("left %+v", m)
		}
		st, err := f.v.State(context.Background(), clinicianActor("c1"), "a1")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append(st.Participants, st.Waiting...) {
			if p.ID == "Patient/p1" {
				t.Fatalf("the patient is still in the room after the grace period: %+v", p)
			}
		}
		_, joined := f.join(t, ptok, false)
		if joined.Self.State != "waiting" {
			t.Fatalf("after the grace period joined as %s", joined.Self.State)
		}
	})
}

// rejoinWithAFailingConnect admits the patient of a1, then has them join
// again without resume while their next Connect fails. It checks that the
// join fails with the media error and that the first session is ended as
// replaced, its grace period begun; it returns the clinician's client and
// the patient's token.
func rejoinWithAFailingConnect(t *testing.T, grace time.Duration) (*fixture, *client, string) {
	t.Helper()
	f := newFixture(t, func(c *Config) { c.Grace = grace })
	clin, first, ptok := f.admittedVisit(t)

	broken := errors.New("no port left for a peer")
	f.media.failNextConnect("Patient/p1", broken)
	second, _ := f.connectAndJoin(t, ptok)
	if e := second.expect(TypeError); e.Code != "internal" {
		t.Fatalf("the failed rejoin got %+v, want an internal error", e)
	}
	second.closedWith(CloseInternal)
	if errs := f.logs.errs("signaling: join"); len(errs) != 1 || !errors.Is(errs[0], broken) {
		t.Fatalf("join errors logged %v, want the media error", errs)
	}

	first.expectReplaced()
	if m := clin.expectUntil(TypeLeft, "disconnected"); m.Participant != "Patient/p1" {
		t.Fatalf("left %+v", m)
	}
	peers := f.media.peersOf("Patient/p1")
	if len(peers) != 1 {
		t.Fatalf("%d peers for the patient after the failed Connect, want the first only", len(peers))
	}
	if _, closed, _ := peers[0].state(); !closed {
		t.Fatal("the first peer, retired for the rejoin, is still open")
	}
	return f, clin, ptok
}

// expectReplaced waits for the "replaced" error and the close that ends
// a connection whose participant joined again elsewhere.
func (c *client) expectReplaced() {
	c.t.Helper()
	for {
		m := c.next()
		if m == nil {
			c.t.Fatalf("connection closed (code %d) without saying it was replaced", c.conn.code)
		}
		if m.Type == TypeError && m.Code == "replaced" {
			break
		}
	}
	c.closedWith(CloseReplaced)
}
