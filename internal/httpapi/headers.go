package httpapi

import (
	"bytes"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Security headers (OWASP Secure Headers Project). Every response gets the
// ones that cost nothing: no MIME sniffing, no framing (X-Frame-Options for
// old browsers, CSP frame-ancestors for the rest), no Referer leaking the
// ids in our URLs. HTML pages get a strict CSP; they load only their own
// scripts and styles and talk to vidda itself (the visit page's WebSocket
// too).
const (
	cspDefault = "frame-ancestors 'none'"
	cspPage    = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self' wss: ws:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	// hstsValue is one year (RFC 6797); without includeSubDomains, which
	// would bind hosts vidda does not own.
	hstsValue = "max-age=31536000"
)

// securityHeaders sets the security headers of every response. Those that
// depend on the response (CSP by content type, Cache-Control) are set after
// the handler, and only where the handler set none of its own.
func (s *Server) securityHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if s.hsts {
		h.Set(fiber.HeaderStrictTransportSecurity, hstsValue)
	}
	err := c.Next()
	if len(h.Peek(fiber.HeaderContentSecurityPolicy)) == 0 {
		if bytes.HasPrefix(h.ContentType(), []byte(fiber.MIMETextHTML)) {
			h.Set(fiber.HeaderContentSecurityPolicy, cspPage)
		} else {
			h.Set(fiber.HeaderContentSecurityPolicy, cspDefault)
		}
	}
	// Health data must not stay in browser or proxy caches. What a handler
	// marks cacheable itself (static assets) keeps its own header, and the
	// public server metadata may be cached.
	if len(h.Peek(fiber.HeaderCacheControl)) == 0 && !publicMetadata(c.Path()) {
		h.Set(fiber.HeaderCacheControl, "no-store")
	}
	return err
}

// publicMetadata reports the paths that serve the same public document to
// everyone.
func publicMetadata(path string) bool {
	return path == "/fhir/metadata" || strings.HasPrefix(path, "/.well-known/")
}
