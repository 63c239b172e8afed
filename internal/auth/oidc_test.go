package auth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vidda/vidda/internal/auth/oidctest"
)

// startOIDC runs a verifier for iss until the test ends and waits until it
// has the provider's keys.
func startOIDC(t *testing.T, iss *oidctest.Issuer, cfg OIDCConfig) *OIDCVerifier {
	t.Helper()
	cfg.Issuer = iss.URL()
	if cfg.Audience == "" {
		cfg.Audience = oidctest.Audience
	}
	cfg.HTTPClient = iss.Client()
	v, err := NewOIDCVerifier(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-v.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the verifier never loaded the provider's keys")
	}
	return v
}

func TestOIDCTokensBecomeTheSamePrincipalsAsViddasOwn(t *testing.T) {
	iss := oidctest.New(t)
	iss.AddKey(t, "rs384", jwt.SigningMethodRS384)
	iss.AddKey(t, "es384", jwt.SigningMethodES384)
	iss.AddKey(t, "ed", jwt.SigningMethodEdDSA)
	iss.Publish("rs384", "es384", "ed")
	v := startOIDC(t, iss, OIDCConfig{})
	user := func(s string) Scope { sc, _ := ParseScope(s); return sc }
	tests := []struct {
		name   string
		kid    string
		claims map[string]any
		want   Principal
	}{
		{
			"a nurse signed with RS256 gets the role's default scopes",
			oidctest.KeyRSA,
			map[string]any{"vidda_role": "nurse", "practitioner": "prac-1", "azp": "dashboard"},
			Principal{Subject: "idp-user-1", Role: RoleNurse, Scopes: []Scope{user("user/*.*")}, PractitionerID: "prac-1", ClientID: "dashboard", TokenID: "jti-1"},
		},
		{
			"a patient signed with ES256, id given as a reference",
			oidctest.KeyEC,
			map[string]any{"vidda_role": "patient", "patient": "Patient/pat-7"},
			Principal{Subject: "idp-user-1", Role: RolePatient, Scopes: []Scope{user("patient/*.read")}, PatientID: "pat-7", TokenID: "jti-1"},
		},
		{
			"a system client with RS384 and its own SMART scopes beside OpenID ones",
			"rs384",
			map[string]any{"vidda_role": "system", "scope": "openid profile system/Observation.rs", "client_id": "ehr"},
			Principal{Subject: "idp-user-1", Role: RoleSystem, Scopes: []Scope{user("system/Observation.rs")}, ClientID: "ehr", TokenID: "jti-1"},
		},
		{
			"a clinician with ES384 and scopes as an array",
			"es384",
			map[string]any{"vidda_role": "clinician", "practitioner": "Practitioner/doc-2", "scope": []any{"openid", "user/Patient.rs"}},
			Principal{Subject: "idp-user-1", Role: RoleClinician, Scopes: []Scope{user("user/Patient.rs")}, PractitionerID: "doc-2", TokenID: "jti-1"},
		},
		{
			"an admin with EdDSA and only OpenID scopes gets the defaults",
			"ed",
			map[string]any{"vidda_role": "admin", "scope": "openid email"},
			Principal{Subject: "idp-user-1", Role: RoleAdmin, Scopes: []Scope{user("user/*.*")}, TokenID: "jti-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), iss.Sign(t, tt.kid, tt.claims))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Issuer = iss.URL()
			if diff := cmp.Diff(tt.want, *p, cmpopts.IgnoreFields(Principal{}, "ExpiresAt")); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			if time.Until(p.ExpiresAt) < 4*time.Minute {
				t.Errorf("ExpiresAt = %v, want the token's exp", p.ExpiresAt)
			}
		})
	}
}

func TestOIDCRejects(t *testing.T) {
	iss := oidctest.New(t)
	iss.AddEncryptionKey(t, "enc")
	iss.Publish("enc")
	v := startOIDC(t, iss, OIDCConfig{})
	nurse := map[string]any{"vidda_role": "nurse", "practitioner": "prac-1"}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, val := range nurse {
			out[k] = val
		}
		for k, val := range extra {
			out[k] = val
		}
		return out
	}
	now := time.Now()
	pubDER, err := x509.MarshalPKIXPublicKey(iss.Public(t, oidctest.KeyRSA).(*rsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	forge := func(method jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{
			"iss": iss.URL(), "aud": oidctest.Audience, "sub": "x", "exp": now.Add(time.Minute).Unix(),
			"vidda_role": "admin",
		})
		tok.Header["kid"] = oidctest.KeyRSA
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"a token for another audience", iss.Token(t, with(map[string]any{"aud": "someone-else"})), "wrong audience"},
		{"a token of another issuer", iss.Token(t, with(map[string]any{"iss": "https://evil.example"})), "wrong issuer"},
		{"an expired token", iss.Token(t, with(map[string]any{"exp": now.Add(-2 * Leeway).Unix()})), "token expired"},
		{"a token not valid yet", iss.Token(t, with(map[string]any{"nbf": now.Add(2 * Leeway).Unix()})), "not valid yet"},
		{"a token without exp", iss.Token(t, with(map[string]any{"exp": nil})), "missing required claim"},
		{"alg none", forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), "invalid signature"},
		{"HS256 keyed with the provider's public key", forge(jwt.SigningMethodHS256, pubDER), "invalid signature"},
		{"a key the provider never published", func() string {
			iss.AddKey(t, "secret-kid", jwt.SigningMethodRS256)
			return iss.Sign(t, "secret-kid", nurse)
		}(), "unknown signing key"},
		{"a key published for encryption", iss.Sign(t, "enc", nurse), "invalid signature"},
		{"no role claim", iss.Token(t, map[string]any{"practitioner": "prac-1"}), `"vidda_role" claim names no vidda role`},
		{"a role vidda does not have", iss.Token(t, with(map[string]any{"vidda_role": "janitor"})), "names no vidda role"},
		{"a role claim that is a number", iss.Token(t, with(map[string]any{"vidda_role": 3})), "must be a string or an array"},
		{"two vidda roles", iss.Token(t, with(map[string]any{"vidda_role": []any{"nurse", "admin"}})), "more than one vidda role"},
		{"a patient without the patient claim", iss.Token(t, map[string]any{"vidda_role": "patient"}), `a patient token needs the "patient" claim`},
		{"a nurse without the practitioner claim", iss.Token(t, map[string]any{"vidda_role": "nurse"}), `a nurse token needs the "practitioner" claim`},
		{"a clinician without the practitioner claim", iss.Token(t, map[string]any{"vidda_role": "clinician"}), `a clinician token needs the "practitioner" claim`},
		{"a patient id that is not a FHIR id", iss.Token(t, map[string]any{"vidda_role": "patient", "patient": "a/b c"}), "not a FHIR Patient id"},
		{"a granular scope vidda cannot honour", iss.Token(t, with(map[string]any{"scope": "user/Observation.rs?category=laboratory"})), "invalid scope"},
		{"no subject", iss.Token(t, with(map[string]any{"sub": nil})), "missing subject"},
		{"not a JWT", "not-a-token", "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrUnauthenticated saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Error("the error quotes the token")
			}
		})
	}
}

func TestOIDCRoleMapping(t *testing.T) {
	iss := oidctest.New(t)
	roleMap, err := ParseRoleMap(" idp-nurse = nurse, idp-doc=clinician,idp-ops=admin ")
	if err != nil {
		t.Fatal(err)
	}
	mapped := startOIDC(t, iss, OIDCConfig{RoleClaim: "groups", RoleMap: roleMap})
	nested := startOIDC(t, iss, OIDCConfig{RoleClaim: "realm_access.roles", RoleMap: roleMap})
	namespaced := startOIDC(t, iss, OIDCConfig{RoleClaim: "https://vidda.example/role"})
	tests := []struct {
		name   string
		v      *OIDCVerifier
		claims map[string]any
		want   Role // "" = refused
	}{
		{"a mapped value in a string claim", mapped, map[string]any{"groups": "idp-ops"}, RoleAdmin},
		{"a mapped value among unmapped ones in an array", mapped, map[string]any{"groups": []any{"offline_access", "idp-doc"}, "practitioner": "d1"}, RoleClinician},
		{"two values mapping to one role", mapped, map[string]any{"groups": []any{"idp-nurse", "idp-nurse"}, "practitioner": "n1"}, RoleNurse},
		{"a vidda role name the map does not list", mapped, map[string]any{"groups": "admin"}, ""},
		{"values mapping to two roles", mapped, map[string]any{"groups": []any{"idp-nurse", "idp-doc"}, "practitioner": "n1"}, ""},
		{"a nested claim path", nested, map[string]any{"realm_access": map[string]any{"roles": []any{"uma_authorization", "idp-ops"}}}, RoleAdmin},
		{"a nested path that is missing", nested, map[string]any{"realm_access": "x"}, ""},
		{"a namespaced claim with dots in its name", namespaced, map[string]any{"https://vidda.example/role": "system"}, RoleSystem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.v.Verify(context.Background(), iss.Token(t, tt.claims))
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("accepted as %s", p.Role)
			case tt.want == "" && !errors.Is(err, ErrUnauthenticated):
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			case tt.want != "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && p.Role != tt.want:
				t.Errorf("role = %s, want %s", p.Role, tt.want)
			}
		})
	}
}

func TestParseRoleMapRefusesWhatIsNotAMapping(t *testing.T) {
	for _, s := range []string{"idp-nurse", "=nurse", "idp-x=janitor", "a=nurse,a=admin"} {
		if m, err := ParseRoleMap(s); err == nil {
			t.Errorf("ParseRoleMap(%q) = %v, want an error", s, m)
		}
	}
	if m, err := ParseRoleMap(""); err != nil || len(m) != 0 {
		t.Errorf(`ParseRoleMap("") = %v, %v`, m, err)
	}
}

// TestOIDCPicksUpARotatedKey: a token signed with a key the provider has
// not published yet is refused; once the provider publishes it, the next
// token with it makes the verifier fetch the JWKS again and is accepted.
// Unknown kids refetch at most once per UnknownKIDRefresh.
func TestOIDCPicksUpARotatedKey(t *testing.T) {
	iss := oidctest.New(t)
	// Long enough that fifty refusals on a loaded machine fit in it many
	// times over, had they not waited: waiting would take a whole interval.
	const every = 2 * time.Second
	v := startOIDC(t, iss, OIDCConfig{UnknownKIDRefresh: every})
	claims := map[string]any{"vidda_role": "admin"}
	iss.AddKey(t, "rsa-2", jwt.SigningMethodRS256)
	fetches := iss.JWKSFetches()
	start := time.Now()
	if _, err := v.Verify(context.Background(), iss.Sign(t, "rsa-2", claims)); err == nil || !strings.Contains(err.Error(), "unknown signing key") {
		t.Fatalf("a token signed with an unpublished key: err = %v", err)
	}
	// A flood of forged kids costs the provider at most one fetch per
	// interval, and is refused at once rather than queued.
	flood := iss.Sign(t, "rsa-2", map[string]any{"vidda_role": "admin", "jti": "flood"})
	for range 50 {
		_, _ = v.Verify(context.Background(), flood)
	}
	elapsed := time.Since(start)
	if allowed, got := 1+int(elapsed/every), iss.JWKSFetches()-fetches; got > allowed {
		t.Errorf("50 unknown kids in %v fetched the JWKS %d times, want at most %d", elapsed, got, allowed)
	}
	if elapsed > every {
		t.Errorf("50 unknown kids took %v: refused tokens waited for the limiter", elapsed)
	}
	time.Sleep(every) // the provider rotates a while later

	iss.Publish("rsa-2")
	iss.Withdraw(oidctest.KeyRSA)
	p, err := v.Verify(context.Background(), iss.Sign(t, "rsa-2", map[string]any{"vidda_role": "admin", "jti": "after"}))
	if err != nil {
		t.Fatalf("a token of the rotated-in key: %v", err)
	}
	if p.Role != RoleAdmin {
		t.Errorf("role = %s", p.Role)
	}
	// The refresh replaced the set: the withdrawn key no longer verifies
	// new tokens.
	if _, err := v.Verify(context.Background(), iss.Sign(t, oidctest.KeyRSA, map[string]any{"vidda_role": "admin", "jti": "old"})); err == nil {
		t.Error("a token of the withdrawn key was accepted after the refresh")
	}
}

func TestOIDCBeforeDiscoveryIsUnavailable(t *testing.T) {
	iss := oidctest.New(t)
	iss.ClaimIssuer("https://someone-else.example")
	v, err := NewOIDCVerifier(OIDCConfig{Issuer: iss.URL(), Audience: oidctest.Audience, HTTPClient: iss.Client()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// The discovery document names another issuer: never ready.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-v.Ready():
		t.Fatal("ready although the discovery document names another issuer")
	default:
	}
	_, err = v.Verify(context.Background(), iss.Token(t, map[string]any{"vidda_role": "admin"}))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  OIDCConfig
		want string // "" = valid
	}{
		{"off", OIDCConfig{}, ""},
		{"an https issuer with an audience", OIDCConfig{Issuer: "https://idp.example/realms/vidda", Audience: "vidda"}, ""},
		{"http on loopback for development", OIDCConfig{Issuer: "http://127.0.0.1:8180", Audience: "vidda"}, ""},
		{"no audience", OIDCConfig{Issuer: "https://idp.example"}, "VIDDA_OIDC_AUDIENCE"},
		{"plain http to another host", OIDCConfig{Issuer: "http://idp.example", Audience: "a"}, "VIDDA_OIDC_ISSUER"},
		{"not a URL", OIDCConfig{Issuer: "idp", Audience: "a"}, "VIDDA_OIDC_ISSUER"},
		{"a mapping to no vidda role", OIDCConfig{Issuer: "https://idp.example", Audience: "a", RoleMap: map[string]Role{"x": "janitor"}}, "VIDDA_OIDC_ROLE_MAP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// ownVerifier stands in for the KeyStore in routing tests.
type ownVerifier struct{ calls int }

func (o *ownVerifier) Verify(context.Context, string) (*Principal, error) {
	o.calls++
	return &Principal{Subject: "own"}, nil
}

func TestIssuerRouterSendsEachTokenToItsIssuersVerifier(t *testing.T) {
	iss := oidctest.New(t)
	v := startOIDC(t, iss, OIDCConfig{})
	own := &ownVerifier{}
	r, err := NewIssuerRouter(own, map[string]TokenVerifier{iss.URL(): v})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Verify(context.Background(), iss.Token(t, map[string]any{"vidda_role": "admin"}))
	if err != nil || p.Issuer != iss.URL() || own.calls != 0 {
		t.Fatalf("provider token: %+v %v (own verifier called %d times)", p, err, own.calls)
	}
	for _, tok := range []string{
		iss.Token(t, map[string]any{"iss": DefaultIssuer, "vidda_role": "admin"}),
		iss.Token(t, map[string]any{"iss": 42}),
		"garbage", "a.%%%.c", "",
	} {
		own.calls = 0
		if p, err := r.Verify(context.Background(), tok); err != nil || p.Subject != "own" || own.calls != 1 {
			t.Errorf("token %q went elsewhere: %+v %v", tok, p, err)
		}
	}
	if _, err := NewIssuerRouter(own, map[string]TokenVerifier{DefaultIssuer: v}); err == nil {
		t.Error("an external verifier for vidda's own issuer was accepted")
	}
}
