package signaling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vidda/vidda/internal/audit"
)

// Conn is one client's websocket as the visit layer uses it; the HTTP
// edge adapts its websocket library to it. ReadMessage is called from one
// goroutine, WriteMessage from another; Close may be called from any and
// must make a blocked ReadMessage return.
type Conn interface {
	// ReadMessage returns the next text message.
	ReadMessage() ([]byte, error)
	// WriteMessage sends one text message, giving up after a deadline of
	// the adapter's choosing (a client that stopped reading).
	WriteMessage(data []byte) error
	// Close sends a close frame with code and reason and closes the
	// connection.
	Close(code int, reason string) error
}

// The websocket close codes the server uses (RFC 6455 §7.4; 4000–4999
// are the application's own).
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001
	ClosePolicy       = 1008 // rate limit exceeded, slow reader
	CloseTooBig       = 1009
	CloseInternal     = 1011
	CloseInvalidToken = 4001
	CloseForbidden    = 4003
	CloseNotFound     = 4004
	CloseTimeout      = 4008 // no join in time, or silent too long
	CloseConflict     = 4009 // the appointment is not open for a visit
	CloseRemoved      = 4010
	CloseReplaced     = 4011 // the participant joined from another connection
	CloseFull         = 4029
)

// session is one connection: a reader (Serve's goroutine) and a writer.
type session struct {
	v    *Visits
	conn Conn
	addr string
	out  chan []byte
	quit chan struct{}

	mu               sync.Mutex
	closing          bool
	code             int
	reason           string
	lastSeen         atomic.Int64 // unix nanoseconds
	busy             atomic.Bool  // the reader is handling a message
	joined           atomic.Bool
	limiter          *rate.Limiter
	strikes          int
	lastLimitWarning time.Time
	writerDone       chan struct{}

	// Set once by join (under the room's lock), read afterwards by the
	// reader and the room.
	room  *room
	p     *participant
	agent audit.Agent
}

// Serve runs one client connection until it closes, ctx ends or the
// visit layer stops; addr is the client's network address (for the audit
// trail). The first message must be a join (within Config.JoinTimeout).
func (v *Visits) Serve(ctx context.Context, conn Conn, addr string) {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		_ = conn.Close(CloseGoingAway, "server restarting")
		return
	}
	v.wg.Add(2) // reader and writer
	v.mu.Unlock()
	defer v.wg.Done()
	s := &session{
		v: v, conn: conn, addr: addr,
		out: make(chan []byte, v.cfg.SendQueue), quit: make(chan struct{}), writerDone: make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(v.cfg.RatePerSecond), v.cfg.RateBurst),
	}
	s.lastSeen.Store(time.Now().UnixNano())
	go s.writer(ctx)
	s.read(ctx)
	if s.room != nil {
		s.room.disconnect(s)
	}
	s.finish(CloseNormal, "", nil)
	<-s.writerDone
}

// read handles messages until the connection fails or is closed.
func (s *session) read(ctx context.Context) {
	cfg := s.v.cfg
	for {
		data, err := s.conn.ReadMessage()
		if err != nil {
			return
		}
		s.lastSeen.Store(time.Now().UnixNano())
		if !s.allow() {
			continue
		}
		m, err := DecodeMessage(data, cfg.MaxMessage, cfg.MaxChat)
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) && pe.Code == "too-large" {
				s.finish(CloseTooBig, "message too large", errorMessage(err))
				return
			}
			s.send(errorMessage(err))
			continue
		}
		s.busy.Store(true)
		if err := s.handle(ctx, m); err != nil {
			s.send(errorMessage(err))
		}
		// The server's own time (a join reads the database) is not the
		// client's silence.
		s.lastSeen.Store(time.Now().UnixNano())
		s.busy.Store(false)
	}
}

// allow applies the rate limit: a message over it is dropped with an
// error (at most one a second); a client that keeps going past another
// burst's worth is disconnected.
func (s *session) allow() bool {
	if s.limiter.Allow() {
		s.strikes = 0
		return true
	}
	s.strikes++
	if s.strikes > s.v.cfg.RateBurst {
		s.finish(ClosePolicy, "rate limit", &Message{Type: TypeError, Code: "rate-limited", Error: "too many messages; disconnected"})
		return false
	}
	if now := time.Now(); now.Sub(s.lastLimitWarning) >= time.Second {
		s.lastLimitWarning = now
		s.send(&Message{Type: TypeError, Code: "rate-limited", Error: fmt.Sprintf("more than %g messages a second; message dropped", s.v.cfg.RatePerSecond)})
	}
	return false
}

// handle acts on one valid message.
func (s *session) handle(ctx context.Context, m *Message) error {
	switch m.Type { //nolint:exhaustive // the rest need a joined session, below
	case TypePing:
		s.send(&Message{Type: TypePong})
		return nil
	case TypePong:
		return nil
	case TypeJoin:
		if s.joined.Load() {
			return protocolErr("invalid", "already joined")
		}
		return s.join(ctx, m)
	default:
	}
	if !s.joined.Load() {
		return protocolErr("not-joined", "send join first")
	}
	r, p := s.room, s.p
	switch m.Type { //nolint:exhaustive // DecodeMessage let only client types through
	case TypeLeave:
		r.leave(ctx, s)
		s.finish(CloseNormal, "left", nil)
		return nil
	case TypeAdmit, TypeRemove, TypeEnd:
		if p.kind != KindPractitioner {
			return protocolErr("forbidden", "only the appointment's practitioners may %s", m.Type)
		}
		return s.manage(ctx, m)
	case TypeOffer, TypeAnswer, TypeCandidate, TypeAudioOnly:
		if err := r.media(ctx, s, m); err != nil {
			s.v.log.DebugContext(ctx, "signaling: media refused a message", "appointment", r.id, "participant", p.ref, "type", m.Type, "err", err)
			return protocolErr("media", "%s could not be applied", m.Type)
		}
		return nil
	case TypeMute, TypeChat:
		return r.relay(s, m)
	default:
		return protocolErr("unknown-type", "%q is not a message type a client may send", m.Type)
	}
}

// manage is a practitioner's admit, remove or end over the websocket.
func (s *session) manage(ctx context.Context, m *Message) error {
	r, p := s.room, s.p
	var (
		err    error
		kind   audit.Kind
		detail string
	)
	switch m.Type { //nolint:exhaustive // handle sends only admit, remove and end here
	case TypeAdmit:
		err, kind, detail = r.admit(p.ref, m.Participant), audit.KindVideoAdmit, "admitted "+m.Participant
	case TypeRemove:
		err, kind, detail = r.remove(p.ref, m.Participant), audit.KindVideoLeave, "removed "+m.Participant
	default:
		err, kind, detail = r.end(ctx, "ended by "+p.ref), audit.KindVideoLeave, "ended the visit"
	}
	if err == nil {
		s.v.recordAgent(ctx, s.agent, kind, r.id, r.appt.patient, detail)
	}
	return err
}

// join checks the token and enters the room it names.
func (s *session) join(ctx context.Context, m *Message) error {
	v := s.v
	c, expired, err := v.tokens.verify(m.Token, time.Now())
	if err != nil {
		s.finish(CloseInvalidToken, "invalid token", errorMessage(err))
		return nil
	}
	s.agent = audit.Agent{
		Subject: c.Subject, Role: c.Role, Reference: c.Participant, TokenID: c.TokenID, Address: s.addr,
	}
	for attempt := 0; ; attempt++ {
		var r *room
		r, err = v.open(ctx, c.Appointment)
		if err == nil {
			err = r.join(ctx, s, c, expired, m.Resume)
		}
		if !errors.Is(err, errRoomEnded) || attempt > 0 {
			break
		}
	}
	if err != nil {
		if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrNotParticipant) && !errors.Is(err, ErrNotJoinable) &&
			!errors.Is(err, ErrRoomFull) && !errors.Is(err, ErrAppointmentNotFound) && !errors.Is(err, ErrStopped) {
			v.log.ErrorContext(ctx, "signaling: join", "appointment", c.Appointment, "participant", c.Participant, "err", err)
		}
		code, reason := closeCodeOf(err)
		s.finish(code, reason, errorMessage(err))
		return nil
	}
	s.joined.Store(true)
	return nil
}

// send queues m for the writer.
func (s *session) send(m *Message) {
	b, err := encode(m)
	if err != nil {
		s.v.log.Error("signaling: encode", "type", m.Type, "err", err)
		return
	}
	s.sendRaw(b)
}

// sendRaw queues an encoded message; it never blocks. A client whose
// queue is full is too slow for a live visit and is disconnected.
func (s *session) sendRaw(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	select {
	case s.out <- b:
	default:
		s.closing, s.code, s.reason = true, ClosePolicy, "too slow"
		close(s.quit)
	}
}

// finish closes the connection after the queued messages and final (if
// any) are written. Only the first call counts.
func (s *session) finish(code int, reason string, final *Message) {
	var b []byte
	if final != nil {
		b, _ = encode(final)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	if b != nil {
		select {
		case s.out <- b:
		default:
		}
	}
	s.closing, s.code, s.reason = true, code, reason
	close(s.quit)
}

// writer writes queued messages, pings, and drops a connection that was
// silent for three ping intervals or did not join in time.
func (s *session) writer(ctx context.Context) {
	defer s.v.wg.Done()
	defer close(s.writerDone)
	cfg := s.v.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	joinBy := time.NewTimer(cfg.JoinTimeout)
	defer joinBy.Stop()
	pingMsg, _ := encode(&Message{Type: TypePing})
	for {
		select {
		case b := <-s.out:
			if err := s.conn.WriteMessage(b); err != nil {
				s.finish(CloseGoingAway, "write failed", nil)
				_ = s.conn.Close(CloseGoingAway, "")
				return
			}
		case <-ping.C:
			if !s.busy.Load() && time.Since(time.Unix(0, s.lastSeen.Load())) > 3*cfg.PingInterval {
				s.finish(CloseTimeout, "silent too long", &Message{Type: TypeError, Code: "timeout", Error: "no message for three ping intervals"})
				continue
			}
			s.sendRaw(pingMsg)
		case <-joinBy.C:
			if !s.joined.Load() {
				s.finish(CloseTimeout, "no join", &Message{Type: TypeError, Code: "timeout", Error: "send join first"})
			}
		case <-ctx.Done():
			s.finish(CloseGoingAway, "server restarting", &Message{Type: TypeError, Code: "going-away", Error: "the server is restarting; join again"})
		case <-s.v.ctx.Done():
			s.finish(CloseGoingAway, "server restarting", &Message{Type: TypeError, Code: "going-away", Error: "the server is restarting; join again"})
		case <-s.quit:
			s.drain()
			return
		}
	}
}

// drain writes what is still queued and closes the connection.
func (s *session) drain() {
	for {
		select {
		case b := <-s.out:
			if s.conn.WriteMessage(b) != nil {
				_ = s.conn.Close(s.code, s.reason)
				return
			}
		default:
			_ = s.conn.Close(s.code, s.reason)
			return
		}
	}
}

// errorMessage is the error message a client gets for err: the code of a
// ProtocolError, or of the visit layer's error, never internal detail.
func errorMessage(err error) *Message {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return &Message{Type: TypeError, Code: pe.Code, Error: pe.Msg}
	}
	code, text := "internal", "server error"
	switch {
	case errors.Is(err, ErrInvalidToken):
		code, text = "token", err.Error()
	case errors.Is(err, ErrNotParticipant), errors.Is(err, ErrNotPractitioner):
		code, text = "forbidden", err.Error()
	case errors.Is(err, ErrAppointmentNotFound), errors.Is(err, ErrNoSuchParticipant):
		code, text = "not-found", err.Error()
	case errors.Is(err, ErrNotJoinable):
		code, text = "not-joinable", err.Error()
	case errors.Is(err, ErrRoomFull):
		code, text = "full", err.Error()
	case errors.Is(err, ErrStopped):
		code, text = "going-away", err.Error()
	}
	return &Message{Type: TypeError, Code: code, Error: text}
}

// closeCodeOf is the close code of a failed join.
func closeCodeOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrInvalidToken):
		return CloseInvalidToken, "invalid token"
	case errors.Is(err, ErrNotParticipant):
		return CloseForbidden, "forbidden"
	case errors.Is(err, ErrAppointmentNotFound):
		return CloseNotFound, "not found"
	case errors.Is(err, ErrNotJoinable):
		return CloseConflict, "not open for a visit"
	case errors.Is(err, ErrRoomFull):
		return CloseFull, "full"
	case errors.Is(err, ErrStopped):
		return CloseGoingAway, "server restarting"
	}
	return CloseInternal, "server error"
}
