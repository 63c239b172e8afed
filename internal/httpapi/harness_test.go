package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/httpapi"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// server is a real vidda HTTP server on a loopback port over a real
// database of the test's own.
type server struct {
	base  string
	keys  *auth.KeyStore
	st    *store.Store
	audit *audit.Writer // every test server keeps an audit trail
}

func newServer(t *testing.T) *server {
	t.Helper()
	return newServerWith(t, nil)
}

// newServerWith is newServer with settings changed by tune (nil: none).
func newServerWith(t *testing.T, tune func(*httpapi.Config)) *server {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	auditCfg := audit.DefaultConfig()
	auditCfg.FlushEvery = 5 * time.Millisecond
	aw, err := audit.NewWriter(pool, params, auditCfg, nil, log)
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
	if tune != nil {
		tune(&cfg)
	}
	srv, err := httpapi.New(httpapi.Deps{
		Store: st, Types: types, Params: params, Verifier: keys, Ready: st, Metrics: prometheus.NewRegistry(),
		Devices:       auth.NewDeviceAuthenticator(st.DeviceCredential, store.ErrNoCredential),
		BrokerAccount: httpapi.BrokerAccount{Username: "vidda-svc", Password: "svc-secret"},
		DeadLetters:   st,
		Audit:         aw,
	}, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	storeDone, httpDone := make(chan error, 1), make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	// The audit writer stops after the HTTP server, as in vidda serve.
	auditCtx, stopAudit := context.WithCancel(context.Background())
	auditDone := make(chan error, 1)
	go func() { auditDone <- aw.Run(auditCtx) }()
	go func() { httpDone <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
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
	return &server{base: "http://" + cfg.Addr, keys: keys, st: st, audit: aw}
}

func (s *server) token(t *testing.T, role auth.Role, patient string) string {
	t.Helper()
	tok, err := s.keys.Mint(context.Background(), auth.TokenRequest{Subject: "test-" + string(role), Role: role, PatientID: patient})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.body)
	}
	return m
}

// outcome asserts the body is an OperationOutcome and returns its first
// issue code.
func (r *response) outcome(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("status %d body is not an OperationOutcome: %s", r.status, r.body)
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.body)
	}
	code, _ := issues[0].(map[string]any)["code"].(string)
	return code
}

// do sends a request; headers are name, value pairs.
func (s *server) do(t *testing.T, method, path, token, body string, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
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
