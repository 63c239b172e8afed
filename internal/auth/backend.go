package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html):
// a registered system client posts a client_credentials grant with a JWT
// client assertion (RFC 7523) signed by one of its keys, and gets a
// short-lived access token with the system/ scopes it asked for and was
// registered with.

// assertionType is the only client_assertion_type SMART allows.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLife is how far in the future an assertion's exp may be
// (SMART: "no more than five minutes in the future").
const maxAssertionLife = 5 * time.Minute

// OAuthError is a token endpoint error response (RFC 6749 §5.2).
type OAuthError struct {
	// Code is the error code: invalid_request, invalid_client,
	// invalid_grant, unauthorized_client, unsupported_grant_type or
	// invalid_scope.
	Code string `json:"error"`
	// Description is a human-readable reason, safe to show the client.
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// Status is the HTTP status of the error: 401 for invalid_client, 400
// otherwise.
func (e *OAuthError) Status() int {
	if e.Code == "invalid_client" {
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}

func oauthErr(code, format string, args ...any) *OAuthError {
	return &OAuthError{Code: code, Description: fmt.Sprintf(format, args...)}
}

// TokenResponse is a successful token endpoint answer.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// BackendConfig tunes the token endpoint.
type BackendConfig struct {
	// TokenURL is the endpoint's absolute URL: the aud every assertion
	// must name.
	TokenURL string
	// TokenTTL is the life of the access tokens issued; default 5 minutes.
	TokenTTL time.Duration
	// JWKSRefresh is how long a client's fetched JWK Set is trusted before
	// it is fetched again; default 5 minutes. An unknown kid fetches it
	// again at once, at most once a minute.
	JWKSRefresh time.Duration
	// HTTPClient fetches clients' JWK Sets; default a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *BackendConfig) defaults() {
	if c.TokenTTL == 0 {
		c.TokenTTL = 5 * time.Minute
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = 5 * time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Backend is the token endpoint of SMART Backend Services.
type Backend struct {
	clients *Clients
	keys    *KeyStore
	cfg     BackendConfig
	log     *slog.Logger

	mu        sync.Mutex
	sets      map[string]*clientKeys // by client id
	lastSweep time.Time
}

// clientKeys is a client's JWK Set as last read.
type clientKeys struct {
	source  string // the inline JWKS or the URL it came from
	kf      keyfunc.Keyfunc
	fetched time.Time
}

// NewBackend returns the token endpoint issuing tokens from keys to the
// clients registered in clients.
func NewBackend(clients *Clients, keys *KeyStore, cfg BackendConfig, log *slog.Logger) *Backend {
	cfg.defaults()
	return &Backend{clients: clients, keys: keys, cfg: cfg, log: log, sets: map[string]*clientKeys{}}
}

// Exchange answers a token request's form. Refusals are *OAuthError;
// other errors are the server's own failures.
func (b *Backend) Exchange(ctx context.Context, form url.Values) (*TokenResponse, error) {
	if g := form.Get("grant_type"); g != "client_credentials" {
		if g == "" {
			return nil, oauthErr("invalid_request", "grant_type is required")
		}
		return nil, oauthErr("unsupported_grant_type", "only client_credentials is supported")
	}
	if form.Get("client_assertion_type") != assertionType {
		return nil, oauthErr("invalid_request", "client_assertion_type must be %s", assertionType)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" || len(assertion) > maxTokenLen {
		return nil, oauthErr("invalid_request", "client_assertion is required (a signed JWT)")
	}
	requested := strings.Fields(form.Get("scope"))
	if len(requested) == 0 {
		return nil, oauthErr("invalid_request", "scope is required")
	}
	client, claims, err := b.verifyAssertion(ctx, assertion)
	if err != nil {
		return nil, err
	}
	granted, err := grant(client, requested)
	if err != nil {
		return nil, err
	}
	fresh, err := b.clients.rememberJTI(ctx, client.ID, claims.ID, claims.ExpiresAt.Time)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, oauthErr("invalid_client", "the assertion's jti was used before")
	}
	b.sweep(ctx)
	tok, err := b.keys.Mint(ctx, TokenRequest{
		Subject: client.ID, Role: RoleSystem, ClientID: client.ID, Scopes: granted, TTL: b.cfg.TokenTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("token for client %s: %w", client.ID, err)
	}
	return &TokenResponse{
		AccessToken: tok, TokenType: "bearer", ExpiresIn: int(b.cfg.TokenTTL / time.Second), Scope: strings.Join(granted, " "),
	}, nil
}

// verifyAssertion checks the client assertion: iss = sub = a registered
// client, signed RS384 or ES384 by one of its keys, aud = the token URL, a
// jti, and exp at most five minutes ahead.
func (b *Backend) verifyAssertion(ctx context.Context, assertion string) (*Client, *jwt.RegisteredClaims, error) {
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &unverified); err != nil {
		return nil, nil, oauthErr("invalid_client", "client_assertion is not a JWT")
	}
	id := unverified.Issuer
	if id == "" || id != unverified.Subject {
		return nil, nil, oauthErr("invalid_client", "the assertion's iss and sub must both be the client id")
	}
	client, err := b.clients.Get(ctx, id)
	if errors.Is(err, ErrUnknownClient) {
		return nil, nil, oauthErr("invalid_client", "client %q is not registered", truncate(id))
	}
	if err != nil {
		return nil, nil, err
	}
	now := b.cfg.Now()
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS384", "ES384"}),
		jwt.WithAudience(b.cfg.TokenURL),
		jwt.WithIssuer(client.ID),
		jwt.WithSubject(client.ID),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c jwt.RegisteredClaims
	_, err = parser.ParseWithClaims(assertion, &c, func(t *jwt.Token) (any, error) {
		kf, err := b.keyfuncFor(ctx, client, false)
		if err != nil {
			return nil, err
		}
		key, err := kf.Keyfunc(t)
		if err != nil && client.JWKSURL != "" {
			// The client may have rotated its keys: read them again.
			if kf, err = b.keyfuncFor(ctx, client, true); err == nil {
				key, err = kf.Keyfunc(t)
			}
		}
		return key, err
	})
	if err != nil {
		return nil, nil, oauthErr("invalid_client", "client_assertion refused: %s", assertionReason(err))
	}
	if c.ID == "" {
		return nil, nil, oauthErr("invalid_client", "the assertion needs a jti")
	}
	if c.ExpiresAt.After(now.Add(maxAssertionLife + 30*time.Second)) {
		return nil, nil, oauthErr("invalid_client", "the assertion's exp is more than five minutes ahead")
	}
	return client, &c, nil
}

func assertionReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud must be the token endpoint URL"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "no registered key of the client verifies it (alg must be RS384 or ES384, kid one of its keys)"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "exp is required"
	}
	return "malformed or invalid"
}

// keyfuncFor returns the client's keys, reading its JWK Set URL again when
// the copy is stale or refetch asks (at most once a minute).
func (b *Backend) keyfuncFor(ctx context.Context, c *Client, refetch bool) (keyfunc.Keyfunc, error) {
	source := string(c.JWKS)
	if c.JWKSURL != "" {
		source = c.JWKSURL
	}
	now := b.cfg.Now()
	b.mu.Lock()
	ck := b.sets[c.ID]
	b.mu.Unlock()
	if ck != nil && ck.source == source {
		age := now.Sub(ck.fetched)
		if c.JWKSURL == "" || (age < b.cfg.JWKSRefresh && (!refetch || age < time.Minute)) {
			return ck.kf, nil
		}
	}
	raw := c.JWKS
	if c.JWKSURL != "" {
		var err error
		if raw, err = b.fetchJWKS(ctx, c.JWKSURL); err != nil {
			return nil, err
		}
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("client %s: JWK Set: %w", c.ID, err)
	}
	b.mu.Lock()
	b.sets[c.ID] = &clientKeys{source: source, kf: kf, fetched: now}
	b.mu.Unlock()
	return kf, nil
}

func (b *Backend) fetchJWKS(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks %s: status %d", u, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", u, err)
	}
	return raw, nil
}

// grant keeps the requested scopes the client is registered for. A
// requested scope is granted when one registered scope covers its type and
// permissions; none granted is invalid_scope.
func grant(c *Client, requested []string) ([]string, error) {
	var allowed []Scope
	for _, s := range c.Scopes {
		if sc, err := ParseScope(s); err == nil {
			allowed = append(allowed, sc)
		}
	}
	var granted []string
	for _, s := range requested {
		sc, err := ParseScope(s)
		if err != nil || sc.Context != ContextSystem {
			continue
		}
		for _, a := range allowed {
			if (a.ResourceType == "*" || a.ResourceType == sc.ResourceType) && a.Perms.Has(sc.Perms) {
				granted = append(granted, s)
				break
			}
		}
	}
	if len(granted) == 0 {
		return nil, oauthErr("invalid_scope", "none of the requested scopes is granted to this client (registered: %s)", strings.Join(c.Scopes, " "))
	}
	return granted, nil
}

// sweep forgets expired assertion ids, at most once a minute.
func (b *Backend) sweep(ctx context.Context) {
	now := b.cfg.Now()
	b.mu.Lock()
	due := now.Sub(b.lastSweep) > time.Minute
	if due {
		b.lastSweep = now
	}
	b.mu.Unlock()
	if !due {
		return
	}
	if err := b.clients.sweepJTIs(ctx, now); err != nil {
		b.log.WarnContext(ctx, "token endpoint: sweep assertion ids", "err", err)
	}
}
