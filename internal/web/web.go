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

	"github.com/vidda/vidda/internal/auth"
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

// Config tunes the pages.
type Config struct {
	// SecureCookies marks cookies Secure. Set it whenever browsers reach
	// vidda over https (VIDDA_BASE_URL https, or TLS on vidda itself);
	// plain http on loopback (make run) needs it off.
	SecureCookies bool
	// LoginPerMinute caps sign-in attempts (POST /login) per client
	// address per minute (VIDDA_LOGIN_RATE_LIMIT).
	LoginPerMinute int
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config { return Config{LoginPerMinute: 10} }

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.LoginPerMinute < 1 {
		return fmt.Errorf("VIDDA_LOGIN_RATE_LIMIT: %d sign-ins a minute lets nobody in", c.LoginPerMinute)
	}
	return nil
}

// Deps are what the pages work with.
type Deps struct {
	Accounts Accounts
	// Recorder, when not nil, hears of sign-ins and sign-outs.
	Recorder SignInRecorder
}

// Pages are vidda's server-rendered pages.
type Pages struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	pages  map[string]*template.Template
	static fs.FS
}

// New parses the templates and returns the pages.
func New(deps Deps, cfg Config, log *slog.Logger) (*Pages, error) {
	if deps.Accounts == nil {
		return nil, errors.New("web: no Accounts")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pages{cfg: cfg, deps: deps, log: log, pages: map[string]*template.Template{}}
	for _, name := range []string{"login", "home"} {
		t, err := template.ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
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

// Mount adds the pages' routes to r: /login, /logout, /app, /me and
// /static/. All but /static and /login need a session.
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
	r.Get("/app", p.landing(false))
	r.Get("/me", p.landing(true))
}

// contentSecurityPolicy allows the pages their own stylesheet and forms
// posting to vidda, and nothing else: no script at all, no framing.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// render writes the named page with status. Pages with a form or a
// session in them are never cached.
func (p *Pages) render(c *fiber.Ctx, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	return c.Send(buf.Bytes())
}
