package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// An EHR registered with vidda client add gets a token at /auth/token with
// an ES384 assertion and reads what its scopes allow, and nothing else.
func TestARegisteredClientObtainsATokenAndUsesIt(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, y := make([]byte, 48), make([]byte, 48)
	key.X.FillBytes(x) //nolint:staticcheck // the JWK needs the raw coordinates
	key.Y.FillBytes(y) //nolint:staticcheck // the JWK needs the raw coordinates
	enc := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-384", "kid": "ehr-key-1", "alg": "ES384", "x": enc(x), "y": enc(y),
	}}})
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	env := map[string]string{"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "warn"}
	if _, _, err := runCmd(t, context.Background(), env, "migrate"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runCmd(t, context.Background(), env, "client", "add", "--id", "regional-ehr", "--scope", "system/Observation.rs", "--jwks-file", jwksFile); err != nil {
		t.Fatalf("client add: %v: %s", err, stderr)
	}
	if out, _, err := runCmd(t, context.Background(), env, "client", "list"); err != nil || !strings.Contains(out, "regional-ehr") {
		t.Fatalf("client list: %v: %s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	waitReady(t, base, done)

	var discovery map[string]any
	getJSON(t, base+"/.well-known/smart-configuration", "", 200, &discovery)
	if discovery["token_endpoint"] != base+"/auth/token" {
		t.Fatalf("discovery: %v", discovery)
	}

	assertion := func(jti string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES384, jwt.RegisteredClaims{
			Issuer: "regional-ehr", Subject: "regional-ehr", Audience: jwt.ClaimStrings{base + "/auth/token"},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(4 * time.Minute)), ID: jti,
		})
		tok.Header["kid"] = "ehr-key-1"
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(form url.Values) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/auth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	form := url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion("jti-1")},
	}
	status, body := post(form)
	if status != 200 || body["token_type"] != "bearer" || body["scope"] != "system/Observation.rs" {
		t.Fatalf("token: %d %v", status, body)
	}
	token, _ := body["access_token"].(string)
	getJSON(t, base+"/fhir/Observation", token, 200, nil)
	getJSON(t, base+"/fhir/Patient", token, 403, nil)

	if status, body = post(form); status != 401 || body["error"] != "invalid_client" {
		t.Errorf("replayed assertion: %d %v", status, body)
	}
	form.Set("client_assertion", assertion("jti-2"))
	form.Set("scope", "system/Patient.rs")
	if status, body = post(form); status != 400 || body["error"] != "invalid_scope" {
		t.Errorf("unregistered scope: %d %v", status, body)
	}
}
