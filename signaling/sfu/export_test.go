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
