package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/limitstore"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Accounts is what the pages need of the session store; *auth.Sessions
// is one.
type Accounts interface {
	SignIn(ctx context.Context, c auth.Credentials) (string, *auth.Session, error)
	VerifySession(ctx context.Context, token string) (*auth.Session, error)
	SignOut(ctx context.Context, token string) error
}

// SignInRecorder is told of every sign-in attempt, failed or not, and
// every sign-out, e.g. to write an AuditEvent. It runs on the request's
// goroutine before the response: keep it quick, and log its own failures
// (the sign-in goes ahead regardless).
type SignInRecorder interface {
	RecordSignIn(ctx context.Context, e auth.SignInEvent)
}

// Acknowledger closes a worklist Task for a practitioner with a note;
// internal/care's Worklist is one.
type Acknowledger interface {
	Acknowledge(ctx context.Context, taskID, practitionerRef, note string) error
}

// Config tunes the pages.
type Config struct {
	// SecureCookies marks cookies Secure. Set it whenever browsers reach
	// vidda over https (VIDDA_BASE_URL https, or TLS on vidda itself);
	// plain http on loopback (make run) needs it off.
	SecureCookies bool
	// LoginPerMinute caps sign-in attempts (POST /login) per client
	// address per minute (VIDDA_LOGIN_RATE_LIMIT).
	LoginPerMinute int
	// TimeZone is the IANA zone dates and times are shown in
	// (VIDDA_TIME_ZONE): the clinic's.
	TimeZone string
	// KeepAlive is how often the live worklist stream sends a comment so
	// that proxies keep it open, and rechecks the session.
	KeepAlive time.Duration
	// RequestTimeout bounds the database work of one page.
	RequestTimeout time.Duration
}

// DefaultTimeZone is the clinic's zone unless configured (VIDDA_TIME_ZONE).
const DefaultTimeZone = "Europe/Oslo"

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{LoginPerMinute: 10, TimeZone: DefaultTimeZone, KeepAlive: 15 * time.Second, RequestTimeout: 30 * time.Second}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.LoginPerMinute < 1 {
		return fmt.Errorf("VIDDA_LOGIN_RATE_LIMIT: %d sign-ins a minute lets nobody in", c.LoginPerMinute)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" {
		return fmt.Errorf("VIDDA_TIME_ZONE: %q is not an IANA time zone", c.TimeZone)
	}
	if c.KeepAlive < time.Second || c.RequestTimeout <= 0 {
		return errors.New("web: KeepAlive must be at least 1s and RequestTimeout positive")
	}
	return nil
}

// Deps are what the pages work with.
type Deps struct {
	Accounts Accounts
	// Recorder, when not nil, hears of sign-ins and sign-outs.
	Recorder SignInRecorder
	// Store, Types and Params are the FHIR store the pages read and write,
	// its resource types and search parameters.
	Store  Resources
	Types  *fhir.Registry
	Params *search.Registry
	// Audit, when not nil, records every page that reads or writes
	// patient data.
	Audit AuditRecorder
	// Listen is how to open the connection that LISTENs for worklist
	// changes (one per process); nil: the live stream only keeps alive.
	Listen *pgx.ConnConfig
	// Acknowledge closes Tasks (internal/care's Worklist); without it a
	// nurse cannot acknowledge from the pages.
	Acknowledge Acknowledger
	// Rules are the clinic's rules the care engine judges by
	// (internal/care): the limits the pages shade and the planned
	// measures /me warns about. Nil: the built-in care.DefaultRules.
	Rules *care.Rules
}

// Pages are vidda's server-rendered pages.
type Pages struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	pages    map[string]*template.Template
	static   fs.FS
	cats     *catalogs
	zone     *time.Location
	measures *measureTable
	rules    *care.Rules
	// dates reads the FHIR dates of stored resources (fhirTime).
	dates *search.DateParser
	hub   *hub
	now   func() time.Time
}

// pageNames are the templates, each a "content" for layout.html.
func pageNames() []string {
	return []string{"login", "worklist", "patient", "me", "visit", "error"}
}

// New parses the templates and catalogs and returns the pages.
func New(deps Deps, cfg Config, log *slog.Logger) (*Pages, error) {
	if deps.Accounts == nil || deps.Store == nil || deps.Types == nil || deps.Params == nil {
		return nil, errors.New("web: Accounts, Store, Types and Params are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	zone, err := time.LoadLocation(cfg.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_TIME_ZONE: %w", err)
	}
	cats, err := loadCatalogs()
	if err != nil {
		return nil, err
	}
	rules := deps.Rules
	if rules == nil {
		if rules, err = care.DefaultRules(); err != nil {
			return nil, err
		}
	}
	p := &Pages{
		cfg: cfg, deps: deps, log: log, pages: map[string]*template.Template{}, cats: cats, zone: zone,
		measures: newMeasureTable(), rules: rules, dates: search.NewDateParser(time.UTC), now: time.Now,
	}
	p.hub = newHub(deps.Listen, log)
	for _, name := range pageNames() {
		t, err := template.ParseFS(templateFiles, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	p.static = static
	return p, nil
}

// Run keeps the live worklist fed: one connection LISTENs for Task
// changes and fans them out to the open dashboards of this process,
// reconnecting with backoff. When ctx ends it closes every stream (so the
// HTTP server can drain) and returns nil.
func (p *Pages) Run(ctx context.Context) error { return p.hub.run(ctx) }

// Mount adds the pages' routes to r. All but /static, /login and /lang
// need a session: /app and below a staff one, /me a patient's.
func (p *Pages) Mount(r fiber.Router) {
	r.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(p.static), MaxAge: 3600}))
	r.Get("/login", p.loginPage)
	r.Post("/login", limiter.New(limiter.Config{
		Max:          p.cfg.LoginPerMinute,
		Expiration:   time.Minute,
		KeyGenerator: func(c *fiber.Ctx) string { return c.IP() },
		LimitReached: p.tooManyAttempts,
		Storage:      limitstore.New(limitMaxKeys),
	}), p.signIn)
	r.Post("/logout", p.signOut)
	r.Post("/lang", p.setLang)
	r.Get("/app", p.staff(p.worklistPage))
	r.Get("/app/worklist", p.staff(p.worklistFragment))
	r.Get("/app/events", p.staff(p.events))
	r.Get("/app/patients/:id", p.staff(p.patientPage))
	r.Post("/app/patients/:id/goals", p.staff(p.saveGoal))
	r.Post("/app/patients/:id/visit", p.staff(p.startVisit))
	r.Post("/app/tasks/:id/acknowledge", p.staff(p.acknowledge))
	r.Get("/me", p.patientOnly(p.mePage))
	r.Get("/visit/:appointmentId", p.signedIn(p.visitPage))
}

// contentSecurityPolicy allows the pages their own stylesheet and script,
// requests to vidda itself (the live worklist) and forms posting to
// vidda, and nothing else: no inline script, no framing.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// render writes the named page with status. Pages with a form or a
// session in them are never cached.
func (p *Pages) render(c *fiber.Ctx, status int, name string, data any) error {
	return p.renderTemplate(c, status, name, "layout", data)
}

// renderTemplate writes one template of a page: the whole page
// ("layout") or a fragment of it.
func (p *Pages) renderTemplate(c *fiber.Ctx, status int, page, tmpl string, data any) error {
	var buf bytes.Buffer
	if err := p.pages[page].ExecuteTemplate(&buf, tmpl, data); err != nil {
		return fmt.Errorf("web: render %s: %w", page, err)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderVary, "Cookie, Accept-Language")
	return c.Send(buf.Bytes())
}
