package sim

import (
	"math"
	"sync/atomic"
	"time"
)

// Stats are the totals of a run, or the running totals while it goes on.
type Stats struct {
	// Devices is how many devices were connected.
	Devices int
	// Elapsed is how long messages were generated (the run, without the
	// drain at its end).
	Elapsed time.Duration

	// Sent counts messages published (first attempts), Readings the
	// readings in them.
	Sent, Readings int64
	// OutOfRange, Duplicates and Malformed count the messages of each
	// Class among Sent.
	OutOfRange, Duplicates, Malformed int64
	// Buffered counts messages held during an outage and sent when the
	// gateway came back; Outages the outages that ended so.
	Buffered, Outages int64
	// Held counts messages still queued in an outage when the run ended:
	// never sent.
	Held int64

	// Acked counts messages that got their PUBACK.
	Acked int64
	// Unacked counts messages without a PUBACK when the drain ended.
	Unacked int64
	// Failed counts publish attempts that failed (the connection was
	// lost); each was sent again (Resent) once the device was connected.
	Failed, Resent int64
	// Timeouts counts PUBACKs that took longer than Config.AckTimeout.
	Timeouts int64
	// Reconnects counts lost connections.
	Reconnects int64

	// Stored, StoredBefore and Rejected are what vidda replied on the
	// devices' acks and errors topics: Observations stored (a blood
	// pressure is two: the panel and its pulse), Observations it had
	// stored before (re-sent readings), items rejected. Replies are QoS 0
	// and may be missed when a connection drops.
	Stored, StoredBefore, Rejected int64

	// P50, P99 and Max are the publish → PUBACK latency of acked
	// messages (P50 and P99 to within 5 %).
	P50, P99, Max time.Duration
}

// Rate is messages sent per second of Elapsed.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// Delivery is a message that got its PUBACK.
type Delivery struct {
	// DeviceID is the device that sent it.
	DeviceID string
	// Class is what it was meant to be.
	Class Class
	// Keys are the idempotency keys of what vidda should have stored
	// from it (Message.Keys).
	Keys []string
	// Latency is publish → PUBACK, of the attempt that got it.
	Latency time.Duration
}

// counters are the running totals, shared by every device of a run.
type counters struct {
	sent, readings, outOfRange, duplicates, malformed atomic.Int64
	buffered, outages                                 atomic.Int64
	acked, unacked, failed, resent, timeouts          atomic.Int64
	reconnects                                        atomic.Int64
	stored, storedBefore, rejected                    atomic.Int64
	latency                                           histogram
}

// count records a first publish of m.
func (c *counters) count(m Message) {
	c.sent.Add(1)
	c.readings.Add(int64(m.Readings))
	switch m.Class {
	case ClassOutOfRange:
		c.outOfRange.Add(1)
	case ClassDuplicate:
		c.duplicates.Add(1)
	case ClassMalformed:
		c.malformed.Add(1)
	case ClassReading:
	}
	if m.Buffered {
		c.buffered.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Sent: c.sent.Load(), Readings: c.readings.Load(),
		OutOfRange: c.outOfRange.Load(), Duplicates: c.duplicates.Load(), Malformed: c.malformed.Load(),
		Buffered: c.buffered.Load(), Outages: c.outages.Load(),
		Acked: c.acked.Load(), Unacked: c.unacked.Load(), Failed: c.failed.Load(), Resent: c.resent.Load(),
		Timeouts: c.timeouts.Load(), Reconnects: c.reconnects.Load(),
		Stored: c.stored.Load(), StoredBefore: c.storedBefore.Load(), Rejected: c.rejected.Load(),
	}
	s.P50, s.P99, s.Max = c.latency.quantile(0.5), c.latency.quantile(0.99), c.latency.maximum()
	return s
}

// histogram counts latencies in buckets growing by 5 % from 1 µs to
// beyond 100 s: fixed memory however long the run, safe for concurrent use.
type histogram struct {
	buckets [histBuckets]atomic.Int64
	max     atomic.Int64
}

const (
	histGrowth  = 1.05
	histBuckets = 400 // 1.05^400 µs ≈ 3 × 10^8 µs = 5 minutes
)

func (h *histogram) add(d time.Duration) {
	us := float64(d.Microseconds())
	i := 0
	if us > 1 {
		i = min(int(math.Log(us)/math.Log(histGrowth)), histBuckets-1)
	}
	h.buckets[i].Add(1)
	for {
		old := h.max.Load()
		if int64(d) <= old || h.max.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding quantile q, at
// most the largest latency seen; 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	var counts [histBuckets]int64
	var total int64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, n := range counts {
		seen += n
		if seen >= rank {
			upper := time.Duration(math.Pow(histGrowth, float64(i+1)) * float64(time.Microsecond))
			return min(upper, h.maximum())
		}
	}
	return h.maximum()
}

func (h *histogram) maximum() time.Duration { return time.Duration(h.max.Load()) }
