package httpapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// SessionVerifier resolves a browser's session cookie (auth.SessionCookie)
// to its live session; *auth.Sessions is one. Errors for unknown, ended or
// malformed sessions wrap auth.ErrUnauthenticated.
type SessionVerifier interface {
	VerifySession(ctx context.Context, token string) (*auth.Session, error)
}

// Pages are server-rendered pages mounted on the same app (internal/web);
// they bring their own routes.
type Pages interface {
	Mount(r fiber.Router)
}

// HeaderCSRFToken carries a session's CSRF token on requests that are not
// forms (fetch, XHR).
const HeaderCSRFToken = "X-CSRF-Token" //nolint:gosec // G101: a header's name, not a credential

// authenticateSession is authenticate for a request with a session cookie
// and no Authorization header: the session's principal stands in for a
// token's. A cookie is sent by the browser on its own, so a request that
// may change state (anything but GET, HEAD, OPTIONS) must also carry the
// session's synchronizer token, in X-CSRF-Token or form field csrf
// (OWASP CSRF Prevention Cheat Sheet). Bearer requests need none: no
// browser attaches a bearer token by itself.
func (s *Server) authenticateSession(c *fiber.Ctx, cookie string) error {
	sess, err := s.deps.Sessions.VerifySession(c.UserContext(), cookie)
	if err != nil {
		return err
	}
	if changesState(c.Method()) {
		tok := c.Get(HeaderCSRFToken)
		if tok == "" && isForm(c) {
			tok = c.FormValue("csrf")
		}
		if !sess.CheckCSRF(tok) {
			return fmt.Errorf("%w: a request authenticated by the session cookie needs the session's CSRF token (header %s)",
				auth.ErrForbidden, HeaderCSRFToken)
		}
	}
	c.Locals(localPrincipal, sess.Principal)
	return c.Next()
}

func changesState(method string) bool {
	switch method {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return false
	}
	return true
}

// isForm reports an HTML form body, the only kind a csrf field is read
// from (FHIR bodies are JSON).
func isForm(c *fiber.Ctx) bool {
	mt, _, _ := strings.Cut(c.Get(fiber.HeaderContentType), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == fiber.MIMEApplicationForm || mt == fiber.MIMEMultipartForm
}
