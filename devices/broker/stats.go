package broker

import "sync/atomic"

// Stats are counters since New, for tests and metrics.
type Stats struct {
	// Received is how many messages were handed to the Handler.
	Received uint64
	// Stored is how many outcomes the Handler reported as stored.
	Stored uint64
	// Rejected is how many outcomes the Handler reported as dead letters.
	Rejected uint64
	// Acked is how many PUBACKs were written (for stored and rejected
	// messages alike).
	Acked uint64
	// Dropped is how many PUBACKs were never written because the connection
	// had gone; the device sends those messages again.
	Dropped uint64
	// Denied is how many publishes and subscriptions the ACL refused, plus
	// refused QoS 2 publishes.
	Denied uint64
	// AuthFailed is how many connections were refused at CONNECT.
	AuthFailed uint64
}

// counters back Stats.
type counters struct {
	received, stored, rejected, acked, dropped, denied, authFailed atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Received:   c.received.Load(),
		Stored:     c.stored.Load(),
		Rejected:   c.rejected.Load(),
		Acked:      c.acked.Load(),
		Dropped:    c.dropped.Load(),
		Denied:     c.denied.Load(),
		AuthFailed: c.authFailed.Load(),
	}
}
