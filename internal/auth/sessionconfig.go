package auth

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Defaults of SessionConfig.
const (
	// DefaultIdleTimeout ends a session nobody used for this long
	// (OWASP Session Management: 15–30 minutes for sensitive data).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultSessionMaxAge ends every session this long after sign-in: a
	// working shift.
	DefaultSessionMaxAge = 12 * time.Hour
	// DefaultTouchEvery is how stale a session's last_seen may get before a
	// request writes it: the idle timeout slides with at most one write a
	// minute per session.
	DefaultTouchEvery  = time.Minute
	DefaultMaxFailures = 5
	DefaultLockoutBase = time.Minute
	DefaultLockoutMax  = time.Hour
	DefaultTOTPIssuer  = "Vidda"
)

// SessionConfig configures sign-in, lockout and sessions. Zero values mean
// the defaults.
type SessionConfig struct {
	// IdleTimeout ends a session unused for this long
	// (VIDDA_SESSION_IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, used or not
	// (VIDDA_SESSION_MAX_AGE).
	MaxAge time.Duration
	// TouchEvery is how often, at most, a request writes a session's last
	// use; the idle timeout is accurate to this.
	TouchEvery time.Duration
	// MaxFailures is how many sign-in failures in a row lock an account
	// (VIDDA_LOGIN_MAX_FAILURES).
	MaxFailures int
	// LockoutBase is the first lockout; each further failure doubles it
	// (VIDDA_LOGIN_LOCKOUT).
	LockoutBase time.Duration
	// LockoutMax caps a lockout (VIDDA_LOGIN_LOCKOUT_MAX).
	LockoutMax time.Duration
	// TOTPIssuer names vidda in authenticator apps.
	TOTPIssuer string
	// HashConcurrency bounds password hashes computed at once (19 MiB
	// each); 0 means 2·GOMAXPROCS.
	HashConcurrency int
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Validate reports a configuration that cannot work, naming the variable.
func (c SessionConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		env string
		d   time.Duration
	}{
		{"VIDDA_SESSION_IDLE_TIMEOUT", c.IdleTimeout},
		{"VIDDA_SESSION_MAX_AGE", c.MaxAge},
		{"VIDDA_LOGIN_LOCKOUT", c.LockoutBase},
		{"VIDDA_LOGIN_LOCKOUT_MAX", c.LockoutMax},
	} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative", f.env, f.d))
		}
	}
	if c.MaxFailures < 0 {
		errs = append(errs, fmt.Errorf("VIDDA_LOGIN_MAX_FAILURES: %d is negative", c.MaxFailures))
	}
	d := c.withDefaults()
	if d.IdleTimeout > d.MaxAge {
		errs = append(errs, errors.New("VIDDA_SESSION_IDLE_TIMEOUT: longer than VIDDA_SESSION_MAX_AGE"))
	}
	if d.TouchEvery >= d.IdleTimeout {
		errs = append(errs, errors.New("auth: TouchEvery must be shorter than the idle timeout"))
	}
	if d.LockoutBase > d.LockoutMax {
		errs = append(errs, errors.New("VIDDA_LOGIN_LOCKOUT: longer than VIDDA_LOGIN_LOCKOUT_MAX"))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero (or negative) fields.
func (c SessionConfig) withDefaults() SessionConfig {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultSessionMaxAge
	}
	if c.TouchEvery <= 0 {
		c.TouchEvery = min(DefaultTouchEvery, c.IdleTimeout/2)
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.LockoutBase <= 0 {
		c.LockoutBase = DefaultLockoutBase
	}
	if c.LockoutMax <= 0 {
		c.LockoutMax = max(DefaultLockoutMax, c.LockoutBase)
	}
	if c.TOTPIssuer == "" {
		c.TOTPIssuer = DefaultTOTPIssuer
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
