package signaling

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// lockProbe wraps the fake media layer: each peer's Close looks at its
// room's lock and notes whether it was held, and, like signaling/sfu, a
// participant has at most one open peer in a room.
type lockProbe struct {
	*fakeMedia
	v *Visits

	mu     sync.Mutex
	closes []string // "who: held" or "who: free"
}

type probedPeer struct {
	*fakePeer
	probe *lockProbe
	room  *room
}

func (m *lockProbe) Connect(ctx context.Context, roomID, participant string, send func(MediaEvent)) (MediaPeer, error) {
	for _, old := range m.peersOf(participant) {
		if _, closed, _ := old.state(); !closed && old.room == roomID {
			return nil, errors.New("participant already connected in this room")
		}
	}
	p, err := m.fakeMedia.Connect(ctx, roomID, participant, send)
	if err != nil {
		return nil, err
	}
	// Connect runs in the room's join, so the room exists.
	return &probedPeer{fakePeer: p.(*fakePeer), probe: m, room: m.v.existing(roomID)}, nil //nolint:forcetypeassert // our fake
}

func (p *probedPeer) Close() error {
	// Held means held past a second: a close under the room lock keeps it
	// until the close returns, while a brief hold by another goroutine
	// (a session's disconnect) is not this close's doing.
	state := "free"
	got := make(chan struct{})
	go func() {
		p.room.mu.Lock()
		p.room.mu.Unlock() //nolint:staticcheck // only to see that the lock can be taken
		close(got)
	}()
	select {
	case <-got:
	case <-time.After(time.Second):
		state = "held"
	}
	p.probe.mu.Lock()
	p.probe.closes = append(p.probe.closes, p.who+": "+state)
	p.probe.mu.Unlock()
	return p.fakePeer.Close()
}

func (m *lockProbe) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.closes...)
}

// A PeerConnection's Close waits for its goroutines: the room's lock, on
// which every other participant's messages and the practitioners' view
// of the room wait, must not be held meanwhile.
func TestPeersCloseOutsideTheRoomLock(t *testing.T) {
	f := newFixture(t, nil)
	probe := &lockProbe{fakeMedia: f.media, v: f.v}
	f.v.media = probe
	f.appointment(t, "a1", "booked", "p1", "c1")
	ctok := mustIssue(t, f, clinicianActor("c1"), "a1")
	ptok := mustIssue(t, f, patientActor("p1"), "a1")
	clin, _ := f.join(t, ctok, false)
	pat, _ := f.join(t, ptok, false)
	pat.expect(TypeWaiting)
	clin.expect(TypeWaiting)
	clin.send(Message{Type: TypeAdmit, Participant: "Patient/p1"})
	pat.expect(TypeAdmitted)
	clin.sync()

	// A rejoin without resume replaces the peer: the old one closes
	// before the new one connects.
	pat2, _ := f.join(t, ptok, false)
	pat.closedWith(CloseReplaced)
	if peers := f.media.peersOf("Patient/p1"); len(peers) != 2 {
		t.Fatalf("%d peers for the patient after a rejoin, want 2", len(peers))
	}
	if _, closed, _ := f.media.peersOf("Patient/p1")[0].state(); !closed {
		t.Fatal("the replaced peer is still open")
	}

	// Leaving, and ending the visit for everyone.
	pat2.send(Message{Type: TypeLeave})
	pat2.closedWith(CloseNormal)
	clin.expectUntil(TypeLeft, "left")
	clin.send(Message{Type: TypeEnd})
	clin.expectUntil(TypeEnded, "")
	clin.closedWith(CloseNormal)
	waitFor(t, "every peer closed", func() bool { return len(probe.seen()) == 3 })
	for _, c := range probe.seen() {
		if c[len(c)-4:] != "free" {
			t.Errorf("closed with the room's lock held: %s", c)
		}
	}
	for _, who := range []string{"Patient/p1", "Practitioner/c1"} {
		for _, p := range f.media.peersOf(who) {
			if _, closed, _ := p.state(); !closed {
				t.Errorf("%s's peer is still open", who)
			}
		}
	}
}
