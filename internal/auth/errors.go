package auth

import "errors"

// Sentinel errors. Messages wrapping them are safe to show a client: they
// never contain a token, a key or a claim value from an unverified token.
var (
	// ErrUnauthenticated means the request carries no valid credentials
	// (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden means the principal is known but may not do this
	// (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrInvalidRole means a role name is not one of vidda's roles.
	ErrInvalidRole = errors.New("invalid role")
	// ErrInvalidScope means a string is not a SMART v1 or v2 resource scope
	// vidda understands.
	ErrInvalidScope = errors.New("invalid scope")
	// ErrInvalidTokenRequest means Mint was asked for a token it must not
	// issue (missing subject or patient, scope not allowed for the role,
	// lifetime out of range).
	ErrInvalidTokenRequest = errors.New("invalid token request")
)

// Reasons a token is refused before its claims are read; Verify turns them
// into ErrUnauthenticated with a fixed message.
var (
	errUnknownKey     = errors.New("unknown signing key")
	errNotAccessToken = errors.New("not an access token")
)
