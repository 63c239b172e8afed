package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func FuzzVerify(f *testing.F) {
	ctx := context.Background()
	s := NewKeyStore(dbtest.Pool(f), KeyConfig{}, discardLog())
	good, err := s.Mint(ctx, TokenRequest{Subject: "u", Role: RolePatient, PatientID: "p1"})
	if err != nil {
		f.Fatal(err)
	}
	sg := current(f, s)
	for _, seed := range []string{
		good, "", "a.b.c", "..", good + "x", strings.Replace(good, ".", "..", 1),
		tamper(f, good, func(m map[string]any) { m["exp"] = 1e300 }),
		tamper(f, good, func(m map[string]any) { m["aud"] = []any{1, nil} }),
		tamper(f, good, func(m map[string]any) { m["scope"] = map[string]any{} }),
		forge(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": sg.kid, "typ": tokenType}, validClaims(s.cfg, s.cfg.Now())),
		forge(f, jwt.SigningMethodHS256, []byte("k"), map[string]any{"kid": 7, "typ": []int{1}}, validClaims(s.cfg, s.cfg.Now())),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.Verify(ctx, tok)
		if err != nil {
			if p != nil {
				t.Fatal("a principal with an error")
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			if len(tok) >= 8 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error %q quotes the token", err)
			}
			return
		}
		if p.Subject == "" || (p.Role == RolePatient && p.PatientID == "") {
			t.Fatalf("accepted an incomplete principal %+v", p)
		}
	})
}

func FuzzParseScope(f *testing.F) {
	for _, seed := range []string{
		"patient/Observation.read", "user/*.*", "system/*.write", "patient/Observation.rs",
		"user/*.cruds", "patient/Observation.sr", "patient/*.rs?category=x", "/.", "user/*.", "system/A.c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("error %v does not wrap ErrInvalidScope", err)
			}
			return
		}
		if sc.Perms == 0 || sc.Perms&^PermAll != 0 {
			t.Fatalf("%q: permissions %b", s, sc.Perms)
		}
		if sc.ResourceType != "*" && !isResourceType(sc.ResourceType) {
			t.Fatalf("%q: resource type %q", s, sc.ResourceType)
		}
		again, err := ParseScope(sc.String())
		if err != nil || again != sc {
			t.Fatalf("%q: String() %q parses to %+v, %v", s, sc.String(), again, err)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer  a.b.c ", "Basic x", "", "Bearer =", "Bearer a=b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := BearerToken(h)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n\"") {
			t.Fatalf("BearerToken(%q) = %q", h, tok)
		}
	})
}
