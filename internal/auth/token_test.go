package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	clock := newClock()
	s := newStore(t, dbtest.Pool(t), testConfig(clock))
	ctx := context.Background()
	tests := []struct {
		name string
		req  TokenRequest
		want Principal
	}{
		{
			"a patient gets their own compartment's read scope",
			TokenRequest{Subject: "u-pat", Role: RolePatient, PatientID: "p1"},
			Principal{
				Subject: "u-pat", Role: RolePatient, PatientID: "p1",
				Scopes: []Scope{{ContextPatient, "*", PermRead | PermSearch}},
			},
		},
		{
			"a nurse gets user scopes and keeps their practitioner",
			TokenRequest{Subject: "u-nurse", Role: RoleNurse, PractitionerID: "pr1"},
			Principal{
				Subject: "u-nurse", Role: RoleNurse, PractitionerID: "pr1",
				Scopes: []Scope{{ContextUser, "*", PermAll}},
			},
		},
		{
			"a clinician gets user scopes",
			TokenRequest{Subject: "u-doc", Role: RoleClinician, PractitionerID: "pr2"},
			Principal{
				Subject: "u-doc", Role: RoleClinician, PractitionerID: "pr2",
				Scopes: []Scope{{ContextUser, "*", PermAll}},
			},
		},
		{
			"an admin gets user scopes",
			TokenRequest{Subject: "u-admin", Role: RoleAdmin},
			Principal{Subject: "u-admin", Role: RoleAdmin, Scopes: []Scope{{ContextUser, "*", PermAll}}},
		},
		{
			"a system client gets system read and keeps its client id",
			TokenRequest{Subject: "ehr", Role: RoleSystem, ClientID: "ehr-client"},
			Principal{
				Subject: "ehr", Role: RoleSystem, ClientID: "ehr-client",
				Scopes: []Scope{{ContextSystem, "*", PermRead | PermSearch}},
			},
		},
		{
			"asked-for scopes replace the defaults",
			TokenRequest{Subject: "ehr", Role: RoleSystem, Scopes: []string{"system/Observation.rs", "system/Patient.read"}},
			Principal{Subject: "ehr", Role: RoleSystem, Scopes: []Scope{
				{ContextSystem, "Observation", PermRead | PermSearch}, {ContextSystem, "Patient", PermRead | PermSearch},
			}},
		},
		{
			"a clinician in a patient launch keeps the patient",
			TokenRequest{Subject: "u-doc", Role: RoleClinician, PatientID: "p3", Scopes: []string{"patient/*.read", "user/Practitioner.read"}},
			Principal{Subject: "u-doc", Role: RoleClinician, PatientID: "p3", Scopes: []Scope{
				{ContextPatient, "*", PermRead | PermSearch}, {ContextUser, "Practitioner", PermRead | PermSearch},
			}},
		},
		{
			"a token lives as long as asked",
			TokenRequest{Subject: "u-admin", Role: RoleAdmin, TTL: 5 * time.Minute},
			Principal{Subject: "u-admin", Role: RoleAdmin, Scopes: []Scope{{ContextUser, "*", PermAll}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mint(t, s, tt.req)
			got, err := s.Verify(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if got.TokenID == "" {
				t.Error("no token id")
			}
			ttl := tt.req.TTL
			if ttl == 0 {
				ttl = time.Hour
			}
			want := tt.want
			want.TokenID, want.ExpiresAt = got.TokenID, clock.Now().Add(ttl)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Fatalf("principal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	s := newStore(t, dbtest.Pool(t), testConfig(newClock()))
	tests := []struct {
		name string
		req  TokenRequest
	}{
		{"a patient token without a patient id", TokenRequest{Subject: "u", Role: RolePatient}},
		{"a token without a subject", TokenRequest{Role: RoleAdmin}},
		{"a token without a role", TokenRequest{Subject: "u"}},
		{"a token with an unknown role", TokenRequest{Subject: "u", Role: "root"}},
		{"a lifetime above the maximum", TokenRequest{Subject: "u", Role: RoleAdmin, TTL: 25 * time.Hour}},
		{"a negative lifetime", TokenRequest{Subject: "u", Role: RoleAdmin, TTL: -time.Second}},
		{"a scope that does not parse", TokenRequest{Subject: "u", Role: RoleAdmin, Scopes: []string{"user/*.everything"}}},
		{"a user scope for a patient", TokenRequest{Subject: "u", Role: RolePatient, PatientID: "p1", Scopes: []string{"user/*.*"}}},
		{"a user scope for a system client", TokenRequest{Subject: "c", Role: RoleSystem, Scopes: []string{"user/*.read"}}},
		{"a system scope for an admin", TokenRequest{Subject: "u", Role: RoleAdmin, Scopes: []string{"system/*.*"}}},
		{"a patient scope without a patient", TokenRequest{Subject: "u", Role: RoleClinician, Scopes: []string{"patient/*.read"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := s.Mint(context.Background(), tt.req)
			if !errors.Is(err, ErrInvalidTokenRequest) {
				t.Fatalf("got %q, %v; want ErrInvalidTokenRequest", tok, err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	cfg := testConfig(clock)
	pool := dbtest.Pool(t)
	s := newStore(t, pool, cfg)
	sg := current(t, s)
	now := clock.Now()
	good := mint(t, s, nurseRequest())

	other := func(edit func(*KeyConfig)) *KeyStore {
		c := cfg
		edit(&c)
		return newStore(t, pool, c)
	}
	past := newClock()
	past.Advance(-3 * time.Hour)
	future := newClock()
	future.Advance(5 * time.Minute)
	pubDER, err := x509.MarshalPKIXPublicKey(sg.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, _ := ed25519.GenerateKey(nil)
	edHeader := map[string]any{"kid": sg.kid, "typ": tokenType}
	with := func(edit func(*claims)) claims {
		c := validClaims(cfg, now)
		edit(&c)
		return c
	}
	if _, err := s.Verify(ctx, forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, validClaims(cfg, now))); err != nil {
		t.Fatalf("the forging helper itself is broken: %v", err)
	}

	tests := []struct {
		name, token, reason string
	}{
		{"an expired token", mint(t, other(func(c *KeyConfig) { c.Now = past.Now }), nurseRequest()), "token expired"},
		{"a token not valid yet", mint(t, other(func(c *KeyConfig) { c.Now = future.Now }), nurseRequest()), "token not valid yet"},
		{"a token from another issuer", mint(t, other(func(c *KeyConfig) { c.Issuer = "evil" }), nurseRequest()), "wrong issuer"},
		{"a token for another audience", mint(t, other(func(c *KeyConfig) { c.Audience = "ehr" }), nurseRequest()), "wrong audience"},
		{
			"an unsigned token (alg none)",
			forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": sg.kid, "typ": tokenType}, validClaims(cfg, now)), "invalid signature",
		},
		{
			"an HS256 token keyed with the raw public key",
			forge(t, jwt.SigningMethodHS256, []byte(sg.priv.Public().(ed25519.PublicKey)), edHeader, validClaims(cfg, now)), "invalid signature",
		},
		{
			"an HS256 token keyed with the DER public key",
			forge(t, jwt.SigningMethodHS256, pubDER, edHeader, validClaims(cfg, now)), "invalid signature",
		},
		{
			"a token with an unknown kid",
			forge(t, jwt.SigningMethodEdDSA, strangerKey, map[string]any{"kid": "unknown", "typ": tokenType}, validClaims(cfg, now)), "unknown signing key",
		},
		{
			"a token signed by a stranger under our kid",
			forge(t, jwt.SigningMethodEdDSA, strangerKey, edHeader, validClaims(cfg, now)), "invalid signature",
		},
		{
			"a token without a kid",
			forge(t, jwt.SigningMethodEdDSA, sg.priv, map[string]any{"typ": tokenType}, validClaims(cfg, now)), "unknown signing key",
		},
		{
			"a JWT that is not an access token",
			forge(t, jwt.SigningMethodEdDSA, sg.priv, map[string]any{"kid": sg.kid, "typ": "JWT"}, validClaims(cfg, now)), "not an access token",
		},
		{
			"a token without a type",
			forge(t, jwt.SigningMethodEdDSA, sg.priv, map[string]any{"kid": sg.kid, "typ": nil}, validClaims(cfg, now)), "not an access token",
		},
		{"a tampered payload", tamper(t, good, func(m map[string]any) { m["role"] = "admin" }), "invalid signature"},
		{"a payload with a swapped patient", tamper(t, mint(t, s, TokenRequest{Subject: "u", Role: RolePatient, PatientID: "p1"}),
			func(m map[string]any) { m["patient"] = "p2" }), "invalid signature"},
		{"a token without exp", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) { c.ExpiresAt = nil })), "missing required claim"},
		{"a token issued in the future", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute))
			c.NotBefore = nil
		})), "token issued in the future"},
		{"a token without a subject", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) { c.Subject = "" })), "missing subject"},
		{"a token with an unknown role", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) { c.Role = "root" })), "invalid role"},
		{"a patient token without a patient", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) {
			c.Role, c.Scope = string(RolePatient), "patient/*.read"
		})), "patient token without patient"},
		{"a token with a bad scope", forge(t, jwt.SigningMethodEdDSA, sg.priv, edHeader, with(func(c *claims) { c.Scope = "user/*.* root" })), "invalid scope"},
		{"garbage", "not-a-token", "malformed token"},
		{"three garbage segments", "a.b.c", "malformed token"},
		{"a token with padding", good + "==", "malformed token"},
		{"an oversized token", strings.Repeat("a", maxTokenLen+1), "malformed token"},
		{"an empty token", "", "missing token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Verify(ctx, tt.token)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("got %+v, %v; want ErrUnauthenticated", p, err)
			}
			if want := "unauthenticated: " + tt.reason; err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestVerifyToleratesClockSkew(t *testing.T) {
	clock := newClock()
	cfg := testConfig(clock)
	s := newStore(t, dbtest.Pool(t), cfg)
	tok := mint(t, s, TokenRequest{Subject: "u", Role: RoleAdmin, TTL: time.Minute})
	tests := []struct {
		name   string
		offset time.Duration
		ok     bool
	}{
		{"a verifier 25 s behind accepts a fresh token", -25 * time.Second, true},
		{"a verifier 35 s behind refuses it", -35 * time.Second, false},
		{"a verifier 25 s past exp accepts it", time.Minute + 25*time.Second, true},
		{"a verifier 35 s past exp refuses it", time.Minute + 35*time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			c.now = clock.Now().Add(tt.offset)
			v := NewKeyStore(dbtest.Pool(t), KeyConfig{RotateAfter: cfg.RotateAfter, MaxTokenTTL: cfg.MaxTokenTTL, Now: c.Now}, discardLog())
			_, err := v.Verify(context.Background(), tok)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name, header, want string
	}{
		{"a plain bearer header", "Bearer abc.def.ghi", "abc.def.ghi"},
		{"a lower-case scheme", "bearer abc.def.ghi", "abc.def.ghi"},
		{"an upper-case scheme", "BEARER abc.def.ghi", "abc.def.ghi"},
		{"surrounding spaces", "  Bearer   abc.def-_~+/=  ", "abc.def-_~+/="},
	}
	for _, tt := range tests {
		t.Run(tt.name+" yields the token", func(t *testing.T) {
			got, err := BearerToken(tt.header)
			if err != nil || got != tt.want {
				t.Fatalf("BearerToken(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
			}
		})
	}
	for _, tt := range []struct{ name, header string }{
		{"an empty header", ""},
		{"a bare scheme", "Bearer"},
		{"a scheme and a space", "Bearer "},
		{"basic auth", "Basic dXNlcjpwYXNz"},
		{"a token without a scheme", "abc.def.ghi"},
		{"two tokens", "Bearer abc def"},
		{"a token with a quote", `Bearer "abc"`},
		{"only padding", "Bearer =="},
		{"a scheme glued to the token", "Bearerabc"},
	} {
		t.Run(tt.name+" is unauthenticated", func(t *testing.T) {
			if got, err := BearerToken(tt.header); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("BearerToken(%q) = %q, %v; want ErrUnauthenticated", tt.header, got, err)
			}
		})
	}
}
