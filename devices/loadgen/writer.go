package loadgen

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// writer publishes the readings of one home in one run.
type writer struct {
	c     *conn
	w     *window
	l     Load
	start time.Time
	stop  <-chan struct{}
	pace  pacer

	sent    int
	maxLate time.Duration
	err     error
}

// run publishes until the run stops, Count is sent or the connection
// dies. While slots are free and readings due it encodes them into one
// buffer and writes them with one syscall: a window freed by a burst of
// PUBACKs refills in one write.
func (wr *writer) run() {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for wr.more() {
		due := wr.pace.due(wr.sent)
		if wr.pastEnd(due) {
			return
		}
		if !wr.pace.flood() {
			if wait := due - time.Since(wr.start); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-wr.stop:
					return
				case <-wr.c.dead:
					return
				}
			}
		}
		if !wr.w.acquire(wr.stop, wr.c.dead) {
			return
		}
		wr.encode(due)
		// Fill the buffer with whatever else may go now.
		for wr.more() && (wr.pace.flood() || wr.pace.due(wr.sent) <= time.Since(wr.start)) && !wr.pastEnd(wr.pace.due(wr.sent)) && wr.w.tryAcquire() {
			wr.encode(wr.pace.due(wr.sent))
		}
		if err := wr.c.flushOut(); err != nil {
			wr.err = err
			return
		}
	}
}

// pastEnd reports whether a paced publish is due after the run's end: the
// stop signal and its timer can race, and a run offers exactly its rate
// for its duration.
func (wr *writer) pastEnd(due time.Duration) bool {
	return !wr.pace.flood() && wr.l.Duration > 0 && due >= wr.l.Duration
}

// more reports whether another reading should go out.
func (wr *writer) more() bool {
	if wr.l.Count > 0 && wr.sent >= wr.l.Count {
		return false
	}
	select {
	case <-wr.stop:
		return false
	default:
		return true
	}
}

// encode appends reading wr.sent, due at due (paced runs), to the
// connection's buffer and records it in the window; a slot is held.
func (wr *writer) encode(due time.Duration) {
	c, seq := wr.c, wr.sent
	now := time.Since(wr.start)
	from := now // a flood measures from the publish
	if !wr.pace.flood() {
		from = due
		wr.maxLate = max(wr.maxLate, now-due)
	}
	var id uint16
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1 // 0 is not a packet id (MQTT 3.1.1 §2.3.1)
		}
		id = c.nextID
		key := uint32(id)
		if c.mode == ConfirmReply {
			key = uint32(seq) //nolint:gosec // 0 ≤ seq ≤ maxSeq
		}
		if wr.w.add(key, from) {
			break
		}
		if c.mode == ConfirmReply {
			break // seq is never reused in a run
		}
	}
	at := wr.start.Add(-wr.l.Backlog + time.Duration(seq)*wr.l.Spacing)
	c.payload = AppendReading(c.payload[:0], wr.l.Prefix, seq, at)
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: mqttVersion,
		TopicName:       c.topic,
		PacketID:        id,
		Payload:         c.payload,
	}
	// PublishEncode fails only without a packet id.
	_ = pk.PublishEncode(&c.out)
	wr.sent++
}
