package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/db"
)

// Errors of user management. Messages wrapping them are fit for the
// operator or admin who made the request.
var (
	// ErrUserNotFound means no user has that id or username (HTTP 404).
	ErrUserNotFound = errors.New("user not found")
	// ErrUserExists means the username is taken (HTTP 409).
	ErrUserExists = errors.New("username already taken")
	// ErrInvalidUser means a new user or password breaks a rule (HTTP 400).
	ErrInvalidUser = errors.New("invalid user")
)

// User is a person who signs in: staff (admin, clinician, nurse) or a
// patient. It never carries the password hash or the TOTP secret.
type User struct {
	// ID is the user's stable id (a UUID); it is the Subject of their
	// Principal.
	ID string
	// Username is what they type, in lower case.
	Username string
	// Role is admin, clinician, nurse or patient; never system.
	Role Role
	// PatientID is the Patient a patient user is; empty for staff.
	PatientID string
	// PractitionerID is the Practitioner a staff user acts as, if any.
	PractitionerID string
	// TOTP says whether sign-in needs a one-time code as well.
	TOTP bool
	// Disabled users cannot sign in and have no sessions.
	Disabled bool
	// LockedUntil is when a lockout after failed sign-ins ends; zero
	// when not locked.
	LockedUntil time.Time
	// CreatedAt is when the user was added.
	CreatedAt time.Time
	// PasswordChangedAt is when the password was last set.
	PasswordChangedAt time.Time
	// ActiveSessions counts sessions not yet expired (List only).
	ActiveSessions int
}

// NewUser is what Add needs.
type NewUser struct {
	Username       string
	Role           Role
	PatientID      string
	PractitionerID string
	Password       string
	// TOTP asks for a second factor: Add returns the otpauth:// URL to
	// enrol in an authenticator app.
	TOTP bool
}

// Users keeps the people who sign in (table auth_user): it adds them,
// changes passwords, disables them, and checks credentials with lockout.
// It is safe for concurrent use.
type Users struct {
	pool *pgxpool.Pool
	cfg  SessionConfig
	hash *hasher
}

// NewUsers returns a Users on pool. Zero fields of cfg take their
// defaults.
func NewUsers(pool *pgxpool.Pool, cfg SessionConfig) (*Users, error) {
	cfg = cfg.withDefaults()
	h, err := newHasher(cfg.HashConcurrency)
	if err != nil {
		return nil, err
	}
	return &Users{pool: pool, cfg: cfg, hash: h}, nil
}

// userColumns are scanned by scanUser, in this order.
const userColumns = `id, username, role, coalesce(patient_id, ''), coalesce(practitioner_id, ''),
	totp_secret IS NOT NULL, disabled, locked_until, created_at, password_changed_at`

func scanUser(row pgx.Row, extra ...any) (*User, error) {
	var (
		u      User
		role   string
		locked *time.Time
	)
	dest := []any{
		&u.ID, &u.Username, &role, &u.PatientID, &u.PractitionerID,
		&u.TOTP, &u.Disabled, &locked, &u.CreatedAt, &u.PasswordChangedAt,
	}
	dest = append(dest, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	u.Role = Role(role)
	if locked != nil {
		u.LockedUntil = *locked
	}
	return &u, nil
}

// Add creates a user. A taken username wraps ErrUserExists; a bad
// username, role, link or password wraps ErrInvalidUser. With nu.TOTP it
// also returns the otpauth:// URL of the new second factor, to be shown
// once.
func (s *Users) Add(ctx context.Context, nu NewUser) (*User, string, error) {
	username, err := checkNewUser(nu)
	if err != nil {
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	hash, err := s.hash.hash(ctx, nu.Password)
	if err != nil {
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	var secret *string
	var totpURL string
	if nu.TOTP {
		k, err := newTOTPKey(s.cfg.TOTPIssuer, username)
		if err != nil {
			return nil, "", fmt.Errorf("add user: %w", err)
		}
		sec := k.Secret()
		secret, totpURL = &sec, k.URL()
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	now := s.cfg.Now()
	u, err := scanUser(s.pool.QueryRow(ctx, `
		INSERT INTO auth_user (id, username, role, patient_id, practitioner_id, password_hash, totp_secret, created_at, password_changed_at)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, $7, $8, $8)
		ON CONFLICT (username) DO NOTHING
		RETURNING `+userColumns,
		id.String(), username, string(nu.Role), nu.PatientID, nu.PractitionerID, hash, secret, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", fmt.Errorf("add user %s: %w", username, ErrUserExists)
	}
	if err != nil {
		return nil, "", fmt.Errorf("add user: %w", err)
	}
	return u, totpURL, nil
}

// checkNewUser returns the normalised username, or why nu is not valid.
func checkNewUser(nu NewUser) (string, error) {
	username, err := NormalizeUsername(nu.Username)
	if err != nil {
		return "", err
	}
	switch nu.Role {
	case RoleAdmin, RoleClinician, RoleNurse:
		if nu.PatientID != "" {
			return "", fmt.Errorf("%w: only a patient user is linked to a Patient", ErrInvalidUser)
		}
	case RolePatient:
		if nu.PatientID == "" {
			return "", fmt.Errorf("%w: a patient user needs the id of their Patient", ErrInvalidUser)
		}
		if nu.PractitionerID != "" {
			return "", fmt.Errorf("%w: a patient user is not linked to a Practitioner", ErrInvalidUser)
		}
	case RoleSystem:
		return "", fmt.Errorf("%w: system is for programs (vidda token), not people", ErrInvalidUser)
	default:
		return "", fmt.Errorf("%w: role must be admin, clinician, nurse or patient", ErrInvalidUser)
	}
	for _, id := range []struct{ name, v string }{{"patient", nu.PatientID}, {"practitioner", nu.PractitionerID}} {
		if id.v != "" && !isFHIRID(id.v) {
			return "", fmt.Errorf("%w: %s id %q is not a FHIR id", ErrInvalidUser, id.name, truncate(id.v))
		}
	}
	if err := CheckPasswordPolicy(nu.Password); err != nil {
		return "", err
	}
	return username, nil
}

// maxUsernameLen bounds usernames; an e-mail address fits.
const maxUsernameLen = 64

// NormalizeUsername lower-cases and trims s and checks it: 1 to 64 of
// a-z, 0-9, '.', '_', '-', '@', starting with a letter or digit. Errors
// wrap ErrInvalidUser.
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(strings.TrimSpace(s))
	if u == "" || len(u) > maxUsernameLen {
		return "", fmt.Errorf("%w: a username has 1 to %d characters", ErrInvalidUser, maxUsernameLen)
	}
	for i := range len(u) {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-' || c == '@'):
		default:
			return "", fmt.Errorf("%w: a username is letters a-z, digits and . _ - @, starting with a letter or digit", ErrInvalidUser)
		}
	}
	return u, nil
}

// isFHIRID matches R4's id type: [A-Za-z0-9\-\.]{1,64}.
func isFHIRID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// Get returns the user with id; ErrUserNotFound when there is none.
func (s *Users) Get(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM auth_user WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", truncate(id), ErrUserNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// ByUsername returns the user called username (any case); ErrUserNotFound
// when there is none.
func (s *Users) ByUsername(ctx context.Context, username string) (*User, error) {
	name := strings.ToLower(strings.TrimSpace(username))
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM auth_user WHERE username = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", truncate(name), ErrUserNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// List returns every user by username, with their active session counts.
func (s *Users) List(ctx context.Context) ([]*User, error) {
	now := s.cfg.Now()
	rows, err := s.pool.Query(ctx, `
		SELECT `+userColumns+`,
		       (SELECT count(*) FROM auth_session t
		         WHERE t.user_id = auth_user.id AND t.expires_at > $1 AND t.last_seen > $2)
		FROM auth_user ORDER BY username`, now, now.Add(-s.cfg.IdleTimeout))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		var n int
		u, err := scanUser(rows, &n)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.ActiveSessions = n
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// SetPassword replaces the user's password, ends every session they have
// and lifts a lockout. It returns how many sessions ended.
func (s *Users) SetPassword(ctx context.Context, id, password string) (int64, error) {
	if err := CheckPasswordPolicy(password); err != nil {
		return 0, fmt.Errorf("set password: %w", err)
	}
	hash, err := s.hash.hash(ctx, password)
	if err != nil {
		return 0, fmt.Errorf("set password: %w", err)
	}
	return s.updateAndRevoke(ctx, "set password", id, `
		UPDATE auth_user SET password_hash = $2, password_changed_at = $3, failed_attempts = 0, locked_until = NULL
		WHERE id = $1`, hash, s.cfg.Now())
}

// Disable stops the user from signing in and ends every session they
// have; it returns how many ended.
func (s *Users) Disable(ctx context.Context, id string) (int64, error) {
	return s.updateAndRevoke(ctx, "disable user", id, `UPDATE auth_user SET disabled = true WHERE id = $1`)
}

// Enable lets a disabled user sign in again and lifts a lockout.
func (s *Users) Enable(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE auth_user SET disabled = false, failed_attempts = 0, locked_until = NULL WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("enable user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("enable user %s: %w", truncate(id), ErrUserNotFound)
	}
	return nil
}

// Ensure adds nu unless its username is taken; then the existing user
// keeps its id, role, links and sessions, and gets nu.Password unless that
// is its password already. It reports whether it added the user. For demo
// data and provisioning scripts that run again and again.
func (s *Users) Ensure(ctx context.Context, nu NewUser) (*User, bool, error) {
	u, _, err := s.Add(ctx, nu)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, ErrUserExists) {
		return nil, false, err
	}
	if u, err = s.ByUsername(ctx, nu.Username); err != nil {
		return nil, false, err
	}
	var hash string
	if err := s.pool.QueryRow(ctx, `SELECT password_hash FROM auth_user WHERE id = $1`, u.ID).Scan(&hash); err != nil {
		return nil, false, fmt.Errorf("ensure user: %w", err)
	}
	if ok, _ := s.hash.verify(ctx, nu.Password, hash); !ok {
		if _, err := s.SetPassword(ctx, u.ID, nu.Password); err != nil {
			return nil, false, err
		}
	}
	return u, false, nil
}

// RevokeSessions ends every session of the user; it returns how many.
func (s *Users) RevokeSessions(ctx context.Context, id string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_session WHERE user_id = $1`, id)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// updateAndRevoke runs update on the user's row and deletes their sessions
// in one transaction, so no request sees the change without the
// revocation.
func (s *Users) updateAndRevoke(ctx context.Context, op, id, update string, args ...any) (int64, error) {
	var revoked int64
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, update, append([]any{id}, args...)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("user %s: %w", truncate(id), ErrUserNotFound)
		}
		tag, err = tx.Exec(ctx, `DELETE FROM auth_session WHERE user_id = $1`, id)
		if err != nil {
			return err
		}
		revoked = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return revoked, nil
}
