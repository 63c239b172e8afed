package auth

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// BenchmarkVerify measures a full Verify of a cached key's token against
// its floor, the bare Ed25519 signature check over the same bytes.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	s := NewKeyStore(dbtest.Pool(b), KeyConfig{}, discardLog())
	tok, err := s.Mint(ctx, TokenRequest{Subject: "u", Role: RoleClinician, PractitionerID: "pr1"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("ed25519 baseline", func(b *testing.B) {
		sg := current(b, s)
		pub := sg.priv.Public().(ed25519.PublicKey)
		i := strings.LastIndexByte(tok, '.')
		msg := []byte(tok[:i])
		sig := ed25519.Sign(sg.priv, msg)
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad signature")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
