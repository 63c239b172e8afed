package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsNeverReachTheLog runs `vidda serve` at debug level with a
// database password in its URL, then sends it a valid token, a made-up
// one and device logins, and reads everything the process wrote.
func TestSecretsNeverReachTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a vidda process")
	}
	const (
		dbPassword  = "canary-db-password-4711"
		fakeToken   = "canary.made-up.token-0815"
		badPassword = "canary-wrong-device-password"
	)
	u, err := url.Parse(dbtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test cluster trusts loopback, so any password connects.
	u.User = url.UserPassword(u.User.Username(), dbPassword)
	env := map[string]string{
		"VIDDA_DATABASE_URL": u.String(), "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "debug", "VIDDA_LOG_FORMAT": "text",
	}
	ctx := context.Background()
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	tokOut, _, err := runCmd(t, ctx, env, "token", "--role", "nurse")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(tokOut)
	devOut, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-1", "--serial", "LOG-1")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(devOut), &cred); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "VIDDA_TEST_AS_VIDDA=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	base := "http://" + env["VIDDA_HTTP_ADDR"]
	waitHTTP(t, base+"/readyz", exited)

	for _, tok := range []string{token, fakeToken} {
		for _, path := range []string{"/fhir/Patient", "/fhir/Observation?patient=demo-patient-1", "/metrics", "/fhir/Nope/1"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	for _, pw := range []string{badPassword, cred["password"]} {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + env["VIDDA_MQTT_LISTEN"]).SetClientID("log-gw").
			SetUsername(cred["username"]).SetPassword(pw).SetAutoReconnect(false).SetConnectRetry(false)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.Publish(cred["topic"]+"/readings", 1, false, `{"type":"weight","value":70.1,"unit":"kg"}`).WaitTimeout(10 * time.Second)
			c.Disconnect(50)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("vidda did not stop on SIGTERM")
	}
	out := logs.String()
	if !strings.Contains(out, "starting vidda") || !strings.Contains(out, "http request") {
		t.Fatalf("the log lacks the lines this test relies on:\n%s", out)
	}
	for name, secret := range map[string]string{
		"the database password": dbPassword, "a valid bearer token": token, "a made-up bearer token": fakeToken,
		"a device password": cred["password"], "a wrong device password": badPassword,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("%s is in the log", name)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

func waitHTTP(t *testing.T, u string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatal("vidda exited early")
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("vidda did not become ready")
}
