package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// TestMain runs the tests around a throwaway PostgreSQL and checks that
// no goroutine outlives them (dbtest ignores Fiber's and fasthttp's
// process-wide clocks).
func TestMain(m *testing.M) { dbtest.Main(m) }

// fakeAccounts knows one user, ingrid, and one session.
type fakeAccounts struct{}

const fakeToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func (fakeAccounts) SignIn(_ context.Context, c auth.Credentials) (string, *auth.Session, error) {
	if c.Username != "ingrid" || c.Password != "correct horse battery" {
		return "", nil, &auth.SignInError{Outcome: auth.SignInWrongPassword}
	}
	return fakeToken, fakeSession(), nil
}

func (fakeAccounts) VerifySession(_ context.Context, token string) (*auth.Session, error) {
	if token != fakeToken {
		return nil, auth.ErrUnauthenticated
	}
	return fakeSession(), nil
}

func (fakeAccounts) SignOut(context.Context, string) error { return nil }

func fakeSession() *auth.Session {
	return &auth.Session{
		ID: "s1", UserID: "u1", Username: "ingrid", CSRFToken: "session-csrf",
		Principal: &auth.Principal{Subject: "u1", Role: auth.RoleNurse},
	}
}

// newApp is the pages with a fake session store over the package's
// database (the sign-in tests read no patient data).
func newApp(t *testing.T, cfg Config) *fiber.App {
	t.Helper()
	types, params := fhir.NewRegistry(), search.NewRegistry(time.UTC)
	st := store.New(dbtest.Pool(t), types, params, store.DefaultConfig(), slog.New(slog.DiscardHandler))
	p, err := New(Deps{Accounts: fakeAccounts{}, Store: st, Types: types, Params: params}, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	p.Mount(app)
	return app
}

// result is a response, read and closed.
type result struct {
	StatusCode int
	Header     http.Header
	cookies    []*http.Cookie
}

func (r *result) Cookies() []*http.Cookie { return r.cookies }

func get(t *testing.T, app *fiber.App, req *http.Request) (*result, string) {
	t.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &result{StatusCode: resp.StatusCode, Header: resp.Header, cookies: resp.Cookies()}, string(b)
}

func TestTheSignInPageIsAccessibleAndSelfContained(t *testing.T) {
	app := newApp(t, DefaultConfig())
	resp, body := get(t, app, httptest.NewRequest(http.MethodGet, "/login", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /login: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<label for="username">`, `<input id="username" name="username"`, `autocomplete="username"`,
		`<label for="password">`, `<input id="password" name="password" type="password" autocomplete="current-password"`,
		`<label for="code">`, `autocomplete="one-time-code"`, `inputmode="numeric"`,
		`<link rel="stylesheet" href="/static/vidda.css">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, " style=") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("the page has a script, inline style or an external reference")
	}
	if strings.Contains(body, `name="csrf-token"`) {
		t.Error("the sign-in page shows a session CSRF meta tag before any session")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == loginCSRFCookie {
			csrf = c
		}
	}
	if csrf == nil || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode || csrf.Path != "/login" || csrf.Secure ||
		!strings.Contains(body, `name="csrf" value="`+csrf.Value+`"`) {
		t.Errorf("login CSRF cookie %+v does not match the form", csrf)
	}

	css, cssBody := get(t, app, httptest.NewRequest(http.MethodGet, "/static/vidda.css", nil))
	if css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") || !strings.Contains(cssBody, "font-family") {
		t.Errorf("GET /static/vidda.css: %d %q", css.StatusCode, css.Header.Get("Content-Type"))
	}
}

func TestCookiesAreSecureWhenConfigured(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SecureCookies = true
	app := newApp(t, cfg)
	page, body := get(t, app, httptest.NewRequest(http.MethodGet, "/login", nil))
	for _, c := range page.Cookies() {
		if c.Name == loginCSRFCookie && !c.Secure {
			t.Errorf("the login CSRF cookie is not Secure")
		}
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)[1]
	form := url.Values{"username": {"ingrid"}, "password": {"correct horse battery"}, "csrf": {csrf}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCSRFCookie, Value: csrf})
	resp, _ := get(t, app, req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure", c.Name)
		}
		if c.Name == auth.SessionCookie && (c.Value != fakeToken || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode) {
			t.Errorf("session cookie %+v", c)
		}
	}
}

func TestSignedInBrowsersSkipTheForm(t *testing.T) {
	app := newApp(t, DefaultConfig())
	req := httptest.NewRequest(http.MethodGet, "/login?next=/app/patients", nil)
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: fakeToken})
	resp, _ := get(t, app, req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/patients" {
		t.Fatalf("GET /login signed in: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"":                             "",
		"/app":                         "/app",
		"/app/patients?x=1#top":        "/app/patients?x=1#top",
		"/visit/a-1":                   "/visit/a-1",
		"app":                          "",
		"//evil.example":               "",
		"///evil.example":              "",
		"/\\evil.example":              "",
		"/app\\..\\x":                  "",
		"https://evil.example/":        "",
		"javascript:alert(1)":          "",
		"/\tevil":                      "",
		"/app\r\nSet-Cookie: x":        "",
		"/login":                       "",
		"/logout":                      "",
		"/login?next=/login":           "",
		"/" + strings.Repeat("a", 600): "",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, seed := range []string{"/app", "//x", "/\\x", "/%2F%2Fx", "/a?b=//c", "https:/x", "/.//x", "/%0a"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "" {
			return
		}
		if got != next {
			t.Fatalf("safeNext(%q) = %q: it must keep or refuse, never rewrite", next, got)
		}
		// Resolved against this site, it must stay on this site: what a
		// browser does with a Location header.
		base, _ := url.Parse("https://vidda.example/login")
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("safeNext(%q) accepted an unparseable URL", next)
		}
		if u := base.ResolveReference(ref); u.Host != "vidda.example" || u.Scheme != "https" {
			t.Fatalf("safeNext(%q) leads to %s", next, u)
		}
		if strings.ContainsAny(got, "\\\r\n\t") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeNext(%q) kept a character a browser reads loosely", next)
		}
	})
}
