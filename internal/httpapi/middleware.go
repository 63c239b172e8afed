package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vidda/vidda/internal/auth"
)

// Locals keys.
const (
	localRequestID = "vidda.rid"
	localPrincipal = "vidda.principal"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vidda_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// requestContext gives each request an id, a deadline for its database
// work, an access-log line and its metrics.
func (s *Server) requestContext(c *fiber.Ctx) error {
	start := time.Now()
	rid := c.Get(fiber.HeaderXRequestID)
	if rid == "" || len(rid) > 64 {
		rid = newRequestID()
	} else {
		rid = string([]byte(rid)) // fasthttp reuses the header buffer
	}
	c.Locals(localRequestID, rid)
	c.Set(fiber.HeaderXRequestID, rid)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)

	err := c.Next()
	if err != nil {
		// Write the error response now so the status below is the real one.
		if herr := s.handleError(c, err); herr != nil {
			s.log.ErrorContext(ctx, "http: write error response", "err", herr, "request_id", rid)
		}
	}
	status := c.Response().StatusCode()
	route := c.Route().Path
	elapsed := time.Since(start)
	// A metric keeps its label values: not fasthttp's reused buffer.
	method := strings.Clone(c.Method())
	s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(method, route).Observe(elapsed.Seconds())
	s.log.DebugContext(ctx, "http request", "request_id", rid, "method", method, "route", route,
		"status", status, "took", elapsed)
	return nil
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) logPanic(c *fiber.Ctx, e any) {
	s.log.ErrorContext(c.UserContext(), "http: panic", "request_id", c.Locals(localRequestID), "panic", fmt.Sprint(e))
}

// authenticate requires a valid bearer token, or else a browser's session
// cookie (see authenticateSession), and keeps the principal.
func (s *Server) authenticate(c *fiber.Ctx) error {
	authz := c.Get(fiber.HeaderAuthorization)
	if authz == "" && s.deps.Sessions != nil {
		if cookie := c.Cookies(auth.SessionCookie); cookie != "" {
			return s.authenticateSession(c, cookie)
		}
	}
	tok, err := auth.BearerToken(authz)
	if err != nil {
		return err
	}
	p, err := s.deps.Verifier.Verify(c.UserContext(), tok)
	if err != nil {
		return err
	}
	c.Locals(localPrincipal, p)
	return c.Next()
}

func principal(c *fiber.Ctx) *auth.Principal {
	p, _ := c.Locals(localPrincipal).(*auth.Principal)
	return p
}

func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// metricsHandler serves Prometheus metrics to admins and system clients.
func (s *Server) metricsHandler() fiber.Handler {
	adapted := adaptor.HTTPHandler(promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		p := principal(c)
		if p == nil || (p.Role != auth.RoleAdmin && p.Role != auth.RoleSystem) {
			return fmt.Errorf("metrics are for admin and system tokens: %w", auth.ErrForbidden)
		}
		return adapted(c)
	}
}
