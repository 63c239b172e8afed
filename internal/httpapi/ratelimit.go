package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/limitstore"
)

// RateLimit configures one rate limiter: each client may make Max requests
// per Window (a fixed window), the next ones get 429 with Retry-After.
type RateLimit struct {
	// Max is how many requests a client may make per Window.
	Max int
	// Window is the length of one counting window (at least a second).
	Window time.Duration
	// SessionCookie, when set, names the cookie of a signed-in browser
	// (auth.SessionCookie): a request this server authenticated by it is
	// counted by the cookie's hash.
	SessionCookie string
}

// rateLimitMaxKeys bounds the clients one limiter remembers; past it, the
// expired counts are dropped, and if that is not enough, all of them (a
// flood of distinct clients then costs each one a fresh window, never
// memory).
const rateLimitMaxKeys = 100_000

// RateLimiter returns middleware that limits each client to cfg.Max
// requests per cfg.Window. Once an earlier handler of this server has
// authenticated the request, the client is its bearer token, or else its
// session cookie when cfg names one (counted by SHA-256); otherwise, and
// always before authentication, the client is its IP address: a made-up
// token or cookie must not buy a fresh count. Mounted before authenticate
// it limits by address, after it by credential. Refused requests get 429
// Too Many Requests with Retry-After (seconds) and an OperationOutcome
// (code throttled).
//
// It keeps its counts in memory, per process: with several vidda
// instances each counts the requests it sees.
func RateLimiter(cfg RateLimit) fiber.Handler {
	return limiter.New(limiter.Config{
		Max:          max(cfg.Max, 1),
		Expiration:   max(cfg.Window, time.Second),
		KeyGenerator: cfg.clientKey,
		LimitReached: func(c *fiber.Ctx) error {
			// limiter has set Retry-After already.
			c.Status(fiber.StatusTooManyRequests)
			c.Set(fiber.HeaderContentType, contentTypeFHIR)
			return c.Send(fhir.OperationOutcome(fhir.Issue{
				Severity: "error", Code: "throttled",
				Diagnostics: fmt.Sprintf("too many requests: at most %d per %s; retry after %s seconds",
					max(cfg.Max, 1), max(cfg.Window, time.Second), c.GetRespHeader(fiber.HeaderRetryAfter)),
			}))
		},
		Storage: limitstore.New(rateLimitMaxKeys),
	})
}

// clientKey names the client a request is counted against. Credentials are
// hashed so the limiter never holds a usable token.
func (cfg RateLimit) clientKey(c *fiber.Ctx) string {
	if principal(c) == nil {
		return "ip:" + c.IP()
	}
	if tok, err := auth.BearerToken(c.Get(fiber.HeaderAuthorization)); err == nil {
		return "token:" + digest(tok)
	}
	if cfg.SessionCookie != "" {
		if v := c.Cookies(cfg.SessionCookie); v != "" {
			return "session:" + digest(v)
		}
	}
	return "ip:" + c.IP()
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
