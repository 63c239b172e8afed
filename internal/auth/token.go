package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// tokenType is the JOSE typ of vidda's access tokens (RFC 9068 §2.1). Verify
// requires it, so another JWT signed with the same keys (a visit join token,
// say) can never pass for an access token.
const tokenType = "at+jwt"

// maxTokenLen bounds what Verify will parse; vidda's tokens are well under
// 1 KiB.
const maxTokenLen = 8 << 10

// TokenRequest says what token Mint should issue.
type TokenRequest struct {
	// Subject becomes sub; required.
	Subject string
	// Role becomes role; required.
	Role Role
	// PatientID becomes patient; required for the patient role and for
	// any patient/ scope.
	PatientID string
	// PractitionerID becomes practitioner; optional.
	PractitionerID string
	// ClientID becomes client_id; optional.
	ClientID string
	// Scopes become scope, space separated; empty means the role's
	// DefaultScopes. Each must parse and suit the role (see Decide).
	Scopes []string
	// TTL is the token's lifetime; 0 means KeyConfig.DefaultTokenTTL, and
	// it may not exceed KeyConfig.MaxTokenTTL.
	TTL time.Duration
}

// claims is the JWT payload vidda mints and accepts.
type claims struct {
	jwt.RegisteredClaims
	Role         string `json:"role"`
	Scope        string `json:"scope"`
	Patient      string `json:"patient,omitempty"`
	Practitioner string `json:"practitioner,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
}

// Mint issues a signed access token for req. Request errors wrap
// ErrInvalidTokenRequest. When the database holds no current key yet, Mint
// creates one (as EnsureCurrent).
func (s *KeyStore) Mint(ctx context.Context, req TokenRequest) (string, error) {
	c, err := s.claimsFor(req)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	sg, err := s.currentSigner(ctx)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = sg.kid
	tok.Header["typ"] = tokenType
	signed, err := tok.SignedString(sg.priv)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return signed, nil
}

// claimsFor checks req and builds the payload.
func (s *KeyStore) claimsFor(req TokenRequest) (claims, error) {
	bad := func(format string, args ...any) (claims, error) {
		return claims{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTokenRequest}, args...)...)
	}
	if req.Subject == "" {
		return bad("subject is required")
	}
	if _, err := ParseRole(string(req.Role)); err != nil {
		return bad("%w", err)
	}
	if req.Role == RolePatient && req.PatientID == "" {
		return bad("a patient token needs a patient id")
	}
	ttl := req.TTL
	switch {
	case ttl == 0:
		ttl = s.cfg.DefaultTokenTTL
	case ttl < 0:
		return bad("negative lifetime")
	case ttl > s.cfg.MaxTokenTTL:
		return bad("lifetime %s exceeds the maximum %s", ttl, s.cfg.MaxTokenTTL)
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = req.Role.DefaultScopes()
	}
	row := rowFor(req.Role)
	for _, str := range scopes {
		sc, err := ParseScope(str)
		if err != nil {
			return bad("%w", err)
		}
		if row.limitFor(sc.Context) == deny {
			return bad("scope %s is not allowed for role %s", sc, req.Role)
		}
		if sc.Context == ContextPatient && req.PatientID == "" {
			return bad("scope %s needs a patient id", sc)
		}
	}
	now := s.cfg.Now()
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   req.Subject,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Role:         string(req.Role),
		Scope:        strings.Join(scopes, " "),
		Patient:      req.PatientID,
		Practitioner: req.PractitionerID,
		ClientID:     req.ClientID,
	}, nil
}

// Verify checks an access token and returns who it speaks for. It accepts
// only alg EdDSA with typ at+jwt, signed by a known key still inside its
// window, within exp/nbf/iat (30 s leeway), with vidda's issuer and
// audience, a subject, a valid role (a patient token with a patient) and
// parseable scopes. Every failure wraps ErrUnauthenticated with a message
// fit for the client; none contains the token.
func (s *KeyStore) Verify(ctx context.Context, token string) (*Principal, error) {
	now := s.cfg.Now()
	if p, ok := s.verified.get(token, now); ok {
		return p, nil
	}
	p, err := s.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	s.verified.put(token, p, now)
	return p, nil
}

func (s *KeyStore) verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, unauthenticated("missing token")
	}
	if len(token) > maxTokenLen {
		return nil, unauthenticated("malformed token")
	}
	var c claims
	_, err := s.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused every other alg; this keeps the
		// check next to the key it guards.
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, jwt.ErrTokenSignatureInvalid
		}
		if typ, _ := t.Header["typ"].(string); !isAccessTokenType(typ) {
			return nil, errNotAccessToken
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKey
		}
		return s.verificationKey(ctx, kid)
	})
	if err != nil {
		return nil, unauthenticated(reason(err))
	}
	return c.principal()
}

func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, tokenType) || strings.EqualFold(typ, "application/"+tokenType)
}

// reason turns a parse failure into a fixed, client-safe message; the
// library's own messages may quote attacker-chosen header values.
func reason(err error) string {
	switch {
	case errors.Is(err, errUnknownKey):
		return "unknown signing key"
	case errors.Is(err, errNotAccessToken):
		return "not an access token"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing required claim"
	}
	return "invalid token"
}

// principal checks the claims the parser does not know about.
func (c *claims) principal() (*Principal, error) {
	if c.Subject == "" {
		return nil, unauthenticated("missing subject")
	}
	role, err := ParseRole(c.Role)
	if err != nil {
		return nil, unauthenticated("invalid role")
	}
	if role == RolePatient && c.Patient == "" {
		return nil, unauthenticated("patient token without patient")
	}
	fields := strings.Fields(c.Scope)
	scopes := make([]Scope, 0, len(fields))
	for _, f := range fields {
		sc, err := ParseScope(f)
		if err != nil {
			return nil, unauthenticated("invalid scope")
		}
		scopes = append(scopes, sc)
	}
	return &Principal{
		Subject:        c.Subject,
		Role:           role,
		Scopes:         scopes,
		PatientID:      c.Patient,
		PractitionerID: c.Practitioner,
		ClientID:       c.ClientID,
		TokenID:        c.ID,
		ExpiresAt:      c.ExpiresAt.Time, // WithExpirationRequired: never nil here
	}, nil
}

func unauthenticated(msg string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, msg)
}

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive, RFC 6750 §2.1). A missing
// header, another scheme or a malformed token wraps ErrUnauthenticated.
func BearerToken(authorization string) (string, error) {
	const prefix = "bearer "
	h := strings.TrimSpace(authorization)
	if h == "" {
		return "", unauthenticated("missing bearer token")
	}
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", unauthenticated("authorization scheme must be Bearer")
	}
	tok := strings.TrimSpace(h[len(prefix):])
	if tok == "" || !isB64Token(tok) {
		return "", unauthenticated("malformed bearer token")
	}
	return tok, nil
}

// isB64Token matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := range len(body) {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
