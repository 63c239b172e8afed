package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/signaling"
)

// recordingMedia stands in for signaling/sfu (it has its own tests with
// real pion peers): it records what each participant's peer is told and
// answers offers.
type recordingMedia struct {
	mu    sync.Mutex
	peers map[string][]*recordingPeer
}

type recordingPeer struct {
	m                  *recordingMedia
	send               func(signaling.MediaEvent)
	admitted, closed   bool
	restarts, remotes  int
	candidates, audios int
}

func (m *recordingMedia) Connect(_ context.Context, _, who string, send func(signaling.MediaEvent)) (signaling.MediaPeer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &recordingPeer{m: m, send: send}
	if m.peers == nil {
		m.peers = map[string][]*recordingPeer{}
	}
	m.peers[who] = append(m.peers[who], p)
	return p, nil
}

// last reports the newest peer of who: admitted, closed, restarts and
// how many peers who had.
func (m *recordingMedia) last(who string) (admitted, closed bool, restarts, peers int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.peers[who]
	if len(ps) == 0 {
		return false, false, 0, 0
	}
	p := ps[len(ps)-1]
	return p.admitted, p.closed, p.restarts, len(ps)
}

func (p *recordingPeer) Remote(_ context.Context, d signaling.Description) error {
	p.m.mu.Lock()
	p.remotes++
	p.m.mu.Unlock()
	if d.Type == "offer" {
		p.send(signaling.MediaEvent{Kind: signaling.EventDescription, Description: &signaling.Description{Type: "answer", SDP: "v=0 answer"}})
	}
	return nil
}

func (p *recordingPeer) AddCandidate(signaling.Candidate) error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.candidates++
	return nil
}

func (p *recordingPeer) SetAdmitted(a bool) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.admitted = a
}

func (p *recordingPeer) SetAudioOnly(bool) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.audios++
}

func (p *recordingPeer) Restart(context.Context) error {
	p.m.mu.Lock()
	p.restarts++
	p.m.mu.Unlock()
	p.send(signaling.MediaEvent{Kind: signaling.EventDescription, Description: &signaling.Description{Type: "offer", SDP: "v=0 restart"}})
	return nil
}

func (p *recordingPeer) Stats() signaling.MediaStats { return signaling.MediaStats{} }

func (p *recordingPeer) Close() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	p.closed = true
	return nil
}

const turnSecret = "turn-credential-that-must-not-be-logged"

type testICE struct{}

func (testICE) ICEServers(who string, _ time.Time) []signaling.ICEServer {
	return []signaling.ICEServer{{URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1800000000:" + who, Credential: turnSecret}}
}

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// videoServer is a real server with video visits over a real database.
type videoServer struct {
	*server
	media *recordingMedia
	types *fhir.Registry
	logs  *syncBuffer
	ws    string
}

func newVideoServer(t *testing.T, tune func(*signaling.Config)) *videoServer {
	t.Helper()
	media := &recordingMedia{}
	s := newVideoServerWith(t, tune, media)
	s.media = media
	return s
}

// newVideoServerWith is newVideoServer over the given media layer.
func newVideoServerWith(t *testing.T, tune func(*signaling.Config), media signaling.Media) *videoServer {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	acfg := audit.DefaultConfig()
	acfg.FlushEvery = 5 * time.Millisecond
	aw, err := audit.NewWriter(pool, params, acfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	vcfg := signaling.DefaultConfig()
	if tune != nil {
		tune(&vcfg)
	}
	visits, err := signaling.NewVisits(signaling.Deps{
		Store: st, Search: st, Params: params, Types: types, Media: media, ICE: testICE{}, Audit: aw,
	}, vcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Addr = ln.Addr().String()
	srv, err := httpapi.New(httpapi.Deps{
		Store: st, Types: types, Params: params, Verifier: keys, Ready: st, Metrics: prometheus.NewRegistry(),
		Audit: aw, Visits: visits,
	}, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	storeDone, httpDone, visitsDone, auditDone := make(chan error, 1), make(chan error, 1), make(chan error, 1), make(chan error, 1)
	auditCtx, stopAudit := context.WithCancel(context.Background())
	visitsCtx, stopVisits := context.WithCancel(context.Background())
	go func() { storeDone <- st.Run(ctx) }()
	go func() { auditDone <- aw.Run(auditCtx) }()
	go func() { visitsDone <- visits.Run(visitsCtx) }()
	go func() { httpDone <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		// As vidda serve stops: the HTTP server, then the visits (their
		// websockets outlive the HTTP drain), then audit and store.
		stopVisits()
		if err := <-visitsDone; err != nil {
			t.Errorf("visits: %v", err)
		}
		cancel()
		if err := <-httpDone; err != nil {
			t.Errorf("http server: %v", err)
		}
		stopAudit()
		if err := <-auditDone; err != nil {
			t.Errorf("audit writer: %v", err)
		}
		if err := <-storeDone; err != nil {
			t.Errorf("store: %v", err)
		}
	})
	return &videoServer{
		server: &server{base: "http://" + cfg.Addr, keys: keys, st: st, audit: aw},
		types:  types, logs: logs, ws: "ws://" + cfg.Addr + "/video/ws",
	}
}

func (s *videoServer) put(t *testing.T, typ, id, body string) {
	t.Helper()
	res, err := s.types.Parse(typ, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.st.Update(context.Background(), res, id, 0, store.Access{}); err != nil {
		t.Fatal(err)
	}
}

// appointment stores an Appointment of patient with practitioner.
func (s *videoServer) appointment(t *testing.T, id, status, patient, practitioner string) {
	t.Helper()
	s.put(t, "Patient", patient, `{"resourceType":"Patient","id":"`+patient+`"}`)
	s.put(t, "Practitioner", practitioner, `{"resourceType":"Practitioner","id":"`+practitioner+`"}`)
	s.put(t, "Appointment", id, `{"resourceType":"Appointment","id":"`+id+`","status":"`+status+`","participant":[`+
		`{"actor":{"reference":"Patient/`+patient+`"},"status":"accepted"},`+
		`{"actor":{"reference":"Practitioner/`+practitioner+`"},"status":"accepted"}]}`)
}

func (s *videoServer) staff(t *testing.T, role auth.Role, practitioner string) string {
	t.Helper()
	tok, err := s.keys.Mint(context.Background(), auth.TokenRequest{Subject: "u-" + practitioner, Role: role, PractitionerID: practitioner})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type joinAnswer struct {
	Token       string                `json:"token"`
	WS          string                `json:"ws"`
	ICEServers  []signaling.ICEServer `json:"iceServers"`
	ExpiresAt   string                `json:"expiresAt"`
	Participant string                `json:"participant"`
}

// joinToken asks POST …/join as bearer and returns the answer.
func (s *videoServer) joinToken(t *testing.T, bearer, appt string) joinAnswer {
	t.Helper()
	r := s.do(t, "POST", "/video/visits/"+appt+"/join", bearer, "")
	if r.status != 200 {
		t.Fatalf("join: %d %s", r.status, r.body)
	}
	var a joinAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// wsClient is a browser's websocket.
type wsClient struct {
	t    *testing.T
	c    *fws.Conn
	wmu  sync.Mutex // one writer at a time
	msgs chan signaling.Message
	code chan int // the close code, once closed
}

func (s *videoServer) dial(t *testing.T, wsURL string) *wsClient {
	t.Helper()
	c, resp, err := fws.DefaultDialer.DialContext(context.Background(), wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	_ = resp.Body.Close()
	w := &wsClient{t: t, c: c, msgs: make(chan signaling.Message, 256), code: make(chan int, 1)}
	go func() {
		for {
			_, b, err := c.ReadMessage()
			if err != nil {
				var ce *fws.CloseError
				code := 1006
				if errors.As(err, &ce) {
					code = ce.Code
				}
				w.code <- code
				close(w.msgs)
				return
			}
			var m signaling.Message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("server sent %s", b)
				continue
			}
			if m.Type != signaling.TypePing && m.Type != signaling.TypeQuality {
				w.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	return w
}

// joinVia opens the websocket of a join answer and joins.
func (s *videoServer) joinVia(t *testing.T, a joinAnswer, resume bool) (*wsClient, signaling.Message) {
	t.Helper()
	w := s.dial(t, a.WS)
	w.send(signaling.Message{Type: signaling.TypeJoin, Token: a.Token, Resume: resume})
	return w, w.expect(signaling.TypeJoined)
}

func (w *wsClient) send(m signaling.Message) {
	w.t.Helper()
	m.V = signaling.ProtocolVersion
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.c.WriteJSON(m); err != nil {
		w.t.Errorf("send %s: %v", m.Type, err)
	}
}

const hang = 20 * time.Second // detects a hang; nothing asserts speed

func (w *wsClient) next() (signaling.Message, bool) {
	w.t.Helper()
	select {
	case m, ok := <-w.msgs:
		return m, ok
	case <-time.After(hang):
		w.t.Fatal("no message from the server")
		return signaling.Message{}, false
	}
}

func (w *wsClient) expect(typ signaling.MessageType) signaling.Message {
	w.t.Helper()
	m, ok := w.next()
	if !ok || m.Type != typ {
		w.t.Fatalf("got %+v (open %v), want %s", m, ok, typ)
	}
	return m
}

// until skips to the next message of typ (and reason, when given).
func (w *wsClient) until(typ signaling.MessageType, reason string) signaling.Message {
	w.t.Helper()
	for {
		m, ok := w.next()
		if !ok {
			w.t.Fatalf("closed before %s %s", typ, reason)
		}
		if m.Type == typ && (reason == "" || m.Reason == reason) {
			return m
		}
	}
}

// closed waits for the server's close and returns its code.
func (w *wsClient) closed() int {
	w.t.Helper()
	for {
		if _, ok := w.next(); !ok {
			return <-w.code
		}
	}
}

func (w *wsClient) sync() {
	w.t.Helper()
	w.send(signaling.Message{Type: signaling.TypePing})
	w.until(signaling.TypePong, "")
}

func TestVideoJoinTokens(t *testing.T) {
	s := newVideoServer(t, nil)
	s.appointment(t, "a1", "booked", "p1", "c1")
	s.appointment(t, "a2", "booked", "p2", "c2")
	s.appointment(t, "gone", "cancelled", "p1", "c1")
	s.appointment(t, "over", "fulfilled", "p1", "c1")
	p1, p2 := s.token(t, auth.RolePatient, "p1"), s.token(t, auth.RolePatient, "p2")
	c1, c2 := s.staff(t, auth.RoleClinician, "c1"), s.staff(t, auth.RoleNurse, "c2")

	tests := []struct {
		name, bearer, appt string
		status             int
	}{
		{"the appointment's patient gets a token", p1, "a1", 200},
		{"the appointment's clinician gets a token", c1, "a1", 200},
		{"a nurse of another appointment is refused", c2, "a1", 403},
		{"the patient of another appointment is refused", p2, "a1", 403},
		{"an admin acting as nobody is refused", s.token(t, auth.RoleAdmin, ""), "a1", 403},
		{"an unknown appointment is not found", p1, "nope", 404},
		{"an impossible id is not found", p1, "no$such", 404},
		{"a cancelled appointment is a conflict", p1, "gone", 409},
		{"a fulfilled appointment is a conflict", c1, "over", 409},
		{"no token is unauthorized", "", "a1", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/video/visits/"+tc.appt+"/join", tc.bearer, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != 200 {
				r.outcome(t)
				return
			}
			var a joinAnswer
			if err := json.Unmarshal(r.body, &a); err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(a.WS)
			if err != nil || u.Scheme != "ws" || u.Path != "/video/ws" || u.Query().Get("visit") != tc.appt || strings.Contains(a.WS, a.Token) {
				t.Fatalf("ws %q", a.WS)
			}
			if a.Token == "" || len(a.ICEServers) != 1 || a.ICEServers[0].Credential != turnSecret || a.ExpiresAt == "" {
				t.Fatalf("answer %s", r.body)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
		})
	}
	t.Run("join tokens are rate-limited per client", func(t *testing.T) {
		const perMinute = 60 // httpapi's videoJoinsPerMinute
		limited := false
		for range perMinute + 1 {
			r := s.do(t, "POST", "/video/visits/a1/join", p1, "")
			if r.status == 429 {
				limited = true
				break
			}
		}
		if !limited {
			t.Fatalf("%d joins in a row from one client were all answered", perMinute+1)
		}
	})
	t.Run("a plain GET of the websocket is told to upgrade", func(t *testing.T) {
		if r := s.do(t, "GET", "/video/ws", "", ""); r.status != 426 {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("an access token is no join token", func(t *testing.T) {
		w := s.dial(t, s.ws)
		w.send(signaling.Message{Type: signaling.TypeJoin, Token: p1})
		if e := w.expect(signaling.TypeError); e.Code != "token" {
			t.Fatalf("error %+v", e)
		}
		if code := w.closed(); code != signaling.CloseInvalidToken {
			t.Fatalf("close %d", code)
		}
	})
}

func TestAnExpiredJoinTokenIsRefused(t *testing.T) {
	s := newVideoServer(t, func(c *signaling.Config) { c.TokenTTL = time.Nanosecond })
	s.appointment(t, "a1", "booked", "p1", "c1")
	a := s.joinToken(t, s.token(t, auth.RolePatient, "p1"), "a1")
	w := s.dial(t, a.WS)
	w.send(signaling.Message{Type: signaling.TypeJoin, Token: a.Token})
	if e := w.expect(signaling.TypeError); e.Code != "token" || !strings.Contains(e.Error, "expired") {
		t.Fatalf("error %+v", e)
	}
	if code := w.closed(); code != signaling.CloseInvalidToken {
		t.Fatalf("close %d", code)
	}
}

func TestAVideoVisitOverRealWebsockets(t *testing.T) {
	s := newVideoServer(t, func(c *signaling.Config) { c.Grace = time.Hour })
	s.appointment(t, "a1", "booked", "p1", "c1")
	s.appointment(t, "a2", "booked", "p2", "c2")
	ptok, ctok := s.token(t, auth.RolePatient, "p1"), s.staff(t, auth.RoleClinician, "c1")
	other := s.staff(t, auth.RoleClinician, "c2")

	clin, joined := s.joinVia(t, s.joinToken(t, ctok, "a1"), false)
	if joined.Self.State != "admitted" || len(joined.ICEServers) != 1 {
		t.Fatalf("clinician joined %+v", joined)
	}
	pa := s.joinToken(t, ptok, "a1")
	pat, joined := s.joinVia(t, pa, false)
	if joined.Self.State != "waiting" {
		t.Fatalf("patient joined %+v", joined)
	}
	if w := clin.until(signaling.TypeWaiting, ""); len(w.Waiting) != 1 || w.Waiting[0].ID != "Patient/p1" {
		t.Fatalf("waiting %+v", w)
	}

	// The waiting room, through the API: its clinician only.
	r := s.do(t, "GET", "/video/visits/a1", ctok, "")
	var st signaling.VisitState
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil || len(st.Waiting) != 1 || st.Status != "open" {
		t.Fatalf("state %d %s", r.status, r.body)
	}
	for name, bearer := range map[string]string{"the patient": ptok, "another clinician": other} {
		if r := s.do(t, "GET", "/video/visits/a1", bearer, ""); r.status != 403 {
			t.Fatalf("%s reads the waiting room: %d", name, r.status)
		}
		if r := s.do(t, "POST", "/video/visits/a1/admit", bearer, `{"participant":"Patient/p1"}`, "Content-Type", "application/json"); r.status != 403 {
			t.Fatalf("%s admits: %d", name, r.status)
		}
	}
	if admitted, _, _, _ := s.media.last("Patient/p1"); admitted {
		t.Fatal("a waiting patient's media is admitted")
	}

	// Negotiation before admission; admission through the API.
	pat.send(signaling.Message{Type: signaling.TypeOffer, Description: &signaling.Description{Type: "offer", SDP: "v=0 offer"}})
	pat.until(signaling.TypeAnswer, "")
	r = s.do(t, "POST", "/video/visits/a1/admit", ctok, `{"participant":"Patient/p1"}`, "Content-Type", "application/json")
	if r.status != 204 {
		t.Fatalf("admit: %d %s", r.status, r.body)
	}
	if m := pat.until(signaling.TypeAdmitted, ""); m.Self == nil || m.Self.State != "admitted" {
		t.Fatalf("admitted %+v", m)
	}
	if admitted, _, _, _ := s.media.last("Patient/p1"); !admitted {
		t.Fatal("the admitted patient's media is not admitted")
	}
	r = s.do(t, "GET", "/video/visits/a1", ctok, "")
	if json.Unmarshal(r.body, &st) != nil || st.Status != "in-progress" || st.Encounter == "" || len(st.Participants) != 2 {
		t.Fatalf("state %s", r.body)
	}
	if r := s.do(t, "GET", "/fhir/Encounter/"+st.Encounter, s.token(t, auth.RoleAdmin, ""), ""); r.status != 200 ||
		!strings.Contains(string(r.body), `"code":"VR"`) || !strings.Contains(string(r.body), `"in-progress"`) {
		t.Fatalf("encounter %d %s", r.status, r.body)
	}

	// Chat among the admitted.
	pat.send(signaling.Message{Type: signaling.TypeChat, Text: "Hører du meg?"})
	if m := clin.until(signaling.TypeChat, ""); m.Text != "Hører du meg?" {
		t.Fatalf("chat %+v", m)
	}

	// A dropped websocket rejoins within the grace period, admitted.
	_ = pat.c.Close()
	clin.until(signaling.TypeLeft, "disconnected")
	pat, joined = s.joinVia(t, pa, true)
	if joined.Self.State != "admitted" {
		t.Fatalf("rejoined as %s", joined.Self.State)
	}
	pat.until(signaling.TypeOffer, "") // the ICE restart
	if _, _, restarts, peers := s.media.last("Patient/p1"); restarts != 1 || peers != 1 {
		t.Fatalf("restarts %d, peers %d", restarts, peers)
	}

	// Removal through the API, then the end.
	r = s.do(t, "POST", "/video/visits/a1/remove", ctok, `{"participant":"Patient/p1"}`, "Content-Type", "application/json")
	if r.status != 204 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	pat.until(signaling.TypeRemoved, "")
	if code := pat.closed(); code != signaling.CloseRemoved {
		t.Fatalf("removed with close %d", code)
	}
	if r := s.do(t, "POST", "/video/visits/a1/remove", ctok, `{"participant":"Patient/p1"}`, "Content-Type", "application/json"); r.status != 404 {
		t.Fatalf("removing again: %d", r.status)
	}
	if r := s.do(t, "POST", "/video/visits/a1/admit", ctok, `{"participant":"p1"}`, "Content-Type", "application/json"); r.status != 400 {
		t.Fatalf("admit of a non-reference: %d", r.status)
	}
	if r := s.do(t, "POST", "/video/visits/a1/end", ptok, ""); r.status != 403 {
		t.Fatalf("the patient ends: %d", r.status)
	}
	if r := s.do(t, "POST", "/video/visits/a1/end", ctok, ""); r.status != 204 {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	clin.until(signaling.TypeEnded, "")
	if code := clin.closed(); code != signaling.CloseNormal {
		t.Fatalf("ended with close %d", code)
	}
	admin := s.token(t, auth.RoleAdmin, "")
	if r := s.do(t, "GET", "/fhir/Encounter/"+st.Encounter, admin, ""); !strings.Contains(string(r.body), `"finished"`) {
		t.Fatalf("encounter after the end %s", r.body)
	}
	if r := s.do(t, "GET", "/fhir/Appointment/a1", admin, ""); !strings.Contains(string(r.body), `"fulfilled"`) {
		t.Fatalf("appointment after the end %s", r.body)
	}
	if r := s.do(t, "POST", "/video/visits/a1/join", ptok, ""); r.status != 409 {
		t.Fatalf("join after the end: %d", r.status)
	}
	if r := s.do(t, "POST", "/video/visits/a1/end", ctok, ""); r.status != 409 {
		t.Fatalf("end again: %d", r.status)
	}

	// Secrets never reach the logs, whatever the level.
	logs := s.logs.String()
	if !strings.Contains(logs, "signaling: room opened") {
		t.Fatal("the test's log capture saw nothing")
	}
	for _, secret := range []string{pa.Token, turnSecret, ptok, "v=0 offer", "Hører du meg"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a secret %.20q…", secret)
		}
	}
}

func TestAfterTheGracePeriodAPatientWaitsAgain(t *testing.T) {
	s := newVideoServer(t, func(c *signaling.Config) { c.Grace = 50 * time.Millisecond })
	s.appointment(t, "a1", "booked", "p1", "c1")
	ctok := s.staff(t, auth.RoleClinician, "c1")
	clin, _ := s.joinVia(t, s.joinToken(t, ctok, "a1"), false)
	pa := s.joinToken(t, s.token(t, auth.RolePatient, "p1"), "a1")
	pat, _ := s.joinVia(t, pa, false)
	clin.send(signaling.Message{Type: signaling.TypeAdmit, Participant: "Patient/p1"})
	pat.until(signaling.TypeAdmitted, "")
	clin.sync()
	_ = pat.c.Close()
	clin.until(signaling.TypeLeft, "timeout")
	_, joined := s.joinVia(t, pa, false)
	if joined.Self.State != "waiting" {
		t.Fatalf("after the grace period joined as %s", joined.Self.State)
	}
}
