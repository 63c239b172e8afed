package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SessionCookie is the name of the cookie that carries a session token.
// The HTTP edge sets it (Secure under https, HttpOnly, SameSite=Lax,
// Path=/) and reads it; its value is what Sessions.SignIn returned.
const SessionCookie = "vidda_session"

// A session token is 256 random bits in unpadded base64url: 43 characters.
// Only its SHA-256 is stored; a random 256-bit secret needs no slow hash.
const (
	sessionTokenBytes = 32
	sessionTokenLen   = 43
)

// Session is a signed-in person's server-side session.
type Session struct {
	// ID names the session in logs, audit and admin views; it is not a
	// credential.
	ID string
	// UserID and Username say whose session it is.
	UserID   string
	Username string
	// Principal is what the session may do: the same role, links and
	// scopes a token minted for this user would carry.
	Principal *Principal
	// CSRFToken must accompany every state-changing request the session
	// cookie authenticates (form field csrf or header X-CSRF-Token).
	CSRFToken string
	// CreatedAt is when the user signed in; LastSeen when the session was
	// last used (to within TouchEvery); ExpiresAt is the absolute end.
	CreatedAt, LastSeen, ExpiresAt time.Time
}

// CheckCSRF reports whether token is this session's CSRF token, comparing
// in constant time. An empty token never matches.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRFToken)) == 1
}

// Sessions opens, checks and ends server-side sessions (table
// auth_session). Checking one is a single indexed query, and nothing is
// cached: a revoked session stops working at once. It is safe for
// concurrent use.
type Sessions struct {
	pool  *pgxpool.Pool
	users *Users
	cfg   SessionConfig
	log   *slog.Logger
}

// NewSessions returns the sessions of users' people, configured as users
// is.
func NewSessions(users *Users, log *slog.Logger) *Sessions {
	return &Sessions{pool: users.pool, users: users, cfg: users.cfg, log: log}
}

// SignIn checks the credentials (see Users.authenticate for lockout) and
// opens a session. It returns the token for the cookie, shown this once
// and never stored. Failures wrap ErrSignInFailed (and are *SignInError);
// other errors are the database's.
func (s *Sessions) SignIn(ctx context.Context, c Credentials) (string, *Session, error) {
	u, err := s.users.authenticate(ctx, c)
	if err != nil {
		return "", nil, err
	}
	return s.Open(ctx, u)
}

// Open starts a session for u without checking credentials: for a
// sign-in another part has verified (OIDC, say). u must be enabled.
func (s *Sessions) Open(ctx context.Context, u *User) (string, *Session, error) {
	raw := make([]byte, sessionTokenBytes)
	csrf := make([]byte, sessionTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("open session: %w", err)
	}
	if _, err := rand.Read(csrf); err != nil {
		return "", nil, fmt.Errorf("open session: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", nil, fmt.Errorf("open session: %w", err)
	}
	now := s.cfg.Now()
	sess := &Session{
		ID: id.String(), UserID: u.ID, Username: u.Username,
		CSRFToken: base64.RawURLEncoding.EncodeToString(csrf),
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(s.cfg.MaxAge),
	}
	if sess.Principal, err = s.principal(sess, u.Role, u.PatientID, u.PractitionerID); err != nil {
		return "", nil, fmt.Errorf("open session: %w", err)
	}
	hash := sha256.Sum256(raw)
	// A user disabled since u was read gets a row here, but VerifySession
	// refuses sessions of disabled users.
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO auth_session (id, token_hash, user_id, csrf_token, created_at, last_seen, expires_at)
		VALUES ($1, $2, $3, $4, $5, $5, $6)`,
		sess.ID, hash[:], u.ID, sess.CSRFToken, now, sess.ExpiresAt); err != nil {
		return "", nil, fmt.Errorf("open session: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), sess, nil
}

// ParseSessionToken checks the form of a session cookie's value and
// returns its bytes: exactly 43 characters of unpadded base64url, 32
// bytes. Errors wrap ErrUnauthenticated and never quote the input.
func ParseSessionToken(s string) ([]byte, error) {
	if len(s) != sessionTokenLen {
		return nil, unauthenticated("malformed session cookie")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	// Strict decoding still skips CR and LF; only the canonical spelling
	// of 32 bytes names a session.
	if err != nil || len(raw) != sessionTokenBytes || base64.RawURLEncoding.EncodeToString(raw) != s {
		return nil, unauthenticated("malformed session cookie")
	}
	return raw, nil
}

// errSessionEnded is the one answer for an unknown, revoked, expired or
// disabled user's session: the client needs no more to sign in again.
func errSessionEnded() error { return unauthenticated("session ended, sign in again") }

// VerifySession returns the live session whose cookie value is token and
// slides its idle timeout. It costs one indexed query, plus one update at
// most every TouchEvery. An unknown, revoked or expired session, or one of
// a disabled user, wraps ErrUnauthenticated.
func (s *Sessions) VerifySession(ctx context.Context, token string) (*Session, error) {
	raw, err := ParseSessionToken(token)
	if err != nil {
		return nil, err
	}
	hash := sha256.Sum256(raw)
	now := s.cfg.Now()
	var (
		sess                        Session
		role, patient, practitioner string
		disabled                    bool
	)
	err = s.pool.QueryRow(ctx, `
		SELECT s.id, s.csrf_token, s.created_at, s.last_seen, s.expires_at,
		       u.id, u.username, u.role, coalesce(u.patient_id, ''), coalesce(u.practitioner_id, ''), u.disabled
		FROM auth_session s JOIN auth_user u ON u.id = s.user_id
		WHERE s.token_hash = $1`, hash[:]).Scan(
		&sess.ID, &sess.CSRFToken, &sess.CreatedAt, &sess.LastSeen, &sess.ExpiresAt,
		&sess.UserID, &sess.Username, &role, &patient, &practitioner, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errSessionEnded()
	}
	if err != nil {
		return nil, fmt.Errorf("verify session: %w", err)
	}
	if disabled || !now.Before(sess.ExpiresAt) || !now.Before(sess.LastSeen.Add(s.cfg.IdleTimeout)) {
		return nil, errSessionEnded()
	}
	if now.Sub(sess.LastSeen) >= s.cfg.TouchEvery {
		if _, err := s.pool.Exec(ctx,
			`UPDATE auth_session SET last_seen = $2 WHERE id = $1 AND last_seen < $2`, sess.ID, now); err != nil {
			return nil, fmt.Errorf("verify session: touch: %w", err)
		}
		sess.LastSeen = now
	}
	if sess.Principal, err = s.principal(&sess, Role(role), patient, practitioner); err != nil {
		return nil, errSessionEnded()
	}
	return &sess, nil
}

// principal is what a session may do: the role's default scopes, as
// `vidda token --role R` would mint, until the session's idle or absolute
// end, whichever comes first.
func (s *Sessions) principal(sess *Session, role Role, patientID, practitionerID string) (*Principal, error) {
	if _, err := ParseRole(string(role)); err != nil || role == RoleSystem {
		return nil, fmt.Errorf("%w: %q", ErrInvalidRole, truncate(string(role)))
	}
	if role == RolePatient && patientID == "" {
		return nil, fmt.Errorf("%w: a patient without a Patient", ErrInvalidUser)
	}
	names := role.DefaultScopes()
	scopes := make([]Scope, 0, len(names))
	for _, n := range names {
		sc, err := ParseScope(n)
		if err != nil {
			return nil, err
		}
		scopes = append(scopes, sc)
	}
	end := sess.LastSeen.Add(s.cfg.IdleTimeout)
	if sess.ExpiresAt.Before(end) {
		end = sess.ExpiresAt
	}
	return &Principal{
		Subject:        sess.UserID,
		Role:           role,
		Scopes:         scopes,
		PatientID:      patientID,
		PractitionerID: practitionerID,
		TokenID:        sess.ID,
		ExpiresAt:      end,
	}, nil
}

// SignOut ends the session whose cookie value is token. Ending an unknown
// or already ended session is not an error.
func (s *Sessions) SignOut(ctx context.Context, token string) error {
	raw, err := ParseSessionToken(token)
	if err != nil {
		return nil //nolint:nilerr // a malformed cookie names no session: nothing to end
	}
	hash := sha256.Sum256(raw)
	if _, err := s.pool.Exec(ctx, `DELETE FROM auth_session WHERE token_hash = $1`, hash[:]); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// pruneEvery is how often Run deletes ended sessions.
const pruneEvery = 10 * time.Minute

// Run deletes expired and idle sessions every ten minutes until ctx ends;
// VerifySession refuses them anyway, this only keeps the table small.
// Failures are logged and retried at the next tick. It returns nil when
// ctx ends.
func (s *Sessions) Run(ctx context.Context) error {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "session prune failed", "err", err)
		case n > 0:
			s.log.DebugContext(ctx, "ended sessions deleted", "count", n)
		}
	}
}

// Prune deletes sessions past their absolute or idle end and returns how
// many.
func (s *Sessions) Prune(ctx context.Context) (int64, error) {
	now := s.cfg.Now()
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_session WHERE expires_at <= $1 OR last_seen <= $2`,
		now, now.Add(-s.cfg.IdleTimeout))
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
