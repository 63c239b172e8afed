package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// harness is the pages over a real database: a fresh one per test, the
// real store, sessions, audit writer and LISTEN hub.
type harness struct {
	t        testing.TB
	pool     *pgxpool.Pool
	st       *store.Store
	types    *fhir.Registry
	params   *search.Registry
	users    *auth.Users
	sessions *auth.Sessions
	pages    *Pages
	app      *fiber.App
	auditor  *audit.Writer
	clock    *testClock
}

// testClock is the pages' clock, movable by tests.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	u := dbtest.NewDatabase(tb)
	h := &harness{t: tb, pool: dbtest.PoolFor(tb, u), types: fhir.NewRegistry(), params: search.NewRegistry(time.UTC), clock: &testClock{}}
	log := slog.New(slog.DiscardHandler)
	h.st = store.New(h.pool, h.types, h.params, store.DefaultConfig(), log)
	var err error
	if h.users, err = auth.NewUsers(h.pool, auth.SessionConfig{}); err != nil {
		tb.Fatal(err)
	}
	h.sessions = auth.NewSessions(h.users, log)
	ac := audit.DefaultConfig()
	ac.FlushEvery = 5 * time.Millisecond
	if h.auditor, err = audit.NewWriter(h.pool, h.params, ac, prometheus.NewRegistry(), log); err != nil {
		tb.Fatal(err)
	}
	h.pages, err = New(Deps{
		Accounts: h.sessions, Recorder: h.auditor, Store: h.st, Types: h.types, Params: h.params,
		Audit: h.auditor, Listen: h.pool.Config().ConnConfig, Acknowledge: care.NewWorklist(h.st, care.NewDB(h.pool), h.types),
	}, cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	h.pages.now = h.clock.now
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{h.st.Run, h.auditor.Run, h.pages.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil {
				tb.Errorf("run: %v", err)
			}
		})
	}
	h.app = fiber.New(fiber.Config{DisableStartupMessage: true})
	h.pages.Mount(h.app)
	tb.Cleanup(func() {
		cancel() // ends the live streams first: Shutdown waits for every connection
		wg.Wait()
		_ = h.app.Shutdown()
	})
	return h
}

// parse makes body a resource typ/id, validated as any client's.
func (h *harness) parse(typ, id string, body map[string]any) *fhir.Resource {
	h.t.Helper()
	body["resourceType"], body["id"] = typ, id
	raw, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.types.Parse(typ, raw)
	if err != nil {
		h.t.Fatalf("%s/%s: %v", typ, id, err)
	}
	return res
}

// put writes a resource with a fixed id (update as create) as the admin.
func (h *harness) put(typ, id string, body map[string]any) *store.Stored {
	h.t.Helper()
	res := h.parse(typ, id, body)
	st, _, err := h.st.Update(context.Background(), res, id, 0, store.Access{})
	if err != nil {
		h.t.Fatalf("%s/%s: %v", typ, id, err)
	}
	return st
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

// clinic loads two organizations, each with a nurse and patients:
// nurse-a cares for p1 and p2 (org-a), nurse-b for p3 (org-b).
func (h *harness) clinic() {
	h.t.Helper()
	for _, org := range []string{"org-a", "org-b"} {
		h.put("Organization", org, map[string]any{"name": org, "active": true})
	}
	for _, n := range []struct{ id, org string }{{"nurse-a", "org-a"}, {"nurse-b", "org-b"}} {
		h.put("Practitioner", n.id, map[string]any{"active": true, "name": []any{map[string]any{"family": n.id}}})
		h.put("PractitionerRole", n.id+"-role", map[string]any{"active": true, "practitioner": ref("Practitioner/" + n.id), "organization": ref("Organization/" + n.org)})
	}
	for _, p := range []struct{ id, given, family, org string }{
		{"p1", "Astrid", "Nilsson", "org-a"}, {"p2", "Olav", "Hansen", "org-a"}, {"p3", "Karin", "Lind", "org-b"},
	} {
		h.put("Patient", p.id, map[string]any{
			"active": true, "name": []any{map[string]any{"family": p.family, "given": []any{p.given}}},
			"birthDate": "1941-03-12", "managingOrganization": ref("Organization/" + p.org),
		})
	}
	for _, u := range []auth.NewUser{
		{Username: "ingrid", Role: auth.RoleNurse, PractitionerID: "nurse-a", Password: "ingrid's long password"},
		{Username: "berit", Role: auth.RoleNurse, PractitionerID: "nurse-b", Password: "berit's long password"},
		{Username: "astrid", Role: auth.RolePatient, PatientID: "p1", Password: "astrid's long password"},
	} {
		if _, _, err := h.users.Ensure(context.Background(), u); err != nil {
			h.t.Fatal(err)
		}
	}
}

func qty(v float64, unit string) map[string]any {
	return map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
}

func loinc(code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}}
}

// reading stores an Observation of patient: one value, or a blood
// pressure with two (sys, dia), with an interpretation when interp is set.
func (h *harness) reading(id, patient, code string, at time.Time, interp string, v ...float64) {
	h.t.Helper()
	body := map[string]any{
		"status": "final", "code": loinc(code), "subject": ref("Patient/" + patient),
		"effectiveDateTime": at.UTC().Format(time.RFC3339),
	}
	switch code {
	case "85354-9":
		body["component"] = []any{
			map[string]any{"code": loinc("8480-6"), "valueQuantity": qty(v[0], "mm[Hg]")},
			map[string]any{"code": loinc("8462-4"), "valueQuantity": qty(v[1], "mm[Hg]")},
		}
	case "59408-5":
		body["valueQuantity"] = qty(v[0], "%")
	case "29463-7":
		body["valueQuantity"] = qty(v[0], "kg")
	default:
		body["valueQuantity"] = qty(v[0], "/min")
	}
	if interp != "" {
		body["interpretation"] = []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": interp,
		}}}}
	}
	h.put("Observation", id, body)
}

// task stores an open review Task of patient about reading obs.
func (h *harness) task(id, patient, priority, obs string, authored time.Time) {
	h.t.Helper()
	body := map[string]any{
		"status": "requested", "intent": "order", "priority": priority,
		"code":       map[string]any{"coding": []any{map[string]any{"system": care.SystemTask, "code": care.TaskReview}}},
		"for":        ref("Patient/" + patient),
		"authoredOn": authored.UTC().Format(time.RFC3339),
	}
	if obs != "" {
		body["focus"] = ref("Observation/" + obs)
	}
	h.put("Task", id, body)
}

// browser is a signed-in client of the harness's app.
type browser struct {
	h       *harness
	cookies map[string]string
	csrf    string
	lang    string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs username in through the real form.
func (h *harness) signIn(username, password string) *browser {
	h.t.Helper()
	b := &browser{h: h, cookies: map[string]string{}}
	_, body := b.do(http.MethodGet, "/login", nil)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		h.t.Fatalf("no csrf on the sign-in page")
	}
	resp, body := b.do(http.MethodPost, "/login", url.Values{"username": {username}, "password": {password}, "csrf": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		h.t.Fatalf("sign in %s: %d %s", username, resp.StatusCode, body)
	}
	b.get(resp.Header.Get("Location")) // the landing page carries the session's CSRF token
	return b
}

// do sends a request with the browser's cookies (and CSRF token on a
// form) and keeps the cookies it gets.
func (b *browser) do(method, path string, form url.Values) (*result, string) {
	b.h.t.Helper()
	var req *http.Request
	if form != nil {
		if _, ok := form["csrf"]; !ok && b.csrf != "" {
			form.Set("csrf", b.csrf)
		}
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.h.app.Test(req, -1)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.h.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	body := string(raw)
	if m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindStringSubmatch(body); m != nil {
		b.csrf = m[1]
	}
	return &result{StatusCode: resp.StatusCode, Header: resp.Header, cookies: resp.Cookies()}, body
}

func (b *browser) get(path string) (*result, string) { return b.do(http.MethodGet, path, nil) }

// serve puts the app on a loopback port (for streams and real browsers)
// and returns its base URL.
func (h *harness) serve() string {
	h.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = h.app.Listener(ln) }()
	return "http://" + ln.Addr().String()
}
