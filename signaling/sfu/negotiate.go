package sfu

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
)

// negotiation is one peer's offer/answer state. mu serializes every
// change of descriptions: the client's offers and answers, the server's
// offers, ICE restarts and queued candidates.
type negotiation struct {
	mu         sync.Mutex
	kick       chan struct{} // wakes the negotiator goroutine
	offer      bool          // the server must (re)offer once stable
	restart    bool          // ... with an ICE restart
	candidates []webrtc.ICECandidateInit
	gate       candidateGate
}

// candidateGate holds back our candidates while a description is being
// made, until it has been emitted. pion gathers a new ICE generation as
// early as CreateOffer (an ICE restart) or SetRemoteDescription (a client
// offer with new credentials), and hands over candidates from within
// SetLocalDescription: without the gate a candidate of the new generation
// reached the client before the description that carries its ufrag, the
// client (still on the old one) dropped it, and an ICE restart could end
// with no media (TestICERestartKeepsMediaFlowing, about one run in three
// under -race).
type candidateGate struct {
	mu      sync.Mutex
	holding bool
	held    []signaling.MediaEvent
}

// holdCandidates starts holding candidates back.
func (p *Peer) holdCandidates() {
	p.neg.gate.mu.Lock()
	p.neg.gate.holding = true
	p.neg.gate.mu.Unlock()
}

// emitCandidate sends a candidate event, or holds it back.
func (p *Peer) emitCandidate(e signaling.MediaEvent) {
	p.neg.gate.mu.Lock()
	defer p.neg.gate.mu.Unlock()
	if p.neg.gate.holding {
		p.neg.gate.held = append(p.neg.gate.held, e)
		return
	}
	p.emit(e)
}

// releaseCandidates emits the description d (nil: none, setting it
// failed), then the candidates held back, and stops holding.
func (p *Peer) releaseCandidates(d *signaling.Description) {
	p.neg.gate.mu.Lock()
	defer p.neg.gate.mu.Unlock()
	if d != nil {
		p.emit(signaling.MediaEvent{Kind: signaling.EventDescription, Description: d})
	}
	for _, e := range p.neg.gate.held {
		p.emit(e)
	}
	p.neg.gate.held, p.neg.gate.holding = nil, false
}

// Remote applies the client's offer or answer. An offer is answered
// through send. An offer that collides with a pending server offer is
// ignored (the server is the impolite peer of perfect negotiation; the
// client rolls back, answers ours and offers again).
func (p *Peer) Remote(ctx context.Context, d signaling.Description) error {
	p.neg.mu.Lock()
	defer p.neg.mu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sfu: remote description: %w", err)
	}
	var err error
	switch d.Type {
	case "offer":
		err = p.applyOffer(d.SDP)
	case "answer":
		err = p.applyAnswer(d.SDP)
	default:
		return fmt.Errorf("%w: type %q is neither offer nor answer", ErrBadDescription, d.Type)
	}
	if err == errIgnored { //nolint:errorlint // a sentinel of this file, never wrapped
		p.log.Info("client offer ignored: a server offer is pending (glare)")
		return nil
	}
	if err != nil {
		return err
	}
	if p.neg.offer || p.neg.restart {
		p.kickNegotiation()
	}
	return nil
}

func (p *Peer) applyOffer(sdp string) error {
	if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		return errIgnored
	}
	// An offer with new ICE credentials restarts gathering inside
	// SetRemoteDescription already: hold from here.
	var answered *signaling.Description
	p.holdCandidates()
	defer func() { p.releaseCandidates(answered) }()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: offer: %w", ErrBadDescription, err)
	}
	p.flushCandidates()
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: answer the offer: %w", ErrBadDescription, err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("%w: set the answer: %w", ErrBadDescription, err)
	}
	answered = &signaling.Description{Type: "answer", SDP: answer.SDP}
	return nil
}

func (p *Peer) applyAnswer(sdp string) error {
	if p.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return fmt.Errorf("%w: an answer without a pending offer", ErrBadDescription)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: answer: %w", ErrBadDescription, err)
	}
	p.flushCandidates()
	return nil
}

func (p *Peer) flushCandidates() {
	for _, c := range p.neg.candidates {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued ICE candidate refused", "err", err)
		}
	}
	p.neg.candidates = nil
}

// Restart begins an ICE restart: the new offer comes through send (now,
// or once a pending negotiation has finished).
func (p *Peer) Restart(ctx context.Context) error {
	p.neg.mu.Lock()
	if p.isClosed() {
		p.neg.mu.Unlock()
		return ErrClosed
	}
	if p.pc.RemoteDescription() == nil {
		p.neg.mu.Unlock()
		return fmt.Errorf("sfu: restart: %w", errNoOfferYet)
	}
	p.neg.restart = true
	p.neg.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sfu: restart: %w", err)
	}
	p.kickNegotiation()
	return nil
}

var errNoOfferYet = fmt.Errorf("%w: the client has not offered yet", ErrBadDescription)

// needOffer marks that p's tracks changed and the server must offer.
func (p *Peer) needOffer() {
	p.neg.mu.Lock()
	p.neg.offer = true
	p.neg.mu.Unlock()
	p.kickNegotiation()
}

func (p *Peer) kickNegotiation() {
	select {
	case p.neg.kick <- struct{}{}:
	default:
	}
}

// negotiator sends the server's offers, one at a time, whenever the
// signaling state is stable.
func (p *Peer) negotiator() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.neg.kick:
			p.offerIfNeeded()
		}
	}
}

func (p *Peer) offerIfNeeded() {
	p.neg.mu.Lock()
	defer p.neg.mu.Unlock()
	if p.isClosed() || (!p.neg.offer && !p.neg.restart) {
		return
	}
	// Before the client's first offer there is nothing to renegotiate;
	// while an offer is out, the answer kicks us again.
	if p.pc.RemoteDescription() == nil || p.pc.SignalingState() != webrtc.SignalingStateStable {
		return
	}
	// CreateOffer with ICERestart starts gathering the new generation
	// already: hold from here.
	var offered *signaling.Description
	p.holdCandidates()
	defer func() { p.releaseCandidates(offered) }()
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: p.neg.restart})
	if err != nil {
		p.log.Warn("create offer", "err", err)
		return
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.log.Warn("set offer", "err", err)
		return
	}
	if p.neg.restart {
		p.log.Info("ice restart offered")
	}
	p.neg.offer, p.neg.restart = false, false
	offered = &signaling.Description{Type: "offer", SDP: offer.SDP}
}
