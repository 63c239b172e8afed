package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrSignInFailed is every failed sign-in, whatever the reason: the client
// is told no more, so it cannot learn which usernames exist. The reason is
// in the *SignInError that wraps it, for the audit trail only.
var ErrSignInFailed = errors.New("sign-in failed")

// SignInOutcome says how a sign-in attempt (or a sign-out) ended.
type SignInOutcome string

// The outcomes. Only SignInSucceeded and SignedOut are successes; a client
// hears the same answer for every failure.
const (
	SignInSucceeded     SignInOutcome = "succeeded"
	SignInUnknownUser   SignInOutcome = "unknown-user"
	SignInWrongPassword SignInOutcome = "wrong-password"
	// SignInWrongCode is a missing, wrong or replayed TOTP code after the
	// right password.
	SignInWrongCode SignInOutcome = "wrong-code"
	// SignInLocked is any attempt while the account is locked after
	// failures, the right password included.
	SignInLocked   SignInOutcome = "locked"
	SignInDisabled SignInOutcome = "disabled"
	// SignInRateLimited is an attempt refused by the per-address limit
	// before credentials were checked (set by the HTTP edge).
	SignInRateLimited SignInOutcome = "rate-limited"
	// SignInBadRequest is an attempt refused before credentials were
	// checked: a missing or wrong login-form CSRF token, say (set by the
	// HTTP edge).
	SignInBadRequest SignInOutcome = "bad-request"
	// SignedOut is a session ended by its user.
	SignedOut SignInOutcome = "signed-out"
)

// SignInError carries why a sign-in failed. It wraps ErrSignInFailed.
// Never show Outcome to the client.
type SignInError struct {
	Outcome SignInOutcome
	// User is who tried, when the username exists.
	User *User
}

func (e *SignInError) Error() string { return "sign-in failed: " + string(e.Outcome) }

// Unwrap makes errors.Is(err, ErrSignInFailed) hold.
func (e *SignInError) Unwrap() error { return ErrSignInFailed }

// SignInEvent is one sign-in attempt or sign-out, as the HTTP edge hands
// it to an audit recorder.
type SignInEvent struct {
	Outcome SignInOutcome
	// Username is what was typed, normalised and at most 64 bytes; it may
	// name no user.
	Username string
	// UserID, Role, PatientID and PractitionerID describe the user when
	// the username exists.
	UserID         string
	Role           Role
	PatientID      string
	PractitionerID string
	// SessionID is the session opened or ended (never its token).
	SessionID string
	// RemoteAddr, UserAgent and RequestID describe the request.
	RemoteAddr string
	UserAgent  string
	RequestID  string
	// At is when it happened.
	At time.Time
}

// Credentials are what a person types to sign in.
type Credentials struct {
	Username string
	Password string
	// Code is the TOTP code; ignored for users without a second factor.
	Code string
}

// authenticate checks c and returns the user. Every failure is a
// *SignInError. Its cost does not depend on whether the username exists:
// an unknown user's password is checked against a dummy hash.
//
// Lockout: each failure counts; once MaxFailures failures follow one
// another the account is locked for LockoutBase, doubling with each
// further failure up to LockoutMax. While locked, attempts are refused
// (the right password too) and do not count. Success clears the count.
func (s *Users) authenticate(ctx context.Context, c Credentials) (*User, error) {
	now := s.cfg.Now()
	name := strings.ToLower(strings.TrimSpace(c.Username))
	var (
		hash, secret string
		lastStep     int64
	)
	u, err := scanUser(s.pool.QueryRow(ctx, `
		SELECT `+userColumns+`, password_hash, coalesce(totp_secret, ''), totp_last_step
		FROM auth_user WHERE username = $1`, truncate(name)), &hash, &secret, &lastStep)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	// Hash in every case, before any decision, so that each answer
	// takes the same time.
	ok, herr := s.hash.verify(ctx, c.Password, hash)
	if herr != nil && !errors.Is(herr, errMalformedHash) {
		return nil, fmt.Errorf("sign in: %w", herr)
	}
	fail := func(o SignInOutcome, count bool) (*User, error) {
		if count {
			if err := s.recordFailure(ctx, u.ID, now); err != nil {
				return nil, err
			}
		}
		return nil, &SignInError{Outcome: o, User: u}
	}
	switch {
	case u == nil:
		return nil, &SignInError{Outcome: SignInUnknownUser}
	case u.Disabled:
		return fail(SignInDisabled, false)
	case now.Before(u.LockedUntil):
		return fail(SignInLocked, false)
	case !ok:
		return fail(SignInWrongPassword, true)
	}
	if secret == "" {
		if _, err := s.pool.Exec(ctx, `
			UPDATE auth_user SET failed_attempts = 0, locked_until = NULL
			WHERE id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)`, u.ID); err != nil {
			return nil, fmt.Errorf("sign in: %w", err)
		}
		return u, nil
	}
	step, ok := checkTOTP(secret, c.Code, now, lastStep)
	if !ok {
		return fail(SignInWrongCode, true)
	}
	// Claim the step: of two requests racing with one code, one wins.
	tag, err := s.pool.Exec(ctx, `
		UPDATE auth_user SET totp_last_step = $2, failed_attempts = 0, locked_until = NULL
		WHERE id = $1 AND totp_last_step < $2`, u.ID, step)
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fail(SignInWrongCode, true)
	}
	return u, nil
}

// maxLockoutDoublings keeps 2^n finite in SQL; LockoutMax caps the result
// long before.
const maxLockoutDoublings = 30

// recordFailure counts a failure and, from the MaxFailures-th on, locks
// the account for LockoutBase·2^(failures−MaxFailures), at most
// LockoutMax. One statement, so concurrent failures all count.
func (s *Users) recordFailure(ctx context.Context, id string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE auth_user SET
		    failed_attempts = least(failed_attempts + 1, 1000000),
		    locked_until = CASE WHEN failed_attempts + 1 >= $2
		        THEN $3::timestamptz + make_interval(secs => least(
		            $4::float8 * power(2, least(failed_attempts + 1 - $2, $6)), $5::float8))
		        ELSE locked_until END
		WHERE id = $1`,
		id, s.cfg.MaxFailures, now, s.cfg.LockoutBase.Seconds(), s.cfg.LockoutMax.Seconds(), maxLockoutDoublings)
	if err != nil {
		return fmt.Errorf("sign in: record failure: %w", err)
	}
	return nil
}
