package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/auth/oidctest"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/testcert"
)

// TestAnOIDCTokenReadsPatientsOverHTTPS runs the real serve command with
// TLS and an external OpenID Connect provider: the provider's nurse token
// reads the demo patients through the FHIR API, vidda's own tokens keep
// working beside it, and a provider token without its practitioner claim
// is refused with a reason.
func TestAnOIDCTokenReadsPatientsOverHTTPS(t *testing.T) {
	iss := oidctest.New(t)
	certFile, keyFile, pool := testcert.Write(t)
	addr := freeAddr(t)
	envFile := filepath.Join(t.TempDir(), "tokens.env")
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "warn", "VIDDA_TLS_CERT": certFile, "VIDDA_TLS_KEY": keyFile,
		"VIDDA_OIDC_ISSUER": iss.URL(), "VIDDA_OIDC_AUDIENCE": oidctest.Audience,
		"VIDDA_OIDC_ROLE_CLAIM": "groups", "VIDDA_OIDC_ROLE_MAP": "idp-nurse=nurse,idp-doc=clinician",
	}
	if _, _, err := runCmd(t, context.Background(), env, "seed", "--env-file", envFile); err != nil {
		t.Fatal(err)
	}
	own := readEnvFile(t, envFile)["NURSE_TOKEN"]

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	}()

	tr := &http.Transport{TLSClientConfig: testcert.ClientConfig(pool)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://" + addr
	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	nurse := iss.Token(t, map[string]any{"sub": "kc-nurse-1", "groups": []any{"offline_access", "idp-nurse"}, "practitioner": "demo-nurse"})
	// Until serve listens and has the provider's keys: no answer, then 503.
	var status int
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status, body = get("/fhir/Patient", nurse); status != 0 && status != http.StatusServiceUnavailable {
			break
		}
	}
	if status != http.StatusOK {
		t.Fatalf("the provider's nurse token: %d %s", status, body)
	}
	var bundle struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(body, &bundle); err != nil || bundle.Total != 3 {
		t.Errorf("the provider's nurse sees %d demo patients (%v), want 3", bundle.Total, err)
	}
	if status, body := get("/fhir/Patient", own); status != http.StatusOK {
		t.Errorf("vidda's own nurse token beside the provider: %d %s", status, body)
	}
	noPractitioner := iss.Token(t, map[string]any{"groups": "idp-doc"})
	if status, body := get("/fhir/Patient", noPractitioner); status != http.StatusUnauthorized || !strings.Contains(string(body), `needs the \"practitioner\" claim`) {
		t.Errorf("a clinician token without practitioner: %d %s", status, body)
	}
	if status, _ := get("/fhir/Patient", iss.Token(t, map[string]any{"groups": "idp-nurse", "practitioner": "n", "aud": "other"})); status != http.StatusUnauthorized {
		t.Errorf("a provider token for another audience: %d", status)
	}
}
