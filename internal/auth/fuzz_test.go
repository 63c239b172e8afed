package auth

import (
	"context"
	"encoding/base64"
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

func FuzzParseSessionToken(f *testing.F) {
	for _, seed := range []string{
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "a", strings.Repeat("A", 44),
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := ParseSessionToken(s)
		if err != nil {
			if raw != nil || !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("ParseSessionToken(%q) = %x, %v", s, raw, err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q quotes the cookie", err)
			}
			return
		}
		// Only the canonical encoding of 32 bytes is accepted, so one
		// session has exactly one cookie value.
		if len(raw) != sessionTokenBytes || base64.RawURLEncoding.EncodeToString(raw) != s {
			t.Fatalf("ParseSessionToken(%q) = %x, which does not encode back", s, raw)
		}
	})
}

func FuzzParsePHC(f *testing.F) {
	for _, seed := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"", "$argon2id$", "$argon2id$v=19$m=1,t=1,p=1$$", "$argon2id$v=19$m=99999999999,t=2,p=1$x$y",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, errMalformedHash) {
				t.Fatalf("error %v does not wrap errMalformedHash", err)
			}
			return
		}
		// What parses is cheap enough to verify and round-trips.
		if h.memory > maxArgonMemoryKiB || h.time > maxArgonTime || h.threads == 0 || h.threads > maxArgonThreads ||
			h.memory < 8*uint32(h.threads) || len(h.salt) < 8 || len(h.tag) < 16 {
			t.Fatalf("parsePHC(%q) accepted %+v", s, h)
		}
		if again := encodePHC(h); again != s {
			t.Fatalf("parsePHC(%q) re-encodes as %q", s, again)
		}
	})
}
