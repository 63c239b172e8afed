package httpapi

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// TokenIssuer answers SMART Backend Services token requests
// (auth.Backend).
type TokenIssuer interface {
	Exchange(ctx context.Context, form url.Values) (*auth.TokenResponse, error)
}

// tokenPath is the token endpoint, relative to the base URL.
const tokenPath = "/auth/token" //nolint:gosec // a URL path, not a credential

// TokenURL is the token endpoint's absolute URL for a server with these
// settings: the audience client assertions must name.
func (c Config) TokenURL() string {
	base := c.BaseURL
	if base == "" {
		base = c.Scheme() + "://" + c.Addr
	}
	return base + tokenPath
}

// smartRoutes serves the SMART discovery document and, with an issuer, the
// token endpoint. Both are public: the client assertion is the credential.
// Token requests are limited per client IP.
func (s *Server) smartRoutes() {
	s.app.Get("/.well-known/smart-configuration", s.smartConfiguration)
	if s.deps.Tokens == nil {
		return
	}
	s.app.Post(tokenPath, RateLimiter(RateLimit{Max: 120, Window: time.Minute}), s.token)
}

// smartConfiguration is the SMART discovery document
// (https://hl7.org/fhir/smart-app-launch/conformance.html), saying what
// vidda's token endpoint does: client_credentials with private_key_jwt.
func (s *Server) smartConfiguration(c *fiber.Ctx) error {
	doc := fiber.Map{
		"capabilities":     []string{"client-confidential-asymmetric", "permission-v1", "permission-v2"},
		"scopes_supported": []string{"system/*.rs", "system/*.read", "system/Patient.rs", "system/Observation.rs"},
	}
	if s.deps.Tokens != nil {
		doc["token_endpoint"] = s.base + tokenPath
		doc["grant_types_supported"] = []string{"client_credentials"}
		doc["token_endpoint_auth_methods_supported"] = []string{"private_key_jwt"}
		doc["token_endpoint_auth_signing_alg_values_supported"] = []string{"RS384", "ES384"}
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.JSON(doc)
}

// token is the token endpoint (RFC 6749 §4.4 with an RFC 7523 client
// assertion). Errors are OAuth error objects, not OperationOutcomes.
func (s *Server) token(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Pragma", "no-cache")
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil || !isForm(c) {
		return c.Status(fiber.StatusBadRequest).JSON(&auth.OAuthError{
			Code: "invalid_request", Description: "send the token request as application/x-www-form-urlencoded",
		})
	}
	resp, err := s.deps.Tokens.Exchange(c.UserContext(), form)
	var oe *auth.OAuthError
	if errors.As(err, &oe) {
		return c.Status(oe.Status()).JSON(oe)
	}
	if err != nil {
		s.log.ErrorContext(c.UserContext(), "token endpoint", "request_id", c.Locals(localRequestID), "err", err)
		return c.Status(fiber.StatusInternalServerError).JSON(&auth.OAuthError{Code: "server_error", Description: "the token could not be issued; try again"})
	}
	return c.JSON(resp)
}
