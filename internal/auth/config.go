package auth

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of KeyConfig.
const (
	DefaultIssuer      = "vidda"
	DefaultAudience    = "vidda"
	DefaultRotateAfter = 30 * 24 * time.Hour
	DefaultMaxTokenTTL = 24 * time.Hour
	DefaultTokenTTL    = time.Hour
	DefaultCheckEvery  = time.Hour
)

// Leeway is the clock skew Verify tolerates on exp, nbf and iat.
const Leeway = 30 * time.Second

// KeyConfig configures token signing and verification. Zero values mean the
// defaults.
type KeyConfig struct {
	// Issuer is the iss of minted tokens and the only one accepted.
	Issuer string
	// Audience is the aud of minted tokens and the one required.
	Audience string
	// RotateAfter is how old the current key may get before EnsureCurrent
	// replaces it.
	RotateAfter time.Duration
	// MaxTokenTTL caps a token's lifetime.
	MaxTokenTTL time.Duration
	// DefaultTokenTTL is the lifetime of a token whose request names none;
	// at most MaxTokenTTL.
	DefaultTokenTTL time.Duration
	// CheckEvery is how often Run calls EnsureCurrent, and how long Mint
	// trusts its cached signing key before looking for a newer one.
	CheckEvery time.Duration
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Validate reports a configuration that cannot work.
func (c KeyConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"RotateAfter", c.RotateAfter},
		{"MaxTokenTTL", c.MaxTokenTTL},
		{"DefaultTokenTTL", c.DefaultTokenTTL},
		{"CheckEvery", c.CheckEvery},
	} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("auth: %s is negative", f.name))
		}
	}
	d := c.withDefaults()
	if d.DefaultTokenTTL > d.MaxTokenTTL {
		errs = append(errs, errors.New("auth: DefaultTokenTTL exceeds MaxTokenTTL"))
	}
	if d.CheckEvery >= d.RotateAfter {
		errs = append(errs, errors.New("auth: CheckEvery must be shorter than RotateAfter"))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero (or negative) fields.
func (c KeyConfig) withDefaults() KeyConfig {
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.RotateAfter <= 0 {
		c.RotateAfter = DefaultRotateAfter
	}
	if c.MaxTokenTTL <= 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.DefaultTokenTTL <= 0 {
		c.DefaultTokenTTL = min(DefaultTokenTTL, c.MaxTokenTTL)
	}
	if c.CheckEvery <= 0 {
		c.CheckEvery = min(DefaultCheckEvery, c.RotateAfter/2)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// verifyWindow is how long a retired key still verifies: tokens it signed
// live at most MaxTokenTTL, and a process may keep signing with it until it
// next looks (CheckEvery, well inside RotateAfter).
func (c KeyConfig) verifyWindow() time.Duration { return c.RotateAfter + c.MaxTokenTTL }
