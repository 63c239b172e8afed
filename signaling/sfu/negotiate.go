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
	p.emit(signaling.MediaEvent{Kind: signaling.EventDescription, Description: &signaling.Description{Type: "answer", SDP: answer.SDP}})
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
	p.emit(signaling.MediaEvent{Kind: signaling.EventDescription, Description: &signaling.Description{Type: "offer", SDP: offer.SDP}})
}
