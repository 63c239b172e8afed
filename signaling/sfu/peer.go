package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
)

// Peer is one participant's PeerConnection with the SFU. It implements
// signaling.MediaPeer.
type Peer struct {
	sfu  *SFU
	room *room
	id   string // the participant
	log  *slog.Logger
	pc   *webrtc.PeerConnection
	bwe  cc.BandwidthEstimator

	events *eventQueue
	wg     sync.WaitGroup // every goroutine this peer owns
	done   chan struct{}
	once   sync.Once

	neg negotiation

	// Guarded by room.mu.
	closed    bool
	admitted  bool
	requested bool // the participant's own audio-only switch
	bandwidth bool // audio only because the link cannot carry video
	audioOnly bool // what the participant was last told
	reason    string
	published map[*webrtc.RTPReceiver]*pubTrack
	down      map[*pubTrack]*downTrack

	state atomic.Int32 // webrtc.PeerConnectionState

	// Counters written by the forwarding path.
	packetsIn, bytesIn, packetsOut, bytesOut atomic.Uint64

	mon monitor
}

var _ signaling.MediaPeer = (*Peer)(nil)

// newPeer creates p's PeerConnection and goroutines. Caller holds
// sfu.mu; the room adds p.
func newPeer(s *SFU, r *room, participant string, send func(signaling.MediaEvent)) (*Peer, error) {
	pc, bwe, err := s.newPeerConnection()
	if err != nil {
		return nil, err
	}
	p := &Peer{
		sfu: s, room: r, id: participant, pc: pc, bwe: bwe,
		log:       s.log.With("room", r.id, "participant", participant),
		events:    newEventQueue(send),
		done:      make(chan struct{}),
		published: make(map[*webrtc.RTPReceiver]*pubTrack),
		down:      make(map[*pubTrack]*downTrack),
	}
	p.neg.kick = make(chan struct{}, 1)
	p.mon.init(s.cfg)
	pc.OnICECandidate(p.onICECandidate)
	pc.OnConnectionStateChange(p.onConnectionState)
	pc.OnTrack(p.onTrack)
	p.wg.Add(2)
	go p.negotiator()
	go p.monitorLoop()
	return p, nil
}

func (p *Peer) emit(e signaling.MediaEvent) { p.events.push(e) }

func (p *Peer) onICECandidate(c *webrtc.ICECandidate) {
	if c == nil {
		p.emitCandidate(signaling.MediaEvent{Kind: signaling.EventCandidate, Candidate: &signaling.Candidate{}})
		return
	}
	init := c.ToJSON()
	p.emitCandidate(signaling.MediaEvent{Kind: signaling.EventCandidate, Candidate: &signaling.Candidate{
		Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
	}})
}

func (p *Peer) onConnectionState(s webrtc.PeerConnectionState) {
	p.state.Store(int32(s)) //nolint:gosec // a small enum
	p.log.Info("media connection", "state", s.String())
	p.emit(signaling.MediaEvent{Kind: signaling.EventConnection, State: s.String()})
}

// AddCandidate adds one of the client's trickled ICE candidates; those
// that arrive before the client's offer wait for it.
func (p *Peer) AddCandidate(c signaling.Candidate) error {
	init := webrtc.ICECandidateInit{
		Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment,
	}
	p.neg.mu.Lock()
	defer p.neg.mu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.neg.candidates) >= maxQueuedCandidates {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadCandidate)
		}
		p.neg.candidates = append(p.neg.candidates, init)
		return nil
	}
	if err := p.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCandidate, err)
	}
	return nil
}

const maxQueuedCandidates = 64

// SetAdmitted starts or stops forwarding media from and to p.
func (p *Peer) SetAdmitted(admitted bool) {
	p.room.setAdmitted(p, admitted)
}

// SetAudioOnly is the participant's own audio-only switch.
func (p *Peer) SetAudioOnly(on bool) {
	p.room.setRequested(p, on)
}

// Stats returns the participant's current figures.
func (p *Peer) Stats() signaling.MediaStats {
	st := p.mon.snapshot()
	p.room.mu.Lock()
	st.AudioOnly = p.audioOnly
	p.room.mu.Unlock()
	st.PacketsIn = p.packetsIn.Load()
	st.PacketsOut = p.packetsOut.Load()
	return st
}

func (p *Peer) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close closes the PeerConnection, takes p out of its room and waits for
// all of p's goroutines. It is safe to call more than once.
func (p *Peer) Close() error {
	var err error
	p.once.Do(func() {
		p.room.mu.Lock()
		p.closed = true
		p.room.mu.Unlock()
		close(p.done)
		p.sfu.leave(p.room, p)
		if cerr := p.pc.Close(); cerr != nil {
			err = fmt.Errorf("sfu: close peer connection: %w", cerr)
		}
		p.wg.Wait()
		p.events.close()
	})
	return err
}

// spawn runs f as one of p's goroutines unless p is closing. Caller
// holds room.mu (Close sets closed under it before waiting).
func (p *Peer) spawn(f func()) bool {
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

func (p *Peer) monitorLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.sfu.cfg.MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			p.tick(now)
		}
	}
}

// errIgnored is not returned to callers; it marks a glare offer.
var errIgnored = errors.New("ignored")
