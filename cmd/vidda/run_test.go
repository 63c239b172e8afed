package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) {
	// Crash tests start this test binary as a vidda process they can kill.
	if os.Getenv("VIDDA_TEST_AS_VIDDA") == "1" {
		main()
		return
	}
	// Every vidda a test starts, in this process or as a child, takes
	// free ports for TURN and media unless the test says otherwise, so
	// that tests (and a developer's make run) can run side by side.
	for k, v := range videoTestPorts() {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
	dbtest.Main(m)
}

// videoTestPorts are the video listeners of a vidda under test: port 0.
func videoTestPorts() map[string]string {
	return map[string]string{"VIDDA_TURN_LISTEN": "127.0.0.1:0", "VIDDA_MEDIA_UDP": "127.0.0.1:0", "VIDDA_MEDIA_TCP": "127.0.0.1:0"}
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		return videoTestPorts()[k]
	}
}

func runCmd(t *testing.T, ctx context.Context, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(ctx, args, envOf(env), &out, &errb)
	return out.String(), errb.String(), err
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestVersionAndHelp(t *testing.T) {
	out, _, err := runCmd(t, context.Background(), nil, "version")
	if err != nil || !strings.HasPrefix(out, "vidda ") {
		t.Fatalf("version: %q %v", out, err)
	}
	out, _, err = runCmd(t, context.Background(), nil, "--help")
	if err != nil || !strings.Contains(out, "migrate") || !strings.Contains(out, "token") {
		t.Fatalf("help: %q %v", out, err)
	}
	_, _, err = runCmd(t, context.Background(), nil, "frobnicate")
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestBadConfigurationStopsStartUpNamingTheVariable(t *testing.T) {
	url := dbtest.URL(t)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no database URL", map[string]string{}, "VIDDA_DATABASE_URL"},
		{"a listen address that is not host:port", map[string]string{"VIDDA_DATABASE_URL": url, "VIDDA_HTTP_ADDR": "eight-thousand"}, "VIDDA_HTTP_ADDR"},
		{"a timeout that is not a duration", map[string]string{"VIDDA_DATABASE_URL": url, "VIDDA_REQUEST_TIMEOUT": "soon"}, "VIDDA_REQUEST_TIMEOUT"},
		{"an unknown log level", map[string]string{"VIDDA_DATABASE_URL": url, "VIDDA_LOG_LEVEL": "chatty"}, "VIDDA_LOG_LEVEL"},
		{"an unknown time zone", map[string]string{"VIDDA_DATABASE_URL": url, "VIDDA_TIME_ZONE": "Mars/Olympus"}, "VIDDA_TIME_ZONE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, context.Background(), tt.env, "serve")
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("err = %v, want one line naming %s", err, tt.want)
			}
		})
	}
}

func TestTokenPrintsTheBareToken(t *testing.T) {
	env := map[string]string{"VIDDA_DATABASE_URL": dbtest.URL(t), "VIDDA_LOG_LEVEL": "error"}
	out, _, err := runCmd(t, context.Background(), env, "token", "--role", "nurse")
	if err != nil {
		t.Fatal(err)
	}
	if tok := strings.TrimSuffix(out, "\n"); strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout %q is not one bare JWT", out)
	}
	if _, _, err := runCmd(t, context.Background(), env, "token", "--role", "patient"); err == nil {
		t.Fatal("a patient token without --patient was minted")
	}
	if _, _, err := runCmd(t, context.Background(), env, "token", "--role", "janitor"); err == nil {
		t.Fatal("an unknown role was accepted")
	}
}

// TestServeSeedAndDrain runs the real serve command: demo data loaded by
// seed, read with the printed nurse token, then a clean exit on cancel.
func TestServeSeedAndDrain(t *testing.T) {
	addr := freeAddr(t)
	envFile := filepath.Join(t.TempDir(), "tokens.env")
	env := map[string]string{"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "warn"}
	if _, _, err := runCmd(t, context.Background(), env, "migrate"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, context.Background(), env, "seed", "--env-file", envFile)
	if err != nil || !strings.Contains(out, "NURSE_TOKEN=") || !strings.Contains(out, "http://"+addr+"/fhir") {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	tokens := readEnvFile(t, envFile)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard)
		done <- err
	}()
	base := "http://" + addr
	waitReady(t, base, done)

	var bundle struct {
		Total int `json:"total"`
	}
	getJSON(t, base+"/fhir/Patient", tokens["NURSE_TOKEN"], 200, &bundle)
	if bundle.Total != 3 {
		t.Errorf("nurse sees %d demo patients, want 3", bundle.Total)
	}
	getJSON(t, base+"/fhir/Observation?patient=demo-patient-2", tokens["PATIENT_TOKEN"], 403, nil)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after the stop signal, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s")
	}
}

func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("serve never became ready")
}

func getJSON(t *testing.T, url, token string, status int, into any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, status, body)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatal(fmt.Errorf("%w: %s", err, body))
		}
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}
