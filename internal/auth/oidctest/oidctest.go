// Package oidctest runs a stand-in OpenID Connect provider for tests: an
// httptest server with a discovery document and a JWKS, holding its own
// RSA, EC and Ed25519 keys, that signs whatever access token a test asks
// for. Keys can be added without publishing them and published later, as
// a provider rotating its keys does.
//
// It imports the standard library, golang-jwt and jwkset only.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// The keys every Issuer starts with, published.
const (
	KeyRSA = "rsa-1" // RS256
	KeyEC  = "ec-1"  // ES256
)

// Audience is the aud Token puts in unless the claims say otherwise.
const Audience = "vidda-api"

// Issuer is a running stand-in provider.
type Issuer struct {
	srv *httptest.Server

	mu        sync.Mutex
	keys      map[string]key
	published map[string]bool
	docIssuer string // the issuer the discovery document claims; "" = the real one

	jwksFetches atomic.Int64
}

type key struct {
	alg  jwt.SigningMethod
	priv crypto.Signer
	use  jwkset.USE
}

// New starts a provider on a loopback port with KeyRSA and KeyEC
// published; it stops when the test ends.
func New(tb testing.TB) *Issuer {
	tb.Helper()
	iss := &Issuer{keys: map[string]key{}, published: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", iss.discovery)
	mux.HandleFunc("GET /jwks", iss.jwks)
	iss.srv = httptest.NewServer(mux)
	tb.Cleanup(iss.srv.Close)
	iss.AddKey(tb, KeyRSA, jwt.SigningMethodRS256)
	iss.AddKey(tb, KeyEC, jwt.SigningMethodES256)
	iss.Publish(KeyRSA, KeyEC)
	return iss
}

// URL is the issuer identifier (and base URL).
func (i *Issuer) URL() string { return i.srv.URL }

// Client is an HTTP client for the provider.
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// JWKSFetches counts the requests for the JWKS so far.
func (i *Issuer) JWKSFetches() int { return int(i.jwksFetches.Load()) }

// ClaimIssuer makes the discovery document claim another issuer.
func (i *Issuer) ClaimIssuer(s string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.docIssuer = s
}

// AddKey creates a signing key for alg (RS256, RS384, ES256, ES384 or
// EdDSA) named kid, not yet published.
func (i *Issuer) AddKey(tb testing.TB, kid string, alg jwt.SigningMethod) {
	tb.Helper()
	i.addKey(tb, kid, alg, jwkset.UseSig)
}

// AddEncryptionKey creates an RSA key published as "use":"enc", which no
// verifier may accept a signature of.
func (i *Issuer) AddEncryptionKey(tb testing.TB, kid string) {
	tb.Helper()
	i.addKey(tb, kid, jwt.SigningMethodRS256, jwkset.UseEnc)
}

func (i *Issuer) addKey(tb testing.TB, kid string, alg jwt.SigningMethod, use jwkset.USE) {
	tb.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg.Alg() {
	case "RS256", "RS384":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("oidctest: no key for alg %s", alg.Alg())
	}
	if err != nil {
		tb.Fatal(err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = key{alg: alg, priv: priv, use: use}
}

// Publish adds keys to the JWKS.
func (i *Issuer) Publish(kids ...string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range kids {
		i.published[k] = true
	}
}

// Withdraw removes keys from the JWKS; they can still sign.
func (i *Issuer) Withdraw(kids ...string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range kids {
		delete(i.published, k)
	}
}

// Token signs claims with KeyRSA after filling iss (the provider), aud
// (Audience), sub, iat and exp (in 5 minutes) where claims lack them. A
// claim set to nil is left out.
func (i *Issuer) Token(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return i.Sign(tb, KeyRSA, claims)
}

// Sign is Token with the key named kid.
func (i *Issuer) Sign(tb testing.TB, kid string, claims map[string]any) string {
	tb.Helper()
	i.mu.Lock()
	k, ok := i.keys[kid]
	i.mu.Unlock()
	if !ok {
		tb.Fatalf("oidctest: no key %q", kid)
	}
	tok := jwt.NewWithClaims(k.alg, i.fill(claims))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Public returns the public key named kid, for tests that forge tokens
// with it (HS256 keyed with the public key).
func (i *Issuer) Public(tb testing.TB, kid string) crypto.PublicKey {
	tb.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	k, ok := i.keys[kid]
	if !ok {
		tb.Fatalf("oidctest: no key %q", kid)
	}
	return k.priv.Public()
}

func (i *Issuer) fill(claims map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": i.URL(), "aud": Audience, "sub": "idp-user-1",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "jti-1",
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func (i *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	iss := i.docIssuer
	i.mu.Unlock()
	if iss == "" {
		iss = i.URL()
	}
	writeJSON(w, map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              i.URL() + "/jwks",
		"id_token_signing_alg_values_supported": []string{"RS256", "RS384", "ES256", "ES384", "EdDSA"},
	})
}

func (i *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	i.jwksFetches.Add(1)
	i.mu.Lock()
	defer i.mu.Unlock()
	set := jwkset.JWKSMarshal{}
	for kid := range i.published {
		k := i.keys[kid]
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(k.alg.Alg()), USE: k.use},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
