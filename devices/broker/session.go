package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Why a message or a session ends early.
var (
	// errSessionClosed means the connection ended before a message was taken.
	errSessionClosed = errors.New("mqtt session closed")
	// errWriteTimeout is why a device that stopped reading is disconnected.
	errWriteTimeout = errors.New("mqtt puback write timed out")
)

// pending is one message handed to the Handler, waiting for its outcome
// and then for its PUBACK to be written.
type pending struct {
	packetID uint16
	qos      byte
	acked    bool // guarded by session.mu
	result   Result
}

// session is the ack side of one authenticated connection: the messages it
// handed over, in arrival order, and the writer goroutine (run) that writes
// their PUBACKs in that order as their outcomes arrive.
type session struct {
	b        *Broker
	cl       *mqtt.Client
	deviceID string
	v5       bool

	mu      sync.Mutex
	queue   []*pending // arrival order; the head is the next PUBACK due
	stopped bool

	ready    chan struct{} // cap 1: an outcome arrived
	space    chan struct{} // cap 1: messages left the queue
	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once

	broken  bool   // a write failed; only run touches it
	pubacks []byte // PUBACKs encoded for one write; only run touches it
}

func newSession(b *Broker, cl *mqtt.Client, deviceID string) *session {
	return &session{
		b:        b,
		cl:       cl,
		deviceID: deviceID,
		v5:       cl.Properties.ProtocolVersion == 5,
		queue:    make([]*pending, 0, min(b.cfg.MaxInFlight, 64)),
		ready:    make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
}

// notify wakes the goroutine waiting on c, if any, without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reserve appends a message to the queue, waiting while the connection has
// MaxInFlight messages outstanding. Only the connection's read loop calls
// it, so appends happen in arrival order.
func (s *session) reserve(ctx context.Context, packetID uint16, qos byte) (*pending, error) {
	for {
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return nil, errSessionClosed
		}
		if len(s.queue) < s.b.cfg.MaxInFlight {
			p := &pending{packetID: packetID, qos: qos}
			s.queue = append(s.queue, p)
			s.b.inflight.Add(1)
			s.mu.Unlock()
			return p, nil
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.stop:
			return nil, errSessionClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for an in-flight slot: %w", ctx.Err())
		}
	}
}

// ackFunc is the callback the Handler gets for p. It only records the
// outcome and wakes the writer: the pipeline never waits on a socket.
func (s *session) ackFunc(p *pending) func(Result) {
	return func(r Result) {
		s.mu.Lock()
		if p.acked {
			s.mu.Unlock()
			s.b.log.Warn("mqtt handler acknowledged a message twice", "device", s.deviceID)
			return
		}
		p.acked, p.result = true, r
		s.mu.Unlock()
		if r.Rejected {
			s.b.stats.rejected.Add(1)
		} else {
			s.b.stats.stored.Add(1)
		}
		notify(s.ready)
	}
}

// takeAcked moves the acknowledged head of the queue into batch. Messages
// behind one still waiting stay, which is what keeps PUBACKs in order.
func (s *session) takeAcked(batch []*pending) []*pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(s.queue) && s.queue[n].acked {
		n++
	}
	if n == 0 {
		return batch
	}
	batch = append(batch, s.queue[:n]...)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	notify(s.space)
	return batch
}

// run is the connection's writer. It ends when the session is shut down:
// the connection ended, a write failed, or the broker stopped.
func (s *session) run() {
	defer s.b.writers.Done()
	var batch []*pending
	for {
		select {
		case <-s.ready:
		case <-s.stop:
			return
		}
		for {
			batch = s.takeAcked(batch[:0])
			if len(batch) == 0 {
				break
			}
			s.deliver(batch)
			// Counted down only now, so a drain waits for the writes too.
			s.b.inflight.Add(-int64(len(batch)))
			clear(batch)
		}
	}
}

// deliver writes the PUBACKs of batch in order and publishes the replies.
func (s *session) deliver(batch []*pending) {
	// A write blocks while the device does not read, and mochi's own
	// writer may hold the client's lock as long (its deadline is the
	// keepalive, pushed back by every packet the device sends, and none for
	// keepalive 0). A connection deadline would be reset under us, so a
	// watchdog closes the connection instead: the blocked write fails, and
	// only this connection's writer ever waited.
	watchdog := time.AfterFunc(s.b.cfg.WriteTimeout, func() { s.cl.Stop(errWriteTimeout) })
	defer watchdog.Stop()
	// The plain PUBACKs of a batch go out in one write: a commit often
	// acknowledges several messages of one connection, and a write is a
	// system call. A PUBACK with a reason (MQTT 5) goes through mochi's
	// encoder, after the ones before it, so the order stays.
	b := s.pubacks[:0]
	var n uint64
	for _, p := range batch {
		switch {
		case p.qos == 0:
		case s.v5 && p.result.Rejected:
			s.writePubacks(b, n)
			b, n = b[:0], 0
			s.writePuback(p)
		default:
			b = appendPuback(b, p.packetID)
			n++
		}
	}
	s.writePubacks(b, n)
	s.pubacks = b[:0]
	for _, p := range batch {
		s.publishReply(p.result)
	}
}

// appendPuback appends the PUBACK of packet id, as mochi encodes one
// without reason or properties: MQTT 3.1.1 §3.4, and MQTT 5 §3.4.2.1
// (reason Success with no properties may be left out).
func appendPuback(b []byte, id uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, packets.Puback<<4, 2), id)
}

// writePubacks writes n PUBACKs encoded in b, holding the client's lock as
// mochi's own writes do, so that packets never interleave.
func (s *session) writePubacks(b []byte, n uint64) {
	if n == 0 {
		return
	}
	if s.broken {
		s.b.stats.dropped.Add(n)
		return
	}
	s.cl.Lock()
	_, err := s.cl.Net.Conn.Write(b)
	s.cl.Unlock()
	if err != nil {
		s.fail(err, n)
		return
	}
	s.b.stats.acked.Add(n)
}

// fail ends a session whose PUBACKs of n messages could not be written.
func (s *session) fail(err error, n uint64) {
	s.broken = true
	s.b.stats.dropped.Add(n)
	s.b.log.Info("mqtt puback not delivered; disconnecting",
		"device", s.deviceID, "client", s.cl.ID, "error", err)
	s.cl.Stop(fmt.Errorf("write puback: %w", err))
	s.shutdown()
}

func (s *session) writePuback(p *pending) {
	if s.broken {
		s.b.stats.dropped.Add(1)
		return
	}
	// WritePacket takes the client's lock, so it does not interleave with
	// mochi's own writes to the connection.
	if err := s.cl.WritePacket(s.puback(p)); err != nil {
		s.fail(err, 1)
		return
	}
	s.b.stats.acked.Add(1)
}

// puback builds what server.buildAck would, with the Handler's reason for a
// rejected message when the client speaks MQTT 5 (MQTT 3.1.1 PUBACKs carry
// no reason).
func (s *session) puback(p *pending) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Puback},
		PacketID:    p.packetID,
	}
	if s.v5 && p.result.Rejected {
		code := pubackReason(p.result.ReasonCode)
		pk.ReasonCode = code.Code
		pk.Properties.ReasonString = code.Reason
	}
	return pk
}

// pubackReason maps a Handler's reason to a code MQTT 5 allows in a
// PUBACK for a refused message (§3.4.2.1).
func pubackReason(c byte) packets.Code {
	for _, code := range []packets.Code{
		packets.ErrImplementationSpecificError,
		packets.ErrNotAuthorized,
		packets.ErrTopicNameInvalid,
		packets.ErrQuotaExceeded,
		packets.ErrPayloadFormatInvalid,
	} {
		if code.Code == c {
			return code
		}
	}
	return packets.ErrUnspecifiedError
}

// publishReply publishes the outcome to the device's acks or errors topic.
// Inline publishes queue for each subscriber without blocking (mochi drops
// what does not fit a subscriber's queue), so a reply never waits on a
// device.
func (s *session) publishReply(r Result) {
	s.publish(replyTopic(s.deviceID, r.Rejected), r.Reply)
	s.publish(replyTopic(s.deviceID, true), r.Errors)
}

func (s *session) publish(topic string, payload []byte) {
	if payload == nil {
		return
	}
	if err := s.b.srv.Publish(topic, payload, false, 1); err != nil {
		s.b.log.Warn("mqtt reply not published", "device", s.deviceID, "error", err)
	}
}

// shutdown ends the session: messages still queued will get no PUBACK (the
// device sends them again), acks arriving for them are ignored, a read loop
// waiting for a slot gives up, and the writer returns.
func (s *session) shutdown() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		left := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, p := range left {
			if p.qos > 0 {
				s.b.stats.dropped.Add(1)
			}
		}
		s.b.inflight.Add(-int64(len(left)))
		close(s.stop)
	})
}
