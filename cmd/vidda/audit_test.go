package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// auditCount counts the AuditEvents whose stored JSON contains marker.
func auditCount(t *testing.T, dbURL, where string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM auditevent WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeviceCredentialChangesAreAudited(t *testing.T) {
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{"VIDDA_DATABASE_URL": dbURL, "VIDDA_LOG_LEVEL": "error", "USER": "ops-anna"}
	ctx := context.Background()
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-1", "--serial", "AUD-1")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(out), &cred); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, ctx, env, "device", "rotate", "--device", cred["device"]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, ctx, env, "device", "disable", "--device", cred["device"]); err != nil {
		t.Fatal(err)
	}
	for _, change := range []string{"add", "rotate", "disable"} {
		t.Run(change+" leaves an AuditEvent naming the device, its patient and the operator", func(t *testing.T) {
			n := auditCount(t, dbURL, "subtype @> $1 AND entity @> $2 AND patient_id = 'demo-patient-1' AND content LIKE '%ops-anna%'",
				[]string{"urn:vidda:audit-event|device-credential-" + change}, []string{"Device/" + cred["device"]})
			if n != 1 {
				t.Fatalf("%d AuditEvents for device-credential-%s", n, change)
			}
		})
	}
	t.Run("with VIDDA_AUDIT=off nothing is recorded", func(t *testing.T) {
		off := map[string]string{"VIDDA_DATABASE_URL": dbURL, "VIDDA_LOG_LEVEL": "error", "VIDDA_AUDIT": "off"}
		if _, _, err := runCmd(t, ctx, off, "device", "rotate", "--device", cred["device"]); err != nil {
			t.Fatal(err)
		}
		if n := auditCount(t, dbURL, "true"); n != 3 {
			t.Fatalf("%d AuditEvents, want the 3 from before", n)
		}
		if _, _, err := runCmd(t, ctx, map[string]string{"VIDDA_DATABASE_URL": dbURL, "VIDDA_AUDIT": "maybe"}, "device", "rotate", "--device", cred["device"]); err == nil || !strings.Contains(err.Error(), "VIDDA_AUDIT") {
			t.Fatalf("VIDDA_AUDIT=maybe: %v", err)
		}
	})
}

// TestSIGTERMLosesNoAuditEvent: every request vidda answered before a
// SIGTERM has its AuditEvent in the table once the process has exited.
func TestSIGTERMLosesNoAuditEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vidda")
	}
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "error",
	}
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "token", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	p := startVidda(t, env)
	const clients, each = 8, 150
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for c := range clients {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range each {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+env["VIDDA_HTTP_ADDR"]+"/fhir/Patient/demo-patient-2", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("X-Request-Id", fmt.Sprintf("sigterm-%d-%d", c, i))
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("vidda did not exit within 60s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("vidda exited with %d after SIGTERM", code)
	}
	n := auditCount(t, dbURL, "content LIKE '%\"sigterm-%' AND patient_id = 'demo-patient-2'")
	t.Logf("%d requests answered, %d AuditEvents after exit", answered, n)
	if answered != clients*each || n != answered {
		t.Fatalf("%d of %d requests answered; %d AuditEvents, want one per answer", answered, clients*each, n)
	}
}

// TestSignInsAreAudited signs in at /login through vidda serve, once with a
// wrong password and once rightly, and finds both in the audit trail.
func TestSignInsAreAudited(t *testing.T) {
	dbURL := dbtest.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "warn"}
	if _, _, err := runCmd(t, context.Background(), env, "seed"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	base := "http://" + addr
	waitReady(t, base, done)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
	post := func(form url.Values, csrf *http.Cookie) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(csrf)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/login", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "vidda_login_csrf" {
			csrf = c
		}
	}
	if csrf == nil {
		t.Fatal("GET /login set no CSRF cookie")
	}
	if st := post(url.Values{"username": {"ingrid"}, "password": {"not-her-password"}, "csrf": {csrf.Value}}, csrf); st == http.StatusSeeOther {
		t.Fatal("a wrong password signed in")
	}
	if st := post(url.Values{"username": {"ingrid"}, "password": {"vidda-demo-nurse"}, "csrf": {csrf.Value}}, csrf); st != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", st)
	}
	cancel() // a clean stop writes every recorded event
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	login := []string{"http://dicom.nema.org/resources/ontology/DCM|110122"}
	if n := auditCount(t, dbURL, "subtype @> $1 AND outcome @> '{*|8}' AND content LIKE '%wrong-password%' AND content LIKE '%ingrid%'", login); n != 1 {
		t.Errorf("%d failed sign-ins audited, want 1", n)
	}
	if n := auditCount(t, dbURL, "subtype @> $1 AND outcome @> '{*|0}' AND agent @> '{Practitioner/demo-nurse}'", login); n != 1 {
		t.Errorf("%d sign-ins audited, want 1", n)
	}
}
