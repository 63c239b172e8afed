package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// keyCounts reports how many keys the database holds and how many are
// current.
func keyCounts(t *testing.T, pool *pgxpool.Pool) (total, current int) {
	t.Helper()
	err := pool.QueryRow(context.Background(),
		`SELECT count(*), count(*) FILTER (WHERE retired_at IS NULL) FROM auth_signing_key`).Scan(&total, &current)
	if err != nil {
		t.Fatal(err)
	}
	return total, current
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	cfg := testConfig(clock)
	pool := isolated(t)
	a := newStore(t, pool, cfg)

	t.Run("a token minted before Rotate still verifies after it", func(t *testing.T) {
		before := mint(t, a, nurseRequest())
		oldKid := current(t, a).kid
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		if current(t, a).kid == oldKid {
			t.Fatal("Rotate kept the same key")
		}
		if _, err := a.Verify(ctx, before); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(ctx, mint(t, a, nurseRequest())); err != nil {
			t.Fatal(err)
		}
		if total, cur := keyCounts(t, pool); total != 2 || cur != 1 {
			t.Fatalf("keys: %d total, %d current; want 2, 1", total, cur)
		}
	})

	t.Run("a retired key loses its private half", func(t *testing.T) {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM auth_signing_key WHERE retired_at IS NOT NULL AND private_key IS NOT NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d retired keys keep their private key", n)
		}
	})

	t.Run("another process verifies tokens signed with a key it has not seen", func(t *testing.T) {
		b := NewKeyStore(pool, cfg, discardLog())
		if _, err := b.Verify(ctx, mint(t, a, nurseRequest())); err != nil {
			t.Fatal(err)
		}
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		tok := mint(t, a, nurseRequest())
		clock.Advance(reloadInterval) // b loaded its keys just now
		loads := b.reloads.Load()
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if got := b.reloads.Load() - loads; got != 1 {
			t.Fatalf("%d reloads for one new kid, want 1", got)
		}
		if _, err := b.Verify(ctx, tok); err != nil || b.reloads.Load()-loads != 1 {
			t.Fatalf("a known kid reloaded again (%v)", err)
		}
	})

	t.Run("another process mints with the newest key once its cache is stale", func(t *testing.T) {
		b := newStore(t, pool, cfg)
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		newest := current(t, a).kid
		clock.Advance(b.cfg.CheckEvery)
		mint(t, b, nurseRequest())
		if got := current(t, b).kid; got != newest {
			t.Fatalf("b signs with %s, want %s", got, newest)
		}
	})
}

func TestUnknownKidReloadsAreRateLimited(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s := newStore(t, dbtest.Pool(t), testConfig(clock))
	_, stranger, _ := ed25519.GenerateKey(nil)
	forged := func(i int) string {
		return forge(t, jwt.SigningMethodEdDSA, stranger, map[string]any{"kid": fmt.Sprint("kid-", i), "typ": tokenType},
			validClaims(s.cfg, clock.Now()))
	}
	clock.Advance(reloadInterval)
	loads := s.reloads.Load()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if _, err := s.Verify(ctx, forged(i)); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("forged token: %v", err)
			}
		})
	}
	wg.Wait()
	if got := s.reloads.Load() - loads; got != 1 {
		t.Fatalf("200 unknown kids in one second caused %d reloads, want 1", got)
	}
	clock.Advance(reloadInterval)
	if _, err := s.Verify(ctx, forged(-1)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal(err)
	}
	if got := s.reloads.Load() - loads; got != 2 {
		t.Fatalf("a second later: %d reloads in all, want 2", got)
	}
}

func TestEnsureCurrent(t *testing.T) {
	ctx := context.Background()

	t.Run("processes starting at once create exactly one key", func(t *testing.T) {
		clock := newClock()
		u := dbtest.NewDatabase(t)
		const processes = 8
		stores := make([]*KeyStore, processes)
		for i := range stores {
			stores[i] = NewKeyStore(dbtest.PoolFor(t, u), testConfig(clock), discardLog())
		}
		ensureAll := func() {
			start := make(chan struct{})
			var wg sync.WaitGroup
			for _, s := range stores {
				for range 2 { // two goroutines per process, too
					wg.Go(func() {
						<-start
						if err := s.EnsureCurrent(ctx); err != nil {
							t.Error(err)
						}
					})
				}
			}
			close(start)
			wg.Wait()
		}
		pool := dbtest.PoolFor(t, u)
		ensureAll()
		if total, cur := keyCounts(t, pool); total != 1 || cur != 1 {
			t.Fatalf("keys: %d total, %d current; want 1, 1", total, cur)
		}
		ensureAll() // the key is young: nothing happens
		if total, cur := keyCounts(t, pool); total != 1 || cur != 1 {
			t.Fatalf("second round: %d total, %d current; want 1, 1", total, cur)
		}
		clock.Advance(48 * time.Hour) // RotateAfter
		ensureAll()
		if total, cur := keyCounts(t, pool); total != 2 || cur != 1 {
			t.Fatalf("after RotateAfter: %d total, %d current; want 2, 1", total, cur)
		}
		kid := current(t, stores[0]).kid
		for i, s := range stores {
			if got := current(t, s).kid; got != kid {
				t.Fatalf("store %d signs with %s, store 0 with %s", i, got, kid)
			}
		}
	})

	t.Run("a retired key verifies through its window, then is refused and deleted", func(t *testing.T) {
		clock := newClock()
		cfg := testConfig(clock) // window: 48 h + 24 h after retirement
		pool := isolated(t)
		s := newStore(t, pool, cfg)
		old := current(t, s)
		if err := s.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
		signedByOld := func() string {
			return forge(t, jwt.SigningMethodEdDSA, old.priv, map[string]any{"kid": old.kid, "typ": tokenType},
				validClaims(cfg, clock.Now()))
		}
		clock.Advance(72*time.Hour - time.Minute)
		if _, err := s.Verify(ctx, signedByOld()); err != nil {
			t.Fatalf("inside the window: %v", err)
		}
		clock.Advance(2 * time.Minute)
		if _, err := s.Verify(ctx, signedByOld()); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("past the window: %v, want ErrUnauthenticated", err)
		}
		if err := s.EnsureCurrent(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM auth_signing_key WHERE kid = $1`, old.kid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("the expired key is still stored")
		}
		if total, cur := keyCounts(t, pool); total != 2 || cur != 1 {
			t.Fatalf("keys: %d total, %d current; want 2 (rotated again past RotateAfter), 1", total, cur)
		}
	})

	t.Run("Mint on an empty database creates the first key", func(t *testing.T) {
		pool := isolated(t)
		s := NewKeyStore(pool, testConfig(newClock()), discardLog())
		if _, err := s.Verify(ctx, mint(t, s, nurseRequest())); err != nil {
			t.Fatal(err)
		}
		if total, cur := keyCounts(t, pool); total != 1 || cur != 1 {
			t.Fatalf("keys: %d total, %d current; want 1, 1", total, cur)
		}
	})
}

func TestRunKeepsAKeyAndStopsWithItsContext(t *testing.T) {
	pool := isolated(t)
	s := NewKeyStore(pool, testConfig(newClock()), discardLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, cur := keyCounts(t, pool); cur == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run made no key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestKeyConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  KeyConfig
		ok   bool
	}{
		{"the zero config is valid", KeyConfig{}, true},
		{"a negative rotation is not", KeyConfig{RotateAfter: -time.Hour}, false},
		{"a default lifetime above the maximum is not", KeyConfig{MaxTokenTTL: time.Hour, DefaultTokenTTL: 2 * time.Hour}, false},
		{"a short maximum lowers the default lifetime", KeyConfig{MaxTokenTTL: 10 * time.Minute}, true},
		{"checking less often than rotating is not", KeyConfig{RotateAfter: time.Hour, CheckEvery: 2 * time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
