package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/internal/web"
)

const (
	testPassword = "correct horse battery"
	newPassword  = "a brand new passphrase"
)

// clock is a settable clock for the sessions of one test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder keeps the sign-in events it is told of.
type recorder struct {
	mu     sync.Mutex
	events []auth.SignInEvent
}

func (r *recorder) RecordSignIn(_ context.Context, e auth.SignInEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) outcomes() []auth.SignInOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []auth.SignInOutcome
	for _, e := range r.events {
		out = append(out, e.Outcome)
	}
	return out
}

// webServer is a vidda HTTP server with sessions, the admin user API and
// the sign-in pages, over a database of the test's own.
type webServer struct {
	*server
	users *auth.Users
	clock *clock
	rec   *recorder
	// client does not follow redirects: tests look at them.
	client *http.Client
}

func newWebServer(t *testing.T, cfg web.Config) *webServer {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now().Truncate(time.Second)}
	users, err := auth.NewUsers(pool, auth.SessionConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	sessions := auth.NewSessions(users, log)
	rec := &recorder{}
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	pages, err := web.New(web.Deps{Accounts: sessions, Recorder: rec, Store: st, Types: types, Params: params}, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hcfg := httpapi.DefaultConfig()
	hcfg.Addr = ln.Addr().String()
	srv, err := httpapi.New(httpapi.Deps{
		Store: st, Types: types, Params: params, Verifier: keys, Ready: st, Metrics: prometheus.NewRegistry(),
		Sessions: sessions, Users: users, Pages: pages,
	}, hcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	storeDone, httpDone := make(chan error, 1), make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	go func() { httpDone <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-httpDone; err != nil {
			t.Errorf("http server: %v", err)
		}
		if err := <-storeDone; err != nil {
			t.Errorf("store: %v", err)
		}
	})
	return &webServer{
		server: &server{base: "http://" + hcfg.Addr, keys: keys, st: st},
		users:  users, clock: clk, rec: rec,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

func (w *webServer) addUser(t *testing.T, nu auth.NewUser) *auth.User {
	t.Helper()
	if nu.Password == "" {
		nu.Password = testPassword
	}
	if nu.PatientID != "" {
		w.do(t, "PUT", "/fhir/Patient/"+nu.PatientID, w.token(t, auth.RoleAdmin, ""),
			`{"resourceType":"Patient","id":"`+nu.PatientID+`"}`)
	}
	u, _, err := w.users.Add(context.Background(), nu)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// request sends a request with the given cookies (name=value pairs) and
// headers, without following redirects.
func (w *webServer) request(t *testing.T, method, path string, form url.Values, cookies map[string]string, headers ...string) *response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, w.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for name, v := range cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (r *response) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// cleared reports a Set-Cookie that makes the browser drop the cookie.
func cleared(c *http.Cookie) bool {
	return c != nil && c.Value == "" && (c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())))
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formCSRF is the csrf hidden field of a page.
func (r *response) formCSRF(t *testing.T) string {
	t.Helper()
	m := csrfField.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no csrf field in the page (status %d):\n%s", r.status, r.body)
	}
	return string(m[1])
}

// loginForm loads the sign-in page and returns the login CSRF token, the
// same in cookie and form.
func (w *webServer) loginForm(t *testing.T) string {
	t.Helper()
	page := w.request(t, "GET", "/login", nil, nil)
	c := page.cookie("vidda_login_csrf")
	if page.status != 200 || c == nil || c.Value != page.formCSRF(t) {
		t.Fatalf("GET /login: status %d, cookie %v, page:\n%s", page.status, c, page.body)
	}
	return c.Value
}

// postLogin submits the sign-in form as a browser would after GET /login.
func (w *webServer) postLogin(t *testing.T, form url.Values) *response {
	t.Helper()
	csrf := w.loginForm(t)
	form.Set("csrf", csrf)
	return w.request(t, "POST", "/login", form, map[string]string{"vidda_login_csrf": csrf})
}

// signIn signs in through the form and returns the session cookie's value.
func (w *webServer) signIn(t *testing.T, username, password string) string {
	t.Helper()
	resp := w.postLogin(t, url.Values{"username": {username}, "password": {password}})
	c := resp.cookie(auth.SessionCookie)
	if resp.status != http.StatusSeeOther || c == nil || c.Value == "" {
		t.Fatalf("sign-in as %s: status %d, cookie %v:\n%s", username, resp.status, c, resp.body)
	}
	return c.Value
}

// csrfOf reads the session's CSRF token from the landing page, as a
// page's script would from <meta name="csrf-token">.
func (w *webServer) csrfOf(t *testing.T, cookie, landing string) string {
	t.Helper()
	page := w.request(t, "GET", landing, nil, map[string]string{auth.SessionCookie: cookie})
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if page.status != 200 || m == nil || string(m[1]) != page.formCSRF(t) {
		t.Fatalf("GET %s: status %d:\n%s", landing, page.status, page.body)
	}
	return string(m[1])
}

func (w *webServer) withCookie(t *testing.T, method, path, cookie, body string, headers ...string) *response {
	t.Helper()
	h := append([]string{"Content-Type", "application/fhir+json"}, headers...)
	return w.requestBody(t, method, path, body, map[string]string{auth.SessionCookie: cookie}, h...)
}

func (w *webServer) requestBody(t *testing.T, method, path, body string, cookies map[string]string, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, w.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: v})
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

const cookiePatientBody = `{"resourceType":"Patient","name":[{"family":"Nilsson"}]}`

func TestSigningInGivesACookieTheAPIAccepts(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse, PractitionerID: "pr-1"})

	resp := w.postLogin(t, url.Values{"username": {"Ingrid"}, "password": {testPassword}})
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/app" {
		t.Fatalf("sign-in: status %d, Location %q", resp.status, resp.header.Get("Location"))
	}
	c := resp.cookie(auth.SessionCookie)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge != 0 || !c.Expires.IsZero() {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over http, no expiry", c)
	}
	if gone := resp.cookie("vidda_login_csrf"); !cleared(gone) {
		t.Errorf("the login CSRF cookie was not cleared: %+v", gone)
	}
	cookie := c.Value

	if got := w.withCookie(t, "GET", "/fhir/Patient", cookie, ""); got.status != 200 {
		t.Fatalf("GET /fhir/Patient with the cookie: %d %s", got.status, got.body)
	}
	csrf := w.csrfOf(t, cookie, "/app")
	tests := []struct {
		name    string
		headers []string
		want    int
	}{
		{"a POST without the CSRF token is forbidden", nil, 403},
		{"a POST with another token is forbidden", []string{"X-CSRF-Token", strings.Repeat("A", 43)}, 403},
		{"a POST with the session's token passes", []string{"X-CSRF-Token", csrf}, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := w.withCookie(t, "POST", "/fhir/Patient", cookie, cookiePatientBody, tt.headers...)
			if got.status != tt.want {
				t.Fatalf("status %d, want %d: %s", got.status, tt.want, got.body)
			}
			if tt.want == 403 && got.outcome(t) != "forbidden" {
				t.Fatalf("not a forbidden OperationOutcome: %s", got.body)
			}
		})
	}
	t.Run("a bearer POST needs no CSRF token", func(t *testing.T) {
		if got := w.do(t, "POST", "/fhir/Patient", w.token(t, auth.RoleNurse, ""), cookiePatientBody); got.status != 201 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
	})
	t.Run("an Authorization header wins over the cookie", func(t *testing.T) {
		got := w.withCookie(t, "GET", "/fhir/Patient", cookie, "", "Authorization", "Bearer not.a.token")
		if got.status != 401 {
			t.Fatalf("status %d, want 401 for the bad bearer token", got.status)
		}
	})
	t.Run("a made-up cookie is refused", func(t *testing.T) {
		for _, v := range []string{strings.Repeat("A", 43), "x", cookie + "A"} {
			if got := w.withCookie(t, "GET", "/fhir/Patient", v, ""); got.status != 401 || got.outcome(t) != "login" {
				t.Fatalf("cookie %q: status %d %s", v, got.status, got.body)
			}
		}
	})
	if got := w.rec.outcomes(); len(got) != 1 || got[0] != auth.SignInSucceeded {
		t.Errorf("recorded %v, want one success", got)
	}
}

func TestAPatientsCookieReachesOnlyTheirOwnRecord(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "astrid", Role: auth.RolePatient, PatientID: "p-1"})
	w.do(t, "PUT", "/fhir/Patient/p-2", w.token(t, auth.RoleAdmin, ""), `{"resourceType":"Patient","id":"p-2"}`)

	resp := w.postLogin(t, url.Values{"username": {"astrid"}, "password": {testPassword}})
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/me" {
		t.Fatalf("a patient's sign-in: status %d, Location %q", resp.status, resp.header.Get("Location"))
	}
	cookie := resp.cookie(auth.SessionCookie).Value
	if got := w.withCookie(t, "GET", "/fhir/Patient/p-1", cookie, ""); got.status != 200 {
		t.Errorf("own Patient: %d", got.status)
	}
	if got := w.withCookie(t, "GET", "/fhir/Patient/p-2", cookie, ""); got.status != 403 && got.status != 404 {
		t.Errorf("another Patient: %d, want 403 or 404", got.status)
	}
	if got := w.request(t, "GET", "/app", nil, map[string]string{auth.SessionCookie: cookie}); got.status != 303 || got.header.Get("Location") != "/me" {
		t.Errorf("a patient at /app: %d → %q, want /me", got.status, got.header.Get("Location"))
	}
}

func TestSessionsEndAndTheCookieWithThem(t *testing.T) {
	admin := func(t *testing.T, w *webServer) string {
		t.Helper()
		return w.token(t, auth.RoleAdmin, "")
	}
	tests := []struct {
		name string
		end  func(t *testing.T, w *webServer, u *auth.User, cookie string)
	}{
		{"signing out", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			csrf := w.csrfOf(t, cookie, "/app")
			resp := w.request(t, "POST", "/logout", url.Values{"csrf": {csrf}}, map[string]string{auth.SessionCookie: cookie})
			if resp.status != 303 || resp.header.Get("Location") != "/login" {
				t.Fatalf("POST /logout: %d → %q", resp.status, resp.header.Get("Location"))
			}
			if c := resp.cookie(auth.SessionCookie); !cleared(c) {
				t.Fatalf("the cookie was not cleared: %+v", c)
			}
		}},
		{"an admin revoking the user's sessions", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			resp := w.do(t, "DELETE", "/admin/users/"+u.ID+"/sessions", admin(t, w), "")
			if resp.status != 200 || resp.json(t)["revokedSessions"] != float64(1) {
				t.Fatalf("revoke: %d %s", resp.status, resp.body)
			}
		}},
		{"an admin resetting the password", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			resp := w.do(t, "PUT", "/admin/users/"+u.ID+"/password", admin(t, w), `{"password":"`+newPassword+`"}`,
				"Content-Type", "application/json")
			if resp.status != 200 {
				t.Fatalf("reset: %d %s", resp.status, resp.body)
			}
			w.signIn(t, "ingrid", newPassword)
			if got := w.postLogin(t, url.Values{"username": {"ingrid"}, "password": {testPassword}}); got.status != 200 {
				t.Fatalf("the old password still signs in: %d", got.status)
			}
		}},
		{"an admin disabling the user", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			resp := w.do(t, "POST", "/admin/users/"+u.ID+"/disable", admin(t, w), "")
			if resp.status != 200 || resp.json(t)["disabled"] != true {
				t.Fatalf("disable: %d %s", resp.status, resp.body)
			}
			if got := w.postLogin(t, url.Values{"username": {"ingrid"}, "password": {testPassword}}); got.status != 200 || got.cookie(auth.SessionCookie) != nil {
				t.Fatalf("a disabled user signed in: %d", got.status)
			}
		}},
		{"30 idle minutes", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			w.clock.Advance(29 * time.Minute)
			if got := w.withCookie(t, "GET", "/fhir/Patient", cookie, ""); got.status != 200 {
				t.Fatalf("after 29 idle minutes: %d", got.status)
			}
			w.clock.Advance(30 * time.Minute)
		}},
		{"12 busy hours", func(t *testing.T, w *webServer, u *auth.User, cookie string) {
			t.Helper()
			for range 24 {
				w.clock.Advance(29 * time.Minute)
				if got := w.withCookie(t, "GET", "/fhir/Patient", cookie, ""); got.status != 200 {
					t.Fatalf("within 12 hours: %d", got.status)
				}
			}
			w.clock.Advance(12*time.Hour - 24*29*time.Minute)
		}},
	}
	for _, tt := range tests {
		t.Run("the cookie is useless after "+tt.name, func(t *testing.T) {
			w := newWebServer(t, web.DefaultConfig())
			u := w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
			cookie := w.signIn(t, "ingrid", testPassword)
			tt.end(t, w, u, cookie)
			if got := w.withCookie(t, "GET", "/fhir/Patient", cookie, ""); got.status != 401 {
				t.Fatalf("GET /fhir/Patient with the ended session: %d, want 401", got.status)
			}
			if got := w.request(t, "GET", "/app", nil, map[string]string{auth.SessionCookie: cookie}); got.status != 303 ||
				got.header.Get("Location") != "/login?next=%2Fapp" {
				t.Fatalf("GET /app with the ended session: %d → %q", got.status, got.header.Get("Location"))
			}
		})
	}
}

func TestSignOutNeedsTheSessionsCSRFToken(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
	cookie := w.signIn(t, "ingrid", testPassword)
	resp := w.request(t, "POST", "/logout", url.Values{"csrf": {"forged"}}, map[string]string{auth.SessionCookie: cookie})
	if resp.status != 403 {
		t.Fatalf("a forged sign-out: %d", resp.status)
	}
	if got := w.withCookie(t, "GET", "/fhir/Patient", cookie, ""); got.status != 200 {
		t.Fatalf("a forged sign-out ended the session: %d", got.status)
	}
}

func TestTheLoginFormHasItsOwnCSRFToken(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
	csrf := w.loginForm(t)
	form := url.Values{"username": {"ingrid"}, "password": {testPassword}}
	tests := []struct {
		name          string
		field, cookie string
	}{
		{"no token at all", "", ""},
		{"a field without the cookie", csrf, ""},
		{"the cookie without the field", "", csrf},
		{"a field that is not the cookie's", strings.Repeat("B", 43), csrf},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			f := url.Values{"username": form["username"], "password": form["password"], "csrf": {tt.field}}
			cookies := map[string]string{}
			if tt.cookie != "" {
				cookies["vidda_login_csrf"] = tt.cookie
			}
			resp := w.request(t, "POST", "/login", f, cookies)
			if resp.status != 403 || resp.cookie(auth.SessionCookie) != nil || !strings.Contains(string(resp.body), "expired") {
				t.Fatalf("status %d, cookie %v", resp.status, resp.cookie(auth.SessionCookie))
			}
		})
	}
}

func TestFailedSignInsLookAlikeAndLockTheAccount(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
	// The page must not tell the three apart: same status, same body but
	// for the username echoed back and the form's token.
	page := func(username, password string) (int, string) {
		t.Helper()
		resp := w.postLogin(t, url.Values{"username": {username}, "password": {password}})
		if resp.cookie(auth.SessionCookie) != nil {
			t.Fatalf("%s/%s got a session", username, password)
		}
		body := strings.ReplaceAll(string(resp.body), username, "USER")
		return resp.status, csrfField.ReplaceAllString(body, "CSRF")
	}
	unknownStatus, unknown := page("nobody", testPassword)
	for i := range auth.DefaultMaxFailures {
		status, body := page("ingrid", "wrong horse battery")
		if status != unknownStatus || body != unknown {
			t.Fatalf("failure %d differs from an unknown user's: %d\n%s\n---\n%s", i+1, status, body, unknown)
		}
	}
	status, body := page("ingrid", testPassword)
	if status != unknownStatus || body != unknown {
		t.Fatalf("the locked account's right password differs from an unknown user's: %d\n%s", status, body)
	}
	w.clock.Advance(time.Minute)
	w.signIn(t, "ingrid", testPassword)
	want := []auth.SignInOutcome{auth.SignInUnknownUser}
	for range auth.DefaultMaxFailures {
		want = append(want, auth.SignInWrongPassword)
	}
	want = append(want, auth.SignInLocked, auth.SignInSucceeded)
	if got := w.rec.outcomes(); strings.Join(outcomeStrings(got), ",") != strings.Join(outcomeStrings(want), ",") {
		t.Errorf("recorded %v, want %v", got, want)
	}
}

func outcomeStrings(os []auth.SignInOutcome) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = string(o)
	}
	return out
}

func TestSignInsPerAddressAreLimited(t *testing.T) {
	cfg := web.DefaultConfig()
	cfg.LoginPerMinute = 3
	w := newWebServer(t, cfg)
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
	for i := range 3 {
		if resp := w.postLogin(t, url.Values{"username": {"ingrid"}, "password": {"wrong horse battery"}}); resp.status != 200 {
			t.Fatalf("attempt %d: %d", i+1, resp.status)
		}
	}
	resp := w.postLogin(t, url.Values{"username": {"ingrid"}, "password": {testPassword}})
	if resp.status != http.StatusTooManyRequests || resp.cookie(auth.SessionCookie) != nil || resp.header.Get("Retry-After") == "" {
		t.Fatalf("the fourth attempt in a minute: %d, Retry-After %q", resp.status, resp.header.Get("Retry-After"))
	}
	if got := w.rec.outcomes(); got[len(got)-1] != auth.SignInRateLimited {
		t.Errorf("recorded %v", got)
	}
}

func TestNextGoesOnlyToPagesOfThisSite(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	w.addUser(t, auth.NewUser{Username: "ingrid", Role: auth.RoleNurse})
	for next, want := range map[string]string{
		"/app/patients?sort=risk": "/app/patients?sort=risk",
		"//evil.example/":         "/app",
		"/\\evil.example":         "/app",
		"https://evil.example/":   "/app",
		"javascript:alert(1)":     "/app",
		"/login":                  "/app",
	} {
		t.Run(next, func(t *testing.T) {
			resp := w.postLogin(t, url.Values{"username": {"ingrid"}, "password": {testPassword}, "next": {next}})
			if resp.status != 303 || resp.header.Get("Location") != want {
				t.Fatalf("next=%q: %d → %q, want %q", next, resp.status, resp.header.Get("Location"), want)
			}
		})
	}
}

func TestUserAdministration(t *testing.T) {
	w := newWebServer(t, web.DefaultConfig())
	adminTok := w.token(t, auth.RoleAdmin, "")
	w.do(t, "PUT", "/fhir/Patient/p-1", adminTok, `{"resourceType":"Patient","id":"p-1"}`)
	jsonCT := []string{"Content-Type", "application/json"}

	created := w.do(t, "POST", "/admin/users", adminTok,
		`{"username":"astrid","role":"patient","patient":"p-1","password":"`+testPassword+`","totp":true}`, jsonCT...)
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	u := created.json(t)
	if u["username"] != "astrid" || u["role"] != "patient" || u["patient"] != "p-1" || u["totp"] != true ||
		!strings.HasPrefix(u["totpUrl"].(string), "otpauth://totp/") || created.header.Get("Location") != "/admin/users/"+u["id"].(string) {
		t.Fatalf("created %s", created.body)
	}
	if strings.Contains(string(created.body), testPassword) || strings.Contains(string(created.body), "argon2") {
		t.Fatal("the answer holds the password or its hash")
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"a nurse may not list users", "GET", "/admin/users", w.token(t, auth.RoleNurse, ""), "", 403, "forbidden"},
		{"nobody without a token may", "GET", "/admin/users", "", "", 401, "login"},
		{"a taken username conflicts", "POST", "/admin/users", adminTok, `{"username":"ASTRID","role":"nurse","password":"` + testPassword + `"}`, 409, "duplicate"},
		{"a short password is refused", "POST", "/admin/users", adminTok, `{"username":"lars","role":"nurse","password":"short"}`, 400, "invalid"},
		{"a Patient that does not exist is refused", "POST", "/admin/users", adminTok, `{"username":"olav","role":"patient","patient":"p-9","password":"` + testPassword + `"}`, 400, "invalid"},
		{"an unknown field is refused", "POST", "/admin/users", adminTok, `{"username":"lars","role":"nurse","password":"` + testPassword + `","admin":true}`, 400, "invalid"},
		{"an unknown user is not found", "POST", "/admin/users/nope/disable", adminTok, "", 404, "not-found"},
		{"revoking an unknown user's sessions is not found", "DELETE", "/admin/users/nope/sessions", adminTok, "", 404, "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := w.do(t, tt.method, tt.path, tt.token, tt.body, jsonCT...)
			if resp.status != tt.status || resp.outcome(t) != tt.code {
				t.Fatalf("status %d, want %d %s: %s", resp.status, tt.status, tt.code, resp.body)
			}
			if strings.Contains(string(resp.body), testPassword) {
				t.Fatal("the error echoes the password")
			}
		})
	}
	list := w.do(t, "GET", "/admin/users", adminTok, "")
	if list.status != 200 || !strings.Contains(string(list.body), `"username":"astrid"`) || !strings.Contains(string(list.body), `"activeSessions":0`) {
		t.Fatalf("list: %d %s", list.status, list.body)
	}

	t.Run("an admin signed in by cookie needs the CSRF token to change users", func(t *testing.T) {
		w.addUser(t, auth.NewUser{Username: "root", Role: auth.RoleAdmin})
		cookie := w.signIn(t, "root", testPassword)
		body := `{"username":"lars","role":"clinician","password":"` + testPassword + `"}`
		if got := w.withCookie(t, "POST", "/admin/users", cookie, body, jsonCT...); got.status != 403 {
			t.Fatalf("without the token: %d %s", got.status, got.body)
		}
		csrf := w.csrfOf(t, cookie, "/app")
		if got := w.withCookie(t, "POST", "/admin/users", cookie, body, append(jsonCT, "X-CSRF-Token", csrf)...); got.status != 201 {
			t.Fatalf("with the token: %d %s", got.status, got.body)
		}
		if got := w.withCookie(t, "GET", "/admin/users", cookie, ""); got.status != 200 {
			t.Fatalf("a GET needs no token: %d", got.status)
		}
	})
}
