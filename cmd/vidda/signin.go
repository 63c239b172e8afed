package main

import (
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/internal/web"
)

// signInSettings are the serve flags of people signing in: sessions,
// lockout and the sign-in page.
type signInSettings struct {
	sessions auth.SessionConfig
	web      web.Config
}

// defaultTimeZone is the clinic's zone unless VIDDA_TIME_ZONE says
// otherwise.
const defaultTimeZone = web.DefaultTimeZone

func bindSignIn(cs *config.Set, s *signInSettings) {
	s.web = web.DefaultConfig()
	cs.Duration(&s.sessions.IdleTimeout, "session-idle-timeout", "VIDDA_SESSION_IDLE_TIMEOUT", auth.DefaultIdleTimeout, "end a browser session unused this long")
	cs.Duration(&s.sessions.MaxAge, "session-max-age", "VIDDA_SESSION_MAX_AGE", auth.DefaultSessionMaxAge, "end every browser session this long after sign-in")
	cs.Int(&s.sessions.MaxFailures, "login-max-failures", "VIDDA_LOGIN_MAX_FAILURES", auth.DefaultMaxFailures, "failed sign-ins in a row that lock an account")
	cs.Duration(&s.sessions.LockoutBase, "login-lockout", "VIDDA_LOGIN_LOCKOUT", auth.DefaultLockoutBase, "first lockout; each further failure doubles it")
	cs.Duration(&s.sessions.LockoutMax, "login-lockout-max", "VIDDA_LOGIN_LOCKOUT_MAX", auth.DefaultLockoutMax, "longest lockout")
	cs.Int(&s.web.LoginPerMinute, "login-rate-limit", "VIDDA_LOGIN_RATE_LIMIT", s.web.LoginPerMinute, "sign-in attempts per minute and client address")
}

func (s *signInSettings) validate() error {
	if err := s.sessions.Validate(); err != nil {
		return err
	}
	return s.web.Validate()
}

// pageData is what the pages read and write patient data with: the FHIR
// store and the audit trail the API uses too.
type pageData struct {
	store  *store.Store
	types  *fhir.Registry
	params *search.Registry
	audit  web.AuditRecorder
	// review is the care engine: the pages acknowledge Tasks through its
	// worklist and show its default limits.
	review *care.Engine
}

// build makes the users, their sessions and the pages; rec, when not nil,
// hears of every sign-in and sign-out (the audit trail). Cookies are
// Secure when browsers reach vidda over https: vidda's own TLS, or a base
// URL behind a TLS-terminating proxy.
func (s *signInSettings) build(pool *pgxpool.Pool, hc httpapi.Config, rec web.SignInRecorder, data pageData, log *slog.Logger) (*auth.Users, *auth.Sessions, *web.Pages, error) {
	users, err := auth.NewUsers(pool, s.sessions)
	if err != nil {
		return nil, nil, nil, err
	}
	sessions := auth.NewSessions(users, log)
	wc := s.web
	wc.SecureCookies = hc.TLS() || strings.HasPrefix(strings.ToLower(hc.BaseURL), "https://")
	pages, err := web.New(web.Deps{
		Accounts: sessions, Recorder: rec, Store: data.store, Types: data.types, Params: data.params, Audit: data.audit,
		Listen: pool.Config().ConnConfig, Acknowledge: data.review.Worklist(), Rules: data.review.Interpreter().Rules(),
	}, wc, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return users, sessions, pages, nil
}
