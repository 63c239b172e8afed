package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/auth"
)

// Config tunes the HTTP server.
type Config struct {
	// Addr is host:port to listen on (VIDDA_HTTP_ADDR).
	Addr string
	// BaseURL is the public base URL for links (VIDDA_BASE_URL); default
	// http://Addr.
	BaseURL string
	// BodyLimit caps request bodies in bytes.
	BodyLimit int
	// RequestTimeout bounds the database work of one request (fasthttp does
	// not cancel a request when the client goes away).
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the drain of in-flight requests on stop.
	ShutdownTimeout time.Duration
	// Version is reported in the CapabilityStatement.
	Version string
	// TLSCertFile and TLSKeyFile are PEM files (VIDDA_TLS_CERT,
	// VIDDA_TLS_KEY); with both set the server speaks HTTPS only, TLS 1.2
	// or later.
	TLSCertFile, TLSKeyFile string
	// MQTTAuthPerMinute caps an external broker's password checks
	// (/mqtt/auth/user) per minute and per broker token; 0 means no cap.
	MQTTAuthPerMinute int
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		BodyLimit:       4 << 20,
		RequestTimeout:  30 * time.Second,
		ShutdownTimeout: 20 * time.Second,
		Version:         "dev",
		// A broker checks every device (re)connecting; 100/s on average
		// absorbs a reconnect storm of a few thousand homes and still
		// stops password guessing with a stolen broker token.
		MQTTAuthPerMinute: 6000,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("VIDDA_HTTP_ADDR: %q is not host:port: %w", c.Addr, err)
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("VIDDA_BASE_URL: %q is not an http(s) URL", c.BaseURL)
		}
	}
	if c.BodyLimit < 1024 {
		return fmt.Errorf("VIDDA_HTTP_BODY_LIMIT: %d bytes is too small", c.BodyLimit)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("VIDDA_TLS_CERT and VIDDA_TLS_KEY must be set together")
	}
	if c.MQTTAuthPerMinute < 0 {
		return errors.New("VIDDA_MQTT_AUTH_RATE_LIMIT: must not be negative")
	}
	return nil
}

// Verifier checks bearer tokens.
type Verifier interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// Pinger reports whether a dependency (the database) answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the server serves.
type Deps struct {
	Store    Resources
	Types    *fhir.Registry
	Params   *search.Registry
	Verifier Verifier
	Ready    Pinger
	Metrics  *prometheus.Registry
	// Devices and BrokerAccount serve an external broker's auth calls;
	// with Devices nil the /mqtt/auth routes are not mounted.
	Devices       DeviceCredentials
	BrokerAccount BrokerAccount
	// DeadLetters serves /admin/deadletters; nil: not mounted.
	DeadLetters DeadLetters
	// Subscriptions writes the Subscriptions clients create and update
	// (see subscription.go); nil: Subscriptions cannot be written.
	Subscriptions Subscriptions
	// Audit records an AuditEvent of every access (see audit.go); nil:
	// no audit trail (VIDDA_AUDIT=off, only to measure what it costs).
	Audit AuditRecorder
	// Sessions lets a browser's session cookie authenticate like a bearer
	// token; nil: bearer tokens only.
	Sessions SessionVerifier
	// Users serves /admin/users; nil: not mounted.
	Users UserAdmin
	// Pages are the server-rendered pages (internal/web); nil: none.
	Pages Pages
	// Tokens serves the SMART Backend Services token endpoint
	// (POST /auth/token); nil: not mounted.
	Tokens TokenIssuer
	// Exports serves FHIR Bulk Data $export (see export.go); nil: not
	// mounted.
	Exports Exports
	// Visits serves video visits under /video (see video.go); nil: not
	// mounted.
	Visits Visits
}

// Server is the HTTP API.
type Server struct {
	app     *fiber.App
	cfg     Config
	deps    Deps
	log     *slog.Logger
	base    string
	metrics *httpMetrics
	capJSON []byte
	tls     *tls.Config // nil: plain HTTP
	hsts    bool        // send Strict-Transport-Security
}

// New builds the server and its routes.
func New(deps Deps, cfg Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, deps: deps, log: log, base: cfg.BaseURL}
	s.deps.Store = s.audited(deps.Store)
	if s.base == "" {
		s.base = cfg.Scheme() + "://" + cfg.Addr
	}
	var err error
	if cfg.TLS() {
		if s.tls, err = loadTLS(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, err
		}
	}
	s.hsts = cfg.TLS() || strings.HasPrefix(s.base, "https://")
	if s.capJSON, err = capabilityStatement(deps.Types, deps.Params, s.base+"/fhir", cfg.Version, deps.Exports != nil); err != nil {
		return nil, err
	}
	s.metrics = newHTTPMetrics(deps.Metrics)
	s.app = fiber.New(fiber.Config{
		AppName:               "vidda",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
		// FHIR clients send "application/fhir+json"; we read the raw body.
		StrictRouting: false,
	})
	s.app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: s.logPanic}))
	s.app.Use(s.requestContext)
	s.app.Use(s.securityHeaders)
	s.routes()
	s.logRoutes()
	return s, nil
}

// Handler exposes the app for in-process tests.
func (s *Server) Handler() *fiber.App { return s.app }

// Run serves on ln until ctx ends, then drains in-flight requests.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	ln = s.wrapTLS(ln)
	go func() { errc <- s.app.Listener(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("http: draining", "timeout", s.cfg.ShutdownTimeout)
	if err := s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

func (s *Server) routes() {
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	s.smartRoutes()
	s.app.Get("/metrics", s.auditAdmin, s.authenticate, s.metricsHandler())
	if s.deps.Devices != nil {
		s.mqttRoutes()
	}
	if s.deps.DeadLetters != nil || s.deps.Users != nil {
		s.adminRoutes()
	}
	if s.deps.Visits != nil {
		s.videoRoutes()
	}
	if s.deps.Pages != nil {
		s.deps.Pages.Mount(s.app)
	}
	f := s.app.Group("/fhir")
	f.Get("/metadata", s.capability)
	f.Use(s.auditFHIR)
	f.Use(s.authenticate)
	s.exportRoutes(f)
	f.Post("/", s.transaction)
	f.Get("/:type/_history", s.typeHistory)
	f.Get("/:type/:id/_history/:vid", s.vread)
	f.Get("/:type/:id/_history", s.instanceHistory)
	f.Get("/Observation/$lastn", s.lastn)
	f.Get("/:type/:id", s.read)
	f.Put("/:type/:id", s.update)
	f.Delete("/:type/:id", s.delete)
	f.Get("/:type/:id/:ctype", s.compartmentSearch)
	f.Get("/:type", s.search)
	f.Post("/:type/_search", s.searchPost)
	f.Post("/:type", s.create)
	f.All("/*", func(c *fiber.Ctx) error { return errNotSupported(c.Method() + " " + c.Path()) })
}
