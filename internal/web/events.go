package web

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// Live worklist: GET /app/events is a Server-Sent Events stream
// (WHATWG HTML §9.2) that says "worklist" whenever a Task of a patient the
// viewer may see is written. It is fed by PostgreSQL: migration 00011's
// trigger NOTIFYs channel vidda_worklist with the Task's patient id on
// every insert and update, at commit, so every instance hears every
// change, whichever instance (or the care engine) wrote it. Each process
// holds one connection that LISTENs and fans out to its open streams; the
// page's script then fetches /app/worklist and swaps the list in.
//
// A stream sends a comment every KeepAlive so proxies keep it open, and
// at the same tick checks that the session is still live (a sign-out or a
// revoked session elsewhere ends it within one tick). It ends at the
// session's idle end as it stood when the stream opened, so an open
// dashboard does not keep an unattended session alive for ever: the page
// then asks the nurse to reload. Sign-out in this process ends the
// session's streams at once.

// worklistChannel is the NOTIFY channel of Task changes (migration 00011).
const worklistChannel = "vidda_worklist"

// allPatients is the event a subscriber gets when it may have missed some
// (the listening connection was lost): refetch regardless.
const allPatients = "*"

// hub fans Task notifications out to the streams of this process.
type hub struct {
	conn *pgx.ConnConfig // nil: no database events
	log  *slog.Logger
	mu   sync.Mutex
	subs map[*subscriber]struct{}
	up   bool          // a connection is listening
	done chan struct{} // closed when run returns: every stream ends
}

// listening reports whether a connection is LISTENing now.
func (h *hub) listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

func (h *hub) setListening(up bool) {
	h.mu.Lock()
	h.up = up
	h.mu.Unlock()
}

func newHub(conn *pgx.ConnConfig, log *slog.Logger) *hub {
	return &hub{conn: conn, log: log, subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// subscriber is one open stream.
type subscriber struct {
	sessionID string
	mu        sync.Mutex
	pending   map[string]struct{}
	wake      chan struct{} // cap 1: something is pending
	ended     chan struct{} // closed when the session signs out
	endOnce   sync.Once
}

func (h *hub) subscribe(sessionID string) *subscriber {
	s := &subscriber{sessionID: sessionID, pending: map[string]struct{}{}, wake: make(chan struct{}, 1), ended: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// publish hands patientID to every stream; it never blocks: a stream that
// is behind gets the ids merged.
func (h *hub) publish(patientID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		s.pending[patientID] = struct{}{}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// take returns and clears what is pending.
func (s *subscriber) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.pending))
	for id := range s.pending {
		out = append(out, id)
	}
	clear(s.pending)
	return out
}

// endSession ends the streams of a session that signed out.
func (h *hub) endSession(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.sessionID == id {
			s.endOnce.Do(func() { close(s.ended) })
		}
	}
}

// Backoff of the listening connection after a failure.
const (
	listenBackoffMin = 200 * time.Millisecond
	listenBackoffMax = 10 * time.Second
)

// run listens until ctx ends, reconnecting with backoff.
func (h *hub) run(ctx context.Context) error {
	defer close(h.done)
	if h.conn == nil {
		<-ctx.Done()
		return nil
	}
	backoff := listenBackoffMin
	for {
		started := time.Now()
		err := h.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = listenBackoffMin
		}
		h.log.WarnContext(ctx, "worklist events: listening failed, retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listen holds one connection until it fails or ctx ends.
func (h *hub) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, h.conn.Copy())
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+worklistChannel); err != nil {
		return err
	}
	h.setListening(true)
	defer h.setListening(false)
	// Changes made while no connection listened are lost: every stream
	// refetches once.
	h.publish(allPatients)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload != "" && fhir.ValidID(n.Payload) {
			h.publish(n.Payload)
		}
	}
}

// streamWriteTimeout bounds one write to a stream: a client that stopped
// reading is dropped. It also replaces the server's WriteTimeout, which
// fasthttp sets once per response and would cut every stream after it.
const streamWriteTimeout = 30 * time.Second

// events is GET /app/events.
func (p *Pages) events(c *fiber.Ctx, sess *auth.Session) error {
	a, err := p.access(sess.Principal, auth.InteractionSearch, "Task")
	if err != nil {
		return p.failErr(c, sess, err)
	}
	w := &watch{
		p: p, access: a, token: strings.Clone(c.Cookies(auth.SessionCookie)), ends: sess.Principal.ExpiresAt,
		conn: c.Context().Conn(), sub: p.hub.subscribe(sess.ID), seen: map[string]visibility{},
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer p.hub.unsubscribe(w.sub)
		w.stream(bw)
	})
	return nil
}

// watch is one open stream.
type watch struct {
	p      *Pages
	access store.Access
	token  string
	ends   time.Time
	conn   net.Conn
	sub    *subscriber
	// seen caches whether the viewer may see a patient, for a while.
	seen map[string]visibility
}

type visibility struct {
	ok    bool
	until time.Time
}

// visibilityTTL is how long a care-team answer is reused; a change of
// care team reaches a running stream within it.
const visibilityTTL = time.Minute

func (w *watch) stream(bw *bufio.Writer) {
	tick := time.NewTicker(w.p.cfg.KeepAlive)
	defer tick.Stop()
	// retry: how long the browser waits before reconnecting a dropped stream.
	if !w.send(bw, "retry: 2000\n: live\n\n") {
		return
	}
	for {
		select {
		case <-w.p.hub.done:
			return
		case <-w.sub.ended:
			w.send(bw, "event: session-ended\ndata: signed-out\n\n")
			return
		case <-tick.C:
			if !w.live() {
				w.send(bw, "event: session-ended\ndata: expired\n\n")
				return
			}
			if !w.send(bw, ": keep-alive\n\n") {
				return
			}
		case <-w.sub.wake:
			if ids := w.visible(w.sub.take()); len(ids) > 0 {
				if !w.send(bw, "event: worklist\ndata: "+strings.Join(ids, ",")+"\n\n") {
					return
				}
			}
		}
	}
}

// send writes and flushes msg; false when the client is gone.
func (w *watch) send(bw *bufio.Writer, msg string) bool {
	if w.conn != nil {
		_ = w.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	}
	if _, err := bw.WriteString(msg); err != nil {
		return false
	}
	return bw.Flush() == nil
}

// live reports whether the stream may go on: the session still exists
// and its idle end, as of the stream's start, has not passed.
func (w *watch) live() bool {
	if !w.p.now().Before(w.ends) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := w.p.deps.Accounts.VerifySession(ctx, w.token)
	if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
		w.p.log.WarnContext(ctx, "worklist events: verify session", "err", err)
		return true // the database hiccuped; the next tick asks again
	}
	return err == nil
}

// visible keeps the patient ids the viewer may see, asking the store
// (the same care-team rule as every read) and caching the answer.
func (w *watch) visible(ids []string) []string {
	var out []string
	now := w.p.now()
	for _, id := range ids {
		if id == allPatients {
			return []string{allPatients}
		}
		if w.access.CareOf == "" && w.access.PatientID == "" {
			out = append(out, id)
			continue
		}
		v, ok := w.seen[id]
		if !ok || now.After(v.until) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := w.p.deps.Store.Read(ctx, "Patient", id, w.access)
			cancel()
			v = visibility{ok: err == nil, until: now.Add(visibilityTTL)}
			if err != nil && !errors.Is(err, fhir.ErrNotFound) && !errors.Is(err, fhir.ErrDeleted) {
				v.ok = true // unsure: let the list refetch; it is confined anyway
				v.until = now
			}
			w.seen[id] = v
		}
		if v.ok {
			out = append(out, id)
		}
	}
	return out
}
