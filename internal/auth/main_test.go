package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testClock is a settable clock shared by the stores of one test, standing
// in for the wall clocks of several processes.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *testClock { return &testClock{now: time.Now().Truncate(time.Second)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is short-lived enough for tests to walk through a rotation.
func testConfig(clock *testClock) KeyConfig {
	return KeyConfig{RotateAfter: 48 * time.Hour, MaxTokenTTL: 24 * time.Hour, Now: clock.Now}
}

// newStore returns a store with a current key on pool.
func newStore(tb testing.TB, pool *pgxpool.Pool, cfg KeyConfig) *KeyStore {
	tb.Helper()
	s := NewKeyStore(pool, cfg, discardLog())
	if err := s.EnsureCurrent(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

// isolated gives a test its own database, so that it can count keys.
func isolated(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return dbtest.PoolFor(tb, dbtest.NewDatabase(tb))
}

func mint(tb testing.TB, s *KeyStore, req TokenRequest) string {
	tb.Helper()
	tok, err := s.Mint(context.Background(), req)
	if err != nil {
		tb.Fatalf("mint: %v", err)
	}
	return tok
}

func nurseRequest() TokenRequest {
	return TokenRequest{Subject: "user-nurse", Role: RoleNurse, PractitionerID: "pr1"}
}

// validClaims are claims the store with cfg would accept at now.
func validClaims(cfg KeyConfig, now time.Time) claims {
	cfg = cfg.withDefaults()
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    cfg.Issuer,
			Subject:   "forger",
			Audience:  jwt.ClaimStrings{cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "jti",
		},
		Role:  string(RoleAdmin),
		Scope: "user/*.*",
	}
}

// forge signs c with method and key under the given header fields.
func forge(tb testing.TB, method jwt.SigningMethod, key any, header map[string]any, c claims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("forge: %v", err)
	}
	return s
}

// tamper rewrites the payload of a signed token, keeping header and
// signature.
func tamper(tb testing.TB, tok string, edit func(map[string]any)) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	edit(m)
	raw, err = json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// current returns the store's signing key, for forging tokens with it.
func current(tb testing.TB, s *KeyStore) *signer {
	tb.Helper()
	ks := s.keys.Load()
	if ks == nil || ks.signer == nil {
		tb.Fatal("store has no current key")
	}
	return ks.signer
}
