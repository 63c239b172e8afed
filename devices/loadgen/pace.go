package loadgen

import "time"

// pacer says when each publish of one connection is due, as an offset
// from the start of the run. A fleet offering rate readings/s over n
// connections gives each rate/n, and staggers them: connection k starts
// k/n of an interval late, so the fleet's publishes are evenly spaced
// rather than a burst of n every interval. The zero pacer floods: every
// publish is due at once.
type pacer struct {
	phase    float64 // ns before the first publish
	interval float64 // ns between two publishes; 0: flood
}

// newPacer paces connection k of n at a share of the fleet's rate
// (readings/s); rate <= 0 floods.
func newPacer(rate float64, k, n int) pacer {
	if rate <= 0 || n <= 0 {
		return pacer{}
	}
	interval := float64(time.Second) * float64(n) / rate
	return pacer{phase: interval * float64(k) / float64(n), interval: interval}
}

// flood reports whether publishes are not paced.
func (p pacer) flood() bool { return p.interval == 0 }

// due is when publish seq (0, 1, …) should go out. Computed from seq, not
// accumulated, so rounding never drifts and a late connection catches up
// by sending what is overdue at once instead of shifting its schedule.
func (p pacer) due(seq int) time.Duration {
	return time.Duration(p.phase + float64(seq)*p.interval)
}
