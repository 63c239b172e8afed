package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
)

const cliPassword = "correct horse battery"

// userRun runs vidda user with stdin.
func userRun(t *testing.T, dbURL, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		getenv: envOf(map[string]string{"VIDDA_DATABASE_URL": dbURL, "VIDDA_LOG_LEVEL": "error"}),
		stdin:  strings.NewReader(stdin), stdout: &out, stderr: &errb,
	}
	err := userCmd(context.Background(), e, append([]string{}, args...))
	return out.String(), errb.String(), err
}

// canSignIn reports whether username/password open a session.
func canSignIn(t *testing.T, dbURL, username, password string) bool {
	t.Helper()
	users, err := auth.NewUsers(dbtest.PoolFor(t, dbURL), auth.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = auth.NewSessions(users, slog.New(slog.DiscardHandler)).SignIn(context.Background(),
		auth.Credentials{Username: username, Password: password})
	if err != nil && !errors.Is(err, auth.ErrSignInFailed) {
		t.Fatal(err)
	}
	return err == nil
}

func TestUserAddPasswdDisable(t *testing.T) {
	dbURL := dbtest.NewDatabase(t)

	out, stderr, err := userRun(t, dbURL, cliPassword+"\n", "add", "--username", "Ingrid", "--role", "nurse")
	if err != nil || out != "" || !strings.Contains(stderr, "added nurse ingrid") {
		t.Fatalf("add: %v, stdout %q, stderr %q", err, out, stderr)
	}
	if !canSignIn(t, dbURL, "ingrid", cliPassword) {
		t.Fatal("the added user cannot sign in")
	}
	if _, _, err := userRun(t, dbURL, cliPassword+"\n", "add", "--username", "ingrid", "--role", "admin"); !errors.Is(err, auth.ErrUserExists) {
		t.Fatalf("a second ingrid: %v", err)
	}
	for name, args := range map[string][]string{
		"a short password":          {"add", "--username", "lars", "--role", "nurse"},
		"no role":                   {"add", "--username", "lars"},
		"a patient without Patient": {"add", "--username", "lars", "--role", "patient"},
		"a Patient that is missing": {"add", "--username", "lars", "--role", "patient", "--patient", "nope"},
		"an unknown action":         {"promote", "--username", "lars"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			stdin := cliPassword + "\n"
			if name == "a short password" {
				stdin = "short\n"
			}
			if _, _, err := userRun(t, dbURL, stdin, args...); err == nil {
				t.Fatal("accepted")
			}
		})
	}

	out, _, err = userRun(t, dbURL, cliPassword+"\n", "add", "--username", "lars", "--role", "clinician", "--totp")
	if err != nil || !regexp.MustCompile(`^otpauth://totp/Vidda:lars\?\S*secret=[A-Z2-7]{32}\S*\n$`).MatchString(out) {
		t.Fatalf("add --totp: %v, stdout %q", err, out)
	}

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("a brand new passphrase\r\nignored second line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := userRun(t, dbURL, "", "passwd", "--username", "ingrid", "--password-file", pwFile); err != nil ||
		!strings.Contains(stderr, "ingrid has a new password") {
		t.Fatalf("passwd: %v %q", err, stderr)
	}
	if canSignIn(t, dbURL, "ingrid", cliPassword) || !canSignIn(t, dbURL, "ingrid", "a brand new passphrase") {
		t.Fatal("passwd did not replace the password")
	}
	if _, stderr, err := userRun(t, dbURL, "", "disable", "--username", "ingrid"); err != nil || !strings.Contains(stderr, "1 session(s) ended") {
		t.Fatalf("disable: %v %q", err, stderr)
	}
	if canSignIn(t, dbURL, "ingrid", "a brand new passphrase") {
		t.Fatal("a disabled user signed in")
	}
	out, _, err = userRun(t, dbURL, "", "list")
	if err != nil || !regexp.MustCompile(`(?m)^ingrid\s+nurse\s+-\s+-\s+no\s+disabled\s+0$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^lars\s+clinician\s+-\s+-\s+yes\s+active\s+0$`).MatchString(out) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := userRun(t, dbURL, "", "enable", "--username", "ingrid"); err != nil || !canSignIn(t, dbURL, "ingrid", "a brand new passphrase") {
		t.Fatalf("enable: %v", err)
	}
	if _, _, err := userRun(t, dbURL, "", "disable", "--username", "nobody"); !errors.Is(err, auth.ErrUserNotFound) {
		t.Fatalf("disable nobody: %v", err)
	}
}

func TestUserHelpExplainsWhereThePasswordComesFrom(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"add", "--help"}} {
		var errb bytes.Buffer
		err := userCmd(context.Background(), &env{getenv: envOf(nil), stdout: io.Discard, stderr: &errb}, args)
		if (err != nil && !errors.Is(err, flag.ErrHelp)) || !strings.Contains(errb.String(), "never\nfrom the command line") {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
	}
}

// TestUserAddReadsThePasswordFromARealStdin runs vidda as its own process,
// the password piped in, as an operator's script would.
func TestUserAddReadsThePasswordFromARealStdin(t *testing.T) {
	dbURL := dbtest.NewDatabase(t)
	cmd := exec.Command(os.Args[0], "user", "add", "--username", "astrid", "--role", "admin")
	cmd.Env = append(os.Environ(), "VIDDA_TEST_AS_VIDDA=1", "VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=error")
	cmd.Stdin = strings.NewReader(cliPassword + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vidda user add: %v\n%s", err, out)
	}
	if !canSignIn(t, dbURL, "astrid", cliPassword) {
		t.Fatalf("the piped password does not sign in:\n%s", out)
	}
}

// TestSeedAddsDemoUsersWhoSignInThroughServe runs seed twice (it must stay
// idempotent), then serve, and signs in as the demo nurse at /login.
func TestSeedAddsDemoUsersWhoSignInThroughServe(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "warn"}
	for range 2 {
		out, _, err := runCmd(t, context.Background(), env, "seed")
		if err != nil || !strings.Contains(out, "http://"+addr+"/login") ||
			!regexp.MustCompile(`nurse Ingrid Berg\s+ingrid\s+/ vidda-demo-nurse`).MatchString(out) ||
			!regexp.MustCompile(`patient Astrid Nilsson\s+astrid\s+/ vidda-demo-patient`).MatchString(out) {
			t.Fatalf("seed: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + addr
	waitReady(t, base, done)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
	// sent is a response, read and closed.
	type sent struct {
		status   int
		location string
		cookies  map[string]*http.Cookie
	}
	send := func(method, path string, form url.Values, cookies ...*http.Cookie) sent {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := sent{status: resp.StatusCode, location: resp.Header.Get("Location"), cookies: map[string]*http.Cookie{}}
		for _, c := range resp.Cookies() {
			out.cookies[c.Name] = c
		}
		return out
	}
	page := send(http.MethodGet, "/login", nil)
	csrf := page.cookies["vidda_login_csrf"]
	if page.status != http.StatusOK || csrf == nil {
		t.Fatalf("GET /login: %d", page.status)
	}
	resp := send(http.MethodPost, "/login", url.Values{"username": {"ingrid"}, "password": {"vidda-demo-nurse"}, "csrf": {csrf.Value}}, csrf)
	session := resp.cookies[auth.SessionCookie]
	if resp.status != http.StatusSeeOther || resp.location != "/app" || session == nil || session.Secure {
		t.Fatalf("POST /login: %d → %q, cookie %+v (plain http on loopback: not Secure)", resp.status, resp.location, session)
	}
	if got := send(http.MethodGet, "/fhir/Patient", nil, session); got.status != http.StatusOK {
		t.Fatalf("GET /fhir/Patient with the demo nurse's cookie: %d", got.status)
	}
}

func TestBadSignInSettingsStopStartUpNamingTheVariable(t *testing.T) {
	dbURL := dbtest.URL(t)
	for name, tt := range map[string]struct {
		env  map[string]string
		want string
	}{
		"an idle timeout longer than the session":  {map[string]string{"VIDDA_SESSION_IDLE_TIMEOUT": "13h"}, "VIDDA_SESSION_IDLE_TIMEOUT"},
		"a negative lockout":                       {map[string]string{"VIDDA_LOGIN_LOCKOUT": "-1m"}, "VIDDA_LOGIN_LOCKOUT"},
		"no sign-ins allowed at all":               {map[string]string{"VIDDA_LOGIN_RATE_LIMIT": "0"}, "VIDDA_LOGIN_RATE_LIMIT"},
		"a failure count that is not a number":     {map[string]string{"VIDDA_LOGIN_MAX_FAILURES": "five"}, "VIDDA_LOGIN_MAX_FAILURES"},
		"an absolute timeout that is not duration": {map[string]string{"VIDDA_SESSION_MAX_AGE": "a shift"}, "VIDDA_SESSION_MAX_AGE"},
	} {
		t.Run(name, func(t *testing.T) {
			tt.env["VIDDA_DATABASE_URL"] = dbURL
			_, _, err := runCmd(t, context.Background(), tt.env, "serve")
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %s", err, tt.want)
			}
		})
	}
}
