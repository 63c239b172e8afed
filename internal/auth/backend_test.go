package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const testTokenURL = "https://vidda.example/auth/token"

// clientKey is a client's private key with the JWK of its public half.
type clientKey struct {
	kid    string
	method jwt.SigningMethod
	key    crypto.Signer
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newRSAClientKey(t *testing.T, kid string) *clientKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &clientKey{kid: kid, method: jwt.SigningMethodRS384, key: k}
}

func newECClientKey(t *testing.T, kid string) *clientKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &clientKey{kid: kid, method: jwt.SigningMethodES384, key: k}
}

func (s *clientKey) jwk() map[string]any {
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		return map[string]any{
			"kty": "RSA", "kid": s.kid, "alg": "RS384", "use": "sig",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
		}
	case *ecdsa.PrivateKey:
		x, y := make([]byte, 48), make([]byte, 48)
		k.X.FillBytes(x) //nolint:staticcheck // the JWK needs the raw coordinates
		k.Y.FillBytes(y) //nolint:staticcheck // the JWK needs the raw coordinates
		return map[string]any{"kty": "EC", "kid": s.kid, "alg": "ES384", "use": "sig", "crv": "P-384", "x": b64(x), "y": b64(y)}
	}
	panic("unknown key type")
}

func jwks(t *testing.T, cks ...*clientKey) json.RawMessage {
	t.Helper()
	var keys []any
	for _, s := range cks {
		keys = append(keys, s.jwk())
	}
	raw, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertion signs a client assertion; tweak changes its claims.
func (s *clientKey) assertion(t *testing.T, client string, now time.Time, tweak func(*jwt.RegisteredClaims)) string {
	t.Helper()
	c := jwt.RegisteredClaims{
		Issuer: client, Subject: client, Audience: jwt.ClaimStrings{testTokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(4 * time.Minute)), ID: uuid.NewString(),
	}
	if tweak != nil {
		tweak(&c)
	}
	tok := jwt.NewWithClaims(s.method, c)
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func tokenForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_assertion_type": {assertionType},
		"client_assertion": {assertion}, "scope": {scope},
	}
}

func TestBackendServicesTokenEndpoint(t *testing.T) {
	pool := isolated(t)
	clock := newClock()
	keys := newStore(t, pool, testConfig(clock))
	clients := NewClients(pool)
	ctx := context.Background()

	rsaKey, ecKey, stranger := newRSAClientKey(t, "rsa-1"), newECClientKey(t, "ec-1"), newRSAClientKey(t, "rsa-1")
	if err := clients.Add(ctx, &Client{ID: "ehr-inline", Name: "EHR", Scopes: []string{"system/Observation.rs", "system/Patient.rs"}, JWKS: jwks(t, rsaKey)}); err != nil {
		t.Fatal(err)
	}
	// A client serving its keys at a URL, which it rotates mid-test.
	var served atomic.Value
	served.Store(jwks(t, ecKey))
	var fetches atomic.Int32
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(served.Load().(json.RawMessage))
	}))
	defer jwksServer.Close()
	if err := clients.Add(ctx, &Client{ID: "ehr-url", Name: "EHR 2", Scopes: []string{"system/*.rs"}, JWKSURL: jwksServer.URL}); err != nil {
		t.Fatal(err)
	}
	b := NewBackend(clients, keys, BackendConfig{TokenURL: testTokenURL, Now: clock.Now}, discardLog())

	refused := func(t *testing.T, form url.Values, code, mention string) {
		t.Helper()
		resp, err := b.Exchange(ctx, form)
		var oe *OAuthError
		if !errors.As(err, &oe) {
			t.Fatalf("got %+v, %v; want OAuth error %s", resp, err, code)
		}
		if oe.Code != code || !strings.Contains(oe.Description, mention) {
			t.Fatalf("got %s (%s), want %s mentioning %q", oe.Code, oe.Description, code, mention)
		}
	}

	t.Run("an RS384 assertion from an inline key gets a token with the scopes asked for", func(t *testing.T) {
		resp, err := b.Exchange(ctx, tokenForm(rsaKey.assertion(t, "ehr-inline", clock.Now(), nil), "system/Observation.rs"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != "bearer" || resp.ExpiresIn != 300 || resp.Scope != "system/Observation.rs" {
			t.Fatalf("response %+v", resp)
		}
		p, err := keys.Verify(ctx, resp.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if p.Role != RoleSystem || p.ClientID != "ehr-inline" || len(p.Scopes) != 1 {
			t.Fatalf("principal %+v", p)
		}
		if _, err := Decide(p, Action{Interaction: InteractionSearch, ResourceType: "Observation", InPatientCompartment: true}); err != nil {
			t.Errorf("the granted scope does not search Observations: %v", err)
		}
		if _, err := Decide(p, Action{Interaction: InteractionSearch, ResourceType: "Patient", InPatientCompartment: true}); err == nil {
			t.Error("a scope not asked for was granted")
		}
	})
	t.Run("an ES384 assertion from a key served at a URL gets a token", func(t *testing.T) {
		if _, err := b.Exchange(ctx, tokenForm(ecKey.assertion(t, "ehr-url", clock.Now(), nil), "system/Observation.rs system/Patient.rs")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a rotated key at the URL is fetched again when its kid is new", func(t *testing.T) {
		rotated := newECClientKey(t, "ec-2")
		served.Store(jwks(t, rotated))
		clock.Advance(2 * time.Minute) // past the once-a-minute refetch bound
		before := fetches.Load()
		if _, err := b.Exchange(ctx, tokenForm(rotated.assertion(t, "ehr-url", clock.Now(), nil), "system/Observation.rs")); err != nil {
			t.Fatal(err)
		}
		if fetches.Load() == before {
			t.Error("the JWK Set was not fetched again")
		}
	})
	t.Run("an expired assertion is refused", func(t *testing.T) {
		a := rsaKey.assertion(t, "ehr-inline", clock.Now(), func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(clock.Now().Add(-2 * time.Minute))
		})
		refused(t, tokenForm(a, "system/Observation.rs"), "invalid_client", "expired")
	})
	t.Run("an assertion living longer than five minutes is refused", func(t *testing.T) {
		a := rsaKey.assertion(t, "ehr-inline", clock.Now(), func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(clock.Now().Add(time.Hour))
		})
		refused(t, tokenForm(a, "system/Observation.rs"), "invalid_client", "five minutes")
	})
	t.Run("an assertion signed by another key with the same kid is refused", func(t *testing.T) {
		refused(t, tokenForm(stranger.assertion(t, "ehr-inline", clock.Now(), nil), "system/Observation.rs"), "invalid_client", "signature")
	})
	t.Run("a replayed assertion is refused", func(t *testing.T) {
		a := rsaKey.assertion(t, "ehr-inline", clock.Now(), nil)
		if _, err := b.Exchange(ctx, tokenForm(a, "system/Observation.rs")); err != nil {
			t.Fatal(err)
		}
		refused(t, tokenForm(a, "system/Observation.rs"), "invalid_client", "jti")
	})
	t.Run("an unregistered client is refused", func(t *testing.T) {
		refused(t, tokenForm(rsaKey.assertion(t, "somebody", clock.Now(), nil), "system/Observation.rs"), "invalid_client", "not registered")
	})
	t.Run("a scope the client is not registered for is refused", func(t *testing.T) {
		refused(t, tokenForm(rsaKey.assertion(t, "ehr-inline", clock.Now(), nil), "system/Device.rs"), "invalid_scope", "system/Observation.rs")
		refused(t, tokenForm(rsaKey.assertion(t, "ehr-inline", clock.Now(), nil), "system/Observation.cruds"), "invalid_scope", "")
		refused(t, tokenForm(rsaKey.assertion(t, "ehr-inline", clock.Now(), nil), "user/Observation.rs"), "invalid_scope", "")
	})
	t.Run("an assertion for another audience is refused", func(t *testing.T) {
		a := rsaKey.assertion(t, "ehr-inline", clock.Now(), func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"https://elsewhere/token"} })
		refused(t, tokenForm(a, "system/Observation.rs"), "invalid_client", "aud")
	})
	t.Run("an HS256 assertion is refused", func(t *testing.T) {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Issuer: "ehr-inline", Subject: "ehr-inline",
			Audience: jwt.ClaimStrings{testTokenURL}, ExpiresAt: jwt.NewNumericDate(clock.Now().Add(time.Minute)), ID: "x",
		})
		a, err := tok.SignedString([]byte("guessable"))
		if err != nil {
			t.Fatal(err)
		}
		refused(t, tokenForm(a, "system/Observation.rs"), "invalid_client", "")
	})
	t.Run("malformed requests say what is wrong", func(t *testing.T) {
		a := rsaKey.assertion(t, "ehr-inline", clock.Now(), nil)
		f := tokenForm(a, "system/Observation.rs")
		f.Set("grant_type", "authorization_code")
		refused(t, f, "unsupported_grant_type", "client_credentials")
		f = tokenForm(a, "system/Observation.rs")
		f.Del("client_assertion_type")
		refused(t, f, "invalid_request", "client_assertion_type")
		refused(t, tokenForm(a, ""), "invalid_request", "scope")
		refused(t, tokenForm("not.a.jwt", "system/Observation.rs"), "invalid_client", "JWT")
	})
	t.Run("a disabled client is refused", func(t *testing.T) {
		if err := clients.Disable(ctx, "ehr-inline"); err != nil {
			t.Fatal(err)
		}
		refused(t, tokenForm(rsaKey.assertion(t, "ehr-inline", clock.Now(), nil), "system/Observation.rs"), "invalid_client", "not registered")
	})
}

func TestClientsAreValidatedBeforeTheyAreRegistered(t *testing.T) {
	clients := NewClients(isolated(t))
	k := newRSAClientKey(t, "k")
	for name, c := range map[string]*Client{
		"a user scope":       {ID: "a", Scopes: []string{"user/*.rs"}, JWKS: jwks(t, k)},
		"no scope":           {ID: "a", JWKS: jwks(t, k)},
		"no keys":            {ID: "a", Scopes: []string{"system/*.rs"}},
		"keys twice":         {ID: "a", Scopes: []string{"system/*.rs"}, JWKS: jwks(t, k), JWKSURL: "https://x/jwks"},
		"an empty key set":   {ID: "a", Scopes: []string{"system/*.rs"}, JWKS: json.RawMessage(`{"keys":[]}`)},
		"a ftp url":          {ID: "a", Scopes: []string{"system/*.rs"}, JWKSURL: "ftp://x/jwks"},
		"an id with a space": {ID: "a b", Scopes: []string{"system/*.rs"}, JWKS: jwks(t, k)},
	} {
		t.Run("a client with "+name+" is refused", func(t *testing.T) {
			if err := clients.Add(context.Background(), c); err == nil {
				t.Error("registered")
			}
		})
	}
}
