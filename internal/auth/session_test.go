package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/vidda/vidda/internal/db/dbtest"
)

const testPassword = "correct horse battery"

// signInRig is Users and Sessions on the package database, on a clock the
// test moves.
type signInRig struct {
	clock    *testClock
	users    *Users
	sessions *Sessions
	prefix   string // keeps this test's usernames apart from others'
}

func newSignInRig(t *testing.T) *signInRig {
	t.Helper()
	clock := newClock()
	users, err := NewUsers(dbtest.Pool(t), SessionConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Usernames: this test's name in a-z0-9- and a random part, so reruns
	// on the same database (-count) do not collide.
	name := []byte(strings.ToLower(t.Name()))
	for i, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			name[i] = '-'
		}
	}
	return &signInRig{
		clock: clock, users: users, sessions: NewSessions(users, discardLog()),
		prefix: string(name[:min(36, len(name))]) + "-" + uuid.NewString()[:8] + "-",
	}
}

func (r *signInRig) add(t *testing.T, nu NewUser) (*User, string) {
	t.Helper()
	nu.Username = r.prefix + nu.Username
	if nu.Password == "" {
		nu.Password = testPassword
	}
	u, totpURL, err := r.users.Add(context.Background(), nu)
	if err != nil {
		t.Fatalf("add %s: %v", nu.Username, err)
	}
	return u, totpURL
}

func (r *signInRig) signIn(username, password, code string) (string, *Session, error) {
	return r.sessions.SignIn(context.Background(), Credentials{Username: r.prefix + username, Password: password, Code: code})
}

func outcome(err error) SignInOutcome {
	var se *SignInError
	if errors.As(err, &se) {
		return se.Outcome
	}
	return ""
}

func TestAddingUsers(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	nurse, _ := r.add(t, NewUser{Username: "Ingrid", Role: RoleNurse, PractitionerID: "pr-1"})
	if nurse.Username != r.prefix+"ingrid" || nurse.Role != RoleNurse || nurse.PractitionerID != "pr-1" || nurse.TOTP || nurse.Disabled {
		t.Fatalf("added %+v", nurse)
	}
	if _, _, err := r.users.Add(ctx, NewUser{Username: r.prefix + "INGRID", Role: RoleAdmin, Password: testPassword}); !errors.Is(err, ErrUserExists) {
		t.Fatalf("a second Ingrid in other case: %v, want ErrUserExists", err)
	}
	for name, nu := range map[string]NewUser{
		"a patient without a Patient":      {Username: "p", Role: RolePatient},
		"a patient with a Practitioner":    {Username: "p", Role: RolePatient, PatientID: "p1", PractitionerID: "pr"},
		"a nurse linked to a Patient":      {Username: "n", Role: RoleNurse, PatientID: "p1"},
		"a system user":                    {Username: "s", Role: RoleSystem},
		"an unknown role":                  {Username: "j", Role: "janitor"},
		"a short password":                 {Username: "n", Role: RoleNurse, Password: "short"},
		"a username with a space":          {Username: "a b", Role: RoleNurse},
		"an empty username":                {Username: "", Role: RoleNurse},
		"a Patient id that is not FHIR id": {Username: "p", Role: RolePatient, PatientID: "p/1"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if nu.Password == "" {
				nu.Password = testPassword
			}
			if nu.Username != "" {
				nu.Username = r.prefix + nu.Username
			}
			if _, _, err := r.users.Add(ctx, nu); !errors.Is(err, ErrInvalidUser) {
				t.Fatalf("err = %v, want ErrInvalidUser", err)
			}
		})
	}
	for _, name := range []string{".ingrid", "-ingrid", "ingrid/1", "ingrid\x00", strings.Repeat("a", 65)} {
		if _, err := NormalizeUsername(name); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("username %q: %v, want ErrInvalidUser", name, err)
		}
	}
	got, err := r.users.ByUsername(ctx, r.prefix+"INGRID ")
	if err != nil || got.ID != nurse.ID {
		t.Fatalf("ByUsername = %+v, %v", got, err)
	}
	if _, err := r.users.Get(ctx, "no-such-id"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
}

func TestSignInOpensASessionThatActsAsATokenWould(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	tests := []struct {
		name string
		nu   NewUser
		want Principal
	}{
		{
			"a nurse acts with user scopes as their Practitioner",
			NewUser{Username: "nurse", Role: RoleNurse, PractitionerID: "pr-1"},
			Principal{Role: RoleNurse, PractitionerID: "pr-1", Scopes: []Scope{{ContextUser, "*", PermAll}}},
		},
		{
			"a patient acts on their own compartment",
			NewUser{Username: "astrid", Role: RolePatient, PatientID: "p-1"},
			Principal{Role: RolePatient, PatientID: "p-1", Scopes: []Scope{{ContextPatient, "*", PermRead | PermSearch}}},
		},
		{
			"an admin acts with user scopes",
			NewUser{Username: "admin", Role: RoleAdmin},
			Principal{Role: RoleAdmin, Scopes: []Scope{{ContextUser, "*", PermAll}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := r.add(t, tt.nu)
			tok, opened, err := r.signIn(tt.nu.Username, testPassword, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseSessionToken(tok); err != nil {
				t.Fatalf("the token %q does not parse: %v", tok, err)
			}
			got, err := r.sessions.VerifySession(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Subject, want.TokenID = u.ID, opened.ID
			want.ExpiresAt = r.clock.Now().Add(DefaultIdleTimeout)
			if diff := cmp.Diff(&want, got.Principal, cmpopts.EquateApproxTime(time.Second)); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			if got.CSRFToken != opened.CSRFToken || len(got.CSRFToken) < 43 || got.UserID != u.ID {
				t.Errorf("session %+v, opened %+v", got, opened)
			}
			// Decide treats it like the token it stands for.
			if _, err := Decide(got.Principal, Action{Interaction: InteractionRead, ResourceType: "Observation", InPatientCompartment: true}); err != nil {
				t.Errorf("Decide: %v", err)
			}
		})
	}
}

func TestEveryFailedSignInLooksTheSame(t *testing.T) {
	r := newSignInRig(t)
	r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	disabled, _ := r.add(t, NewUser{Username: "gone", Role: RoleNurse})
	if _, err := r.users.Disable(context.Background(), disabled.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, username, password string
		want                     SignInOutcome
	}{
		{"an unknown user", "nobody", testPassword, SignInUnknownUser},
		{"a wrong password", "ingrid", "wrong horse battery", SignInWrongPassword},
		{"a disabled user with the right password", "gone", testPassword, SignInDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, sess, err := r.signIn(tt.username, tt.password, "")
			if tok != "" || sess != nil || !errors.Is(err, ErrSignInFailed) {
				t.Fatalf("SignIn = %q, %v, %v", tok, sess, err)
			}
			if got := outcome(err); got != tt.want {
				t.Fatalf("outcome %q, want %q", got, tt.want)
			}
		})
	}
	if _, _, err := r.signIn("INGRID", testPassword, ""); err != nil {
		t.Fatalf("usernames are not case-sensitive: %v", err)
	}
}

func TestLockoutAfterRepeatedFailures(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	u, _ := r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	wrong := func() SignInOutcome {
		t.Helper()
		_, _, err := r.signIn("ingrid", "wrong horse battery", "")
		return outcome(err)
	}
	right := func() SignInOutcome {
		t.Helper()
		_, _, err := r.signIn("ingrid", testPassword, "")
		if err == nil {
			return SignInSucceeded
		}
		return outcome(err)
	}
	for i := range DefaultMaxFailures {
		if o := wrong(); o != SignInWrongPassword {
			t.Fatalf("failure %d: %s", i+1, o)
		}
	}
	if o := right(); o != SignInLocked {
		t.Fatalf("the right password after %d failures: %s, want locked", DefaultMaxFailures, o)
	}
	got, err := r.users.Get(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.clock.Now().Add(time.Minute); !got.LockedUntil.Equal(want) {
		t.Fatalf("locked until %s, want %s (one minute)", got.LockedUntil, want)
	}
	if o := wrong(); o != SignInLocked {
		t.Fatalf("a failure while locked: %s", o)
	}
	r.clock.Advance(time.Minute)
	// Unlocked, but one more failure locks for twice as long.
	if o := wrong(); o != SignInWrongPassword {
		t.Fatalf("after the lockout: %s", o)
	}
	r.clock.Advance(time.Minute + 59*time.Second)
	if o := right(); o != SignInLocked {
		t.Fatalf("within the second, two-minute lockout: %s", o)
	}
	r.clock.Advance(time.Second)
	if o := right(); o != SignInSucceeded {
		t.Fatalf("after the second lockout: %s", o)
	}
	// Success cleared the count: four failures lock nothing.
	for range DefaultMaxFailures - 1 {
		wrong()
	}
	if o := right(); o != SignInSucceeded {
		t.Fatalf("after four failures following a success: %s", o)
	}
}

func TestLockoutsGrowToAnHourAtMost(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	u, _ := r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	// Push the counter far without hashing ten times: the SQL is the thing
	// under test.
	if _, err := r.users.pool.Exec(ctx, `UPDATE auth_user SET failed_attempts = 40 WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.users.recordFailure(ctx, u.ID, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := r.users.Get(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.clock.Now().Add(time.Hour); !got.LockedUntil.Equal(want) {
		t.Fatalf("locked until %s, want an hour: %s", got.LockedUntil, want)
	}
}

func TestTOTPSecondFactor(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	u, totpURL := r.add(t, NewUser{Username: "ingrid", Role: RoleNurse, TOTP: true})
	if !u.TOTP || !strings.HasPrefix(totpURL, "otpauth://totp/Vidda:") {
		t.Fatalf("user %+v, url %q", u, totpURL)
	}
	parsed, err := url.Parse(totpURL)
	if err != nil {
		t.Fatal(err)
	}
	secret := parsed.Query().Get("secret")
	code := totpCode(t, secret, r.clock.Now())
	if _, _, err := r.signIn("ingrid", testPassword, ""); outcome(err) != SignInWrongCode {
		t.Fatalf("no code: %v", err)
	}
	if _, _, err := r.signIn("ingrid", testPassword, wrongCode(code)); outcome(err) != SignInWrongCode {
		t.Fatalf("a wrong code: %v", err)
	}
	if _, _, err := r.signIn("ingrid", "wrong horse battery", code); outcome(err) != SignInWrongPassword {
		t.Fatalf("the right code with a wrong password: %v", err)
	}
	if _, _, err := r.signIn("ingrid", testPassword, code); err != nil {
		t.Fatalf("the right password and code: %v", err)
	}
	if _, _, err := r.signIn("ingrid", testPassword, code); outcome(err) != SignInWrongCode {
		t.Fatalf("the same code again: %v", err)
	}
	r.clock.Advance(30 * time.Second)
	if _, _, err := r.signIn("ingrid", testPassword, totpCode(t, secret, r.clock.Now())); err != nil {
		t.Fatalf("the next step's code: %v", err)
	}
	got, err := r.users.Get(ctx, u.ID)
	if err != nil || got.LockedUntil.After(r.clock.Now()) {
		t.Fatalf("three code failures then a success: %+v, %v", got, err)
	}
}

func TestSessionsEnd(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// end does something to the session and reports whether it should
		// still work.
		end func(t *testing.T, r *signInRig, u *User, tok string) bool
	}{
		{"a session used within the idle timeout lives on", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			for range 4 {
				r.clock.Advance(DefaultIdleTimeout - time.Minute)
				if _, err := r.sessions.VerifySession(ctx, tok); err != nil {
					t.Fatalf("used every 29 minutes: %v", err)
				}
			}
			return true
		}},
		{"an idle session ends after 30 minutes", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			r.clock.Advance(DefaultIdleTimeout)
			return false
		}},
		{"a busy session ends 12 hours after sign-in", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			for range 24 {
				r.clock.Advance(DefaultIdleTimeout - time.Minute)
				if _, err := r.sessions.VerifySession(ctx, tok); err != nil {
					t.Fatalf("within 12 hours: %v", err)
				}
			}
			r.clock.Advance(DefaultSessionMaxAge - 24*(DefaultIdleTimeout-time.Minute))
			return false
		}},
		{"signing out ends it", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			if err := r.sessions.SignOut(ctx, tok); err != nil {
				t.Fatal(err)
			}
			return false
		}},
		{"revoking the user's sessions ends it", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			if n, err := r.users.RevokeSessions(ctx, u.ID); err != nil || n != 1 {
				t.Fatalf("RevokeSessions = %d, %v", n, err)
			}
			return false
		}},
		{"a new password ends it", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			if n, err := r.users.SetPassword(ctx, u.ID, "a brand new passphrase"); err != nil || n != 1 {
				t.Fatalf("SetPassword = %d, %v", n, err)
			}
			return false
		}},
		{"disabling the user ends it", func(t *testing.T, r *signInRig, u *User, tok string) bool {
			t.Helper()
			if n, err := r.users.Disable(ctx, u.ID); err != nil || n != 1 {
				t.Fatalf("Disable = %d, %v", n, err)
			}
			return false
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // argon2id runs on one core; use both
			r := newSignInRig(t)
			u, _ := r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
			tok, _, err := r.signIn("ingrid", testPassword, "")
			if err != nil {
				t.Fatal(err)
			}
			live := tt.end(t, r, u, tok)
			_, err = r.sessions.VerifySession(ctx, tok)
			if live && err != nil {
				t.Fatalf("the session ended: %v", err)
			}
			if !live && !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("VerifySession = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestTheIdleTimeoutSlidesWithAtMostOneWriteAMinute(t *testing.T) {
	r := newSignInRig(t)
	ctx := context.Background()
	r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	tok, opened, err := r.signIn("ingrid", testPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	lastSeen := func() time.Time {
		var at time.Time
		if err := r.users.pool.QueryRow(ctx, `SELECT last_seen FROM auth_session WHERE id = $1`, opened.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	r.clock.Advance(59 * time.Second)
	if _, err := r.sessions.VerifySession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if !lastSeen().Equal(opened.LastSeen) {
		t.Fatal("a use within a minute of the last write wrote last_seen")
	}
	r.clock.Advance(time.Second)
	if _, err := r.sessions.VerifySession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if !lastSeen().Equal(r.clock.Now()) {
		t.Fatal("a use a minute after the last write did not write last_seen")
	}
}

func TestStoredSessionsHoldOnlyAHashOfTheToken(t *testing.T) {
	r := newSignInRig(t)
	r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	tok, opened, err := r.signIn("ingrid", testPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ParseSessionToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	var (
		hash []byte
		text string
	)
	if err := r.users.pool.QueryRow(context.Background(),
		`SELECT token_hash, concat_ws('|', id, user_id, csrf_token) FROM auth_session WHERE id = $1`,
		opened.ID).Scan(&hash, &text); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(raw); !bytes.Equal(hash, want[:]) || strings.Contains(text, tok) {
		t.Fatalf("the session row holds %x and %q, not only SHA-256 of the token", hash, text)
	}
}

func TestCSRFTokensMatchOnlyTheirSession(t *testing.T) {
	r := newSignInRig(t)
	r.add(t, NewUser{Username: "ingrid", Role: RoleNurse})
	_, a, err := r.signIn("ingrid", testPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := r.signIn("ingrid", testPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if !a.CheckCSRF(a.CSRFToken) || a.CheckCSRF(b.CSRFToken) || a.CheckCSRF("") || a.CheckCSRF(a.CSRFToken[1:]) {
		t.Fatal("CheckCSRF accepts what it must not, or refuses its own token")
	}
}

func TestPruneDeletesEndedSessions(t *testing.T) {
	clock := newClock()
	users, err := NewUsers(isolated(t), SessionConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSessions(users, discardLog())
	ctx := context.Background()
	if _, _, err := users.Add(ctx, NewUser{Username: "ingrid", Role: RoleNurse, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := s.SignIn(ctx, Credentials{Username: "ingrid", Password: testPassword}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("Prune of live sessions = %d, %v", n, err)
	}
	clock.Advance(DefaultIdleTimeout)
	if n, err := s.Prune(ctx); err != nil || n != 2 {
		t.Fatalf("Prune of idle sessions = %d, %v", n, err)
	}
}
