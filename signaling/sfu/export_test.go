package sfu

import "time"

// SetEstimateForTest fixes the bandwidth estimate towards p (0: the
// estimator's again), so tests drive the audio-only fallback without
// starving a real link.
func (p *Peer) SetEstimateForTest(bps uint64) { p.mon.override.Store(bps) }

// TickForTest runs one monitor interval now.
func (p *Peer) TickForTest() { p.tick(time.Now()) }

// VideoForwardedTo reports whether any video subscription of p is on.
func (p *Peer) VideoForwardedTo() bool {
	p.room.mu.Lock()
	defer p.room.mu.Unlock()
	for t, dt := range p.down {
		if t.video() && dt.enabled.Load() {
			return true
		}
	}
	return false
}

// ForwardedLayer is the rid of the layer of pub's video p receives now
// ("" when none, or pub's video has one layer without rid).
func (p *Peer) ForwardedLayer(pub *Peer) (current, target string) {
	p.room.mu.Lock()
	var dt *downTrack
	for t, d := range p.down {
		if t.owner == pub && t.video() {
			dt = d
		}
	}
	p.room.mu.Unlock()
	if dt == nil {
		return "", ""
	}
	c, tg := dt.layers()
	if c != nil {
		current = c.rid
	}
	if tg != nil {
		target = tg.rid
	}
	return current, target
}

// SignalingState is the server side's signaling state.
func (p *Peer) SignalingState() string { return p.pc.SignalingState().String() }
