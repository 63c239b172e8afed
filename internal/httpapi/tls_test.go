package httpapi_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/internal/testcert"
)

type alwaysReady struct{}

func (alwaysReady) Ping(context.Context) error { return nil }

// startBare runs a server without a database (health, metadata and the
// middleware work) on a loopback port until the test ends; it returns the
// address.
func startBare(t *testing.T, cfg httpapi.Config) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	srv, err := httpapi.New(httpapi.Deps{
		Types: fhir.NewRegistry(), Params: search.NewRegistry(time.UTC), Ready: alwaysReady{}, Metrics: prometheus.NewRegistry(),
	}, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("http server: %v", err)
		}
	})
	return cfg.Addr
}

// httpsAnswer is what a GET got back.
type httpsAnswer struct {
	StatusCode int
	Header     http.Header
	TLS        *tls.ConnectionState
}

func getVia(t *testing.T, client *http.Client, url string) (*httpsAnswer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return &httpsAnswer{StatusCode: resp.StatusCode, Header: resp.Header, TLS: resp.TLS}, nil
}

func TestWithACertificateTheServerSpeaksHTTPSOnly(t *testing.T) {
	certFile, keyFile, pool := testcert.Write(t)
	cfg := httpapi.DefaultConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	addr := startBare(t, cfg)

	tr := &http.Transport{TLSClientConfig: testcert.ClientConfig(pool)}
	defer tr.CloseIdleConnections()
	resp, err := getVia(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://"+addr+"/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("HTTPS: status %d, TLS %+v", resp.StatusCode, resp.TLS)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got == "" {
		t.Error("an HTTPS response without Strict-Transport-Security")
	}

	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	if resp, err := getVia(t, &http.Client{Transport: plain, Timeout: 5 * time.Second}, "http://"+addr+"/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("plain HTTP to the TLS port was answered")
	}

	old := testcert.ClientConfig(pool)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	legacy := &http.Transport{TLSClientConfig: old}
	defer legacy.CloseIdleConnections()
	if _, err := getVia(t, &http.Client{Transport: legacy, Timeout: 5 * time.Second}, "https://"+addr+"/healthz"); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
}

func TestTLSSettingsAreCheckedAtStart(t *testing.T) {
	cfg := httpapi.DefaultConfig()
	cfg.TLSCertFile = "cert.pem"
	if err := cfg.Validate(); err == nil {
		t.Error("a certificate without a key was accepted")
	}
	cfg.TLSKeyFile = "missing-key.pem"
	cfg.TLSCertFile = "missing-cert.pem"
	if _, err := httpapi.New(httpapi.Deps{Types: fhir.NewRegistry(), Params: search.NewRegistry(time.UTC)}, cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("missing certificate files were accepted")
	}
}

func bareDeps() httpapi.Deps {
	return httpapi.Deps{
		Types: fhir.NewRegistry(), Params: search.NewRegistry(time.UTC), Ready: alwaysReady{}, Metrics: prometheus.NewRegistry(),
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
