package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// fakeMedia stands in for signaling/sfu until it lands: it records what
// the visit layer asks of each peer and answers an offer with an answer.
type fakeMedia struct {
	mu    sync.Mutex
	peers []*fakePeer
	// failNext is, per participant, the error their next Connect returns
	// instead of a peer (once).
	failNext map[string]error
}

type fakePeer struct {
	m           *fakeMedia
	room, who   string
	send        func(MediaEvent)
	admitted    bool
	audioOnly   bool
	restarts    int
	closed      bool
	remotes     []string
	candidates  int
	admitCalls  int
	connectedAt time.Time
}

func (m *fakeMedia) Connect(_ context.Context, room, participant string, send func(MediaEvent)) (MediaPeer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err, ok := m.failNext[participant]; ok {
		delete(m.failNext, participant)
		return nil, err
	}
	p := &fakePeer{m: m, room: room, who: participant, send: send, connectedAt: time.Now()}
	m.peers = append(m.peers, p)
	return p, nil
}

// failNextConnect makes who's next Connect fail with err, as a media
// layer out of ports or refusing a second peer would.
func (m *fakeMedia) failNextConnect(who string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext == nil {
		m.failNext = map[string]error{}
	}
	m.failNext[who] = err
}

// peersOf returns the peers created for who, oldest first.
func (m *fakeMedia) peersOf(who string) []*fakePeer {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*fakePeer
	for _, p := range m.peers {
		if p.who == who {
			out = append(out, p)
		}
	}
	return out
}

// state reads a peer's recorded state under the lock.
func (p *fakePeer) state() (admitted, closed bool, restarts int) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	return p.admitted, p.closed, p.restarts
}

func (p *fakePeer) Remote(_ context.Context, d Description) error {
	p.m.mu.Lock()
	p.remotes = append(p.remotes, d.Type)
	p.m.mu.Unlock()
	if d.Type == "offer" {
		p.send(MediaEvent{Kind: EventDescription, Description: &Description{Type: "answer", SDP: "v=0 fake answer"}})
	}
	return nil
}

func (p *fakePeer) AddCandidate(Candidate) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.candidates++
	return nil
}

func (p *fakePeer) SetAdmitted(admitted bool) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.admitted = admitted
	p.admitCalls++
}

func (p *fakePeer) SetAudioOnly(on bool) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.audioOnly = on
}

func (p *fakePeer) Restart(context.Context) error {
	p.m.mu.Lock()
	p.restarts++
	p.m.mu.Unlock()
	p.send(MediaEvent{Kind: EventDescription, Description: &Description{Type: "offer", SDP: "v=0 fake restart"}})
	return nil
}

func (p *fakePeer) Stats() MediaStats { return MediaStats{} }

func (p *fakePeer) Close() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.closed = true
	return nil
}

// fakeICE hands out one TURN server with a marked credential, so tests
// can look for it where it must not be.
type fakeICE struct{}

func (fakeICE) ICEServers(participant string, _ time.Time) []ICEServer {
	return []ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "1700000000:" + participant, Credential: "turn-secret-credential"}}
}

// pipeConn is an in-memory Conn: the test plays the browser.
type pipeConn struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
	code   int
}

func newPipe() *pipeConn {
	return &pipeConn{in: make(chan []byte, 64), out: make(chan []byte, 1024), closed: make(chan struct{})}
}

var errClosed = errors.New("closed")

func (c *pipeConn) ReadMessage() ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-c.closed:
		return nil, errClosed
	}
}

func (c *pipeConn) WriteMessage(b []byte) error {
	select {
	case <-c.closed:
		return errClosed
	default:
	}
	select {
	case c.out <- b:
		return nil
	case <-c.closed:
		return errClosed
	}
}

func (c *pipeConn) Close(code int, _ string) error {
	c.once.Do(func() {
		c.code = code
		close(c.closed)
	})
	return nil
}

// fixture is a running Visits over a real database.
type fixture struct {
	v     *Visits
	st    *store.Store
	types *fhir.Registry
	media *fakeMedia
	audit *audit.Writer
	logs  *logRecorder
}

func newFixture(tb testing.TB, tune func(*Config)) *fixture {
	tb.Helper()
	pool := dbtest.PoolFor(tb, dbtest.NewDatabase(tb))
	logs := &logRecorder{}
	log := slog.New(logs)
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	acfg := audit.DefaultConfig()
	acfg.FlushEvery = 5 * time.Millisecond
	aw, err := audit.NewWriter(pool, params, acfg, nil, log)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	if tune != nil {
		tune(&cfg)
	}
	media := &fakeMedia{}
	v, err := NewVisits(Deps{Store: st, Search: st, Params: params, Types: types, Media: media, ICE: fakeICE{}, Audit: aw}, cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	storeDone, visitsDone := make(chan error, 1), make(chan error, 1)
	auditCtx, stopAudit := context.WithCancel(context.Background())
	auditDone := make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	go func() { auditDone <- aw.Run(auditCtx) }()
	vctx, stopVisits := context.WithCancel(context.Background())
	go func() { visitsDone <- v.Run(vctx) }()
	tb.Cleanup(func() {
		stopVisits()
		if err := <-visitsDone; err != nil {
			tb.Errorf("visits: %v", err)
		}
		cancel()
		if err := <-storeDone; err != nil {
			tb.Errorf("store: %v", err)
		}
		stopAudit()
		if err := <-auditDone; err != nil {
			tb.Errorf("audit: %v", err)
		}
	})
	return &fixture{v: v, st: st, types: types, media: media, audit: aw, logs: logs}
}

// logRecorder keeps the warnings and errors the visit layer logs, for
// tests of errors that reach only the log (a client hears "server
// error", never the cause). Attributes added with With are not kept.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn
}

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// errs returns the "err" of each record logged with msg.
func (l *logRecorder) errs(msg string) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []error
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
				out = append(out, err)
			}
			return true
		})
	}
	return out
}

// put stores a resource with the given id as the server.
func (f *fixture) put(tb testing.TB, typ, id, body string) {
	tb.Helper()
	res, err := f.types.Parse(typ, []byte(body))
	if err != nil {
		tb.Fatalf("parse %s: %v", typ, err)
	}
	if _, _, err := f.st.Update(context.Background(), res, id, 0, store.Access{}); err != nil {
		tb.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

// read returns a stored resource decoded.
func (f *fixture) read(tb testing.TB, typ, id string) map[string]any {
	tb.Helper()
	st, err := f.st.Read(context.Background(), typ, id, store.Access{})
	if err != nil {
		tb.Fatalf("read %s/%s: %v", typ, id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(st.Content, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// appointment stores a booked video Appointment of patient with the
// practitioners, plus the people it names.
func (f *fixture) appointment(tb testing.TB, id, status, patient string, practitioners ...string) {
	tb.Helper()
	f.put(tb, "Patient", patient, `{"resourceType":"Patient","id":"`+patient+`"}`)
	parts := `{"actor":{"reference":"Patient/` + patient + `"},"status":"accepted"}`
	for _, p := range practitioners {
		if len(p) > 5 && p[:5] == "role:" {
			parts += `,{"actor":{"reference":"PractitionerRole/` + p[5:] + `"},"status":"accepted"}`
			continue
		}
		f.put(tb, "Practitioner", p, `{"resourceType":"Practitioner","id":"`+p+`"}`)
		parts += `,{"actor":{"reference":"Practitioner/` + p + `"},"status":"accepted"}`
	}
	f.put(tb, "Appointment", id, `{"resourceType":"Appointment","id":"`+id+`","status":"`+status+`",`+
		`"start":"2026-11-23T10:00:00Z","end":"2026-11-23T10:30:00Z","participant":[`+parts+`]}`)
}

func patientActor(id string) Actor {
	return Actor{Principal: &auth.Principal{Subject: "user-" + id, Role: auth.RolePatient, PatientID: id, TokenID: "at-" + id}, Address: "192.0.2.1"}
}

func clinicianActor(practitioner string) Actor {
	return Actor{Principal: &auth.Principal{Subject: "user-" + practitioner, Role: auth.RoleClinician, PractitionerID: practitioner, TokenID: "at-" + practitioner}, Address: "192.0.2.2"}
}

// client is a test browser on a pipeConn.
type client struct {
	t    testing.TB
	conn *pipeConn
	done chan struct{}
}

// connect serves a new connection and returns its client.
func (f *fixture) connect(tb testing.TB) *client {
	tb.Helper()
	c := &client{t: tb, conn: newPipe(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		f.v.Serve(context.Background(), c.conn, "192.0.2.9")
	}()
	tb.Cleanup(func() {
		_ = c.conn.Close(CloseNormal, "")
		<-c.done
	})
	return c
}

// join connects and joins with tok, returning the joined message.
func (f *fixture) join(tb testing.TB, tok string, resume bool) (*client, *Message) {
	tb.Helper()
	c := f.connect(tb)
	c.send(Message{Type: TypeJoin, Token: tok, Resume: resume})
	return c, c.expect(TypeJoined)
}

// admittedVisit books visit a1 of patient p1 with clinician c1; the
// clinician joins and admits the patient. It returns both clients and
// the patient's join token, for a rejoin.
func (f *fixture) admittedVisit(tb testing.TB) (clin, pat *client, ptok string) {
	tb.Helper()
	f.appointment(tb, "a1", "booked", "p1", "c1")
	ptok = mustIssue(tb, f, patientActor("p1"), "a1")
	clin, _ = f.join(tb, mustIssue(tb, f, clinicianActor("c1"), "a1"), false)
	pat, _ = f.join(tb, ptok, false)
	clin.send(Message{Type: TypeAdmit, Participant: "Patient/p1"})
	pat.expectUntil(TypeAdmitted, "")
	clin.expectUntil(TypeAdmitted, "")
	clin.sync()
	return clin, pat, ptok
}

func (c *client) send(m Message) {
	c.t.Helper()
	m.V = ProtocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.raw(b)
}

func (c *client) raw(b []byte) {
	c.t.Helper()
	select {
	case c.conn.in <- b:
	case <-c.conn.closed:
		c.t.Fatalf("send on a closed connection")
	}
}

// failAfter only detects a hang; no test asserts how fast anything is.
const failAfter = 20 * time.Second

// next returns the next message, skipping pings and quality reports.
func (c *client) next() *Message {
	c.t.Helper()
	for {
		select {
		case b := <-c.conn.out:
			var m Message
			if err := json.Unmarshal(b, &m); err != nil {
				c.t.Fatalf("server sent %s: %v", b, err)
			}
			if m.V != ProtocolVersion {
				c.t.Fatalf("server message without version: %s", b)
			}
			if m.Type == TypePing || m.Type == TypeQuality {
				continue
			}
			return &m
		case <-c.conn.closed:
			// Deliver what was written before the close.
			select {
			case b := <-c.conn.out:
				var m Message
				if err := json.Unmarshal(b, &m); err != nil {
					c.t.Fatal(err)
				}
				if m.Type == TypePing {
					continue
				}
				return &m
			default:
			}
			return nil
		case <-time.After(failAfter):
			c.t.Fatalf("no message from the server")
			return nil
		}
	}
}

// expect returns the next message of type typ, failing on anything else.
func (c *client) expect(typ MessageType) *Message {
	c.t.Helper()
	m := c.next()
	if m == nil {
		c.t.Fatalf("connection closed (code %d), want %s", c.conn.code, typ)
	}
	if m.Type != typ {
		c.t.Fatalf("got %s (%s %s), want %s", m.Type, m.Code, m.Error, typ)
	}
	return m
}

// expectUntil skips messages until one of type typ (and reason, if not
// empty) arrives.
func (c *client) expectUntil(typ MessageType, reason string) *Message {
	c.t.Helper()
	for {
		m := c.next()
		if m == nil {
			c.t.Fatalf("connection closed (code %d) before %s %s", c.conn.code, typ, reason)
		}
		if m.Type == typ && (reason == "" || m.Reason == reason) {
			return m
		}
	}
}

// closedWith waits until the server closes the connection and checks
// its close code.
func (c *client) closedWith(code int) {
	c.t.Helper()
	select {
	case <-c.conn.closed:
	case <-time.After(failAfter):
		c.t.Fatalf("connection still open, want close %d", code)
	}
	if c.conn.code != code {
		c.t.Fatalf("closed with %d, want %d", c.conn.code, code)
	}
}

// sync makes sure everything c sent before was handled: the server
// answers a ping only after the messages before it.
func (c *client) sync() {
	c.t.Helper()
	c.send(Message{Type: TypePing})
	c.expectUntil(TypePong, "")
}

// drop ends the connection as a network failure would (no leave).
func (c *client) drop() {
	_ = c.conn.Close(1006, "")
	<-c.done
}
