package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrUnavailable means a token could not be checked because something it
// depends on (the identity provider's keys) is not reachable yet; the
// client should retry (HTTP 503).
var ErrUnavailable = errors.New("temporarily unavailable")

// oidcAlgs are the JWS algorithms accepted from a provider: asymmetric
// only. "none" and the HMAC algorithms are never accepted: with HS256 a
// token could be "signed" with the provider's public key as the secret.
var oidcAlgs = []string{"RS256", "RS384", "ES256", "ES384", "EdDSA"} //nolint:gochecknoglobals // constant table

// maxProviderDocument caps what is read of a discovery document or JWKS.
const maxProviderDocument = 1 << 20

// discoveryBackoff bounds the wait between failed discovery attempts.
const (
	discoveryRetryMin = time.Second
	discoveryRetryMax = time.Minute
)

// OIDCVerifier verifies access tokens issued by an external OpenID Connect
// provider and maps their claims to the same Principal vidda's own tokens
// give. Its keys come from the provider's JWKS, found through discovery
// (OpenID Connect Discovery 1.0 §4) and kept by keyfunc/jwkset: fetched
// every RefreshInterval, and again (at most once per UnknownKIDRefresh)
// when a token names a key not in the cached set, which is how a key
// rotation is picked up.
//
// Run performs discovery and owns the refresh; until discovery succeeds,
// Verify fails with ErrUnavailable.
type OIDCVerifier struct {
	cfg    OIDCConfig
	log    *slog.Logger
	client *http.Client
	parser *jwt.Parser

	keys     atomic.Pointer[keyfunc.Keyfunc] // nil until discovery succeeded
	refetch  *rate.Limiter                   // admits JWKS fetches for unknown kids
	ready    chan struct{}                   // closed when keys is set
	verified *verifiedCache
}

// NewOIDCVerifier checks cfg and returns a verifier; it makes no request
// until Run.
func NewOIDCVerifier(cfg OIDCConfig, log *slog.Logger) (*OIDCVerifier, error) {
	if !cfg.Enabled() {
		return nil, errors.New("oidc: no issuer configured")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.HTTPTimeout, Transport: limitedTransport{http.DefaultTransport}}
	}
	return &OIDCVerifier{
		cfg:    cfg,
		log:    log,
		client: client,
		parser: jwt.NewParser(
			jwt.WithValidMethods(oidcAlgs),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
		ready:    make(chan struct{}),
		refetch:  rate.NewLimiter(rate.Every(cfg.UnknownKIDRefresh), 1),
		verified: newVerifiedCache(verifiedCacheSize, verifiedCacheTTL),
	}, nil
}

// Issuer is the issuer whose tokens this verifier checks.
func (v *OIDCVerifier) Issuer() string { return v.cfg.Issuer }

// Ready is closed once discovery succeeded and tokens can be verified.
func (v *OIDCVerifier) Ready() <-chan struct{} { return v.ready }

// Run discovers the provider's JWKS, retrying with backoff while the
// provider cannot be reached, then keeps the keys fresh until ctx ends. It
// returns nil when ctx ends.
func (v *OIDCVerifier) Run(ctx context.Context) error {
	for wait := discoveryRetryMin; ; wait = min(2*wait, discoveryRetryMax) {
		err := v.load(ctx)
		if err == nil {
			break
		}
		if v.stoppedWhileWaiting(ctx, err, wait) {
			return nil
		}
	}
	v.log.InfoContext(ctx, "oidc: provider keys loaded", "issuer", v.cfg.Issuer)
	<-ctx.Done()
	return nil
}

// load performs discovery and builds the key cache.
func (v *OIDCVerifier) load(ctx context.Context) error {
	jwksURI, err := v.discover(ctx)
	if err != nil {
		return err
	}
	return v.startKeys(ctx, jwksURI)
}

// stoppedWhileWaiting logs a failed load and waits before the next try; it
// reports whether ctx ended first.
func (v *OIDCVerifier) stoppedWhileWaiting(ctx context.Context, err error, wait time.Duration) bool {
	if ctx.Err() != nil {
		return true
	}
	v.log.WarnContext(ctx, "oidc: discovery failed, retrying", "issuer", v.cfg.Issuer, "err", err, "retry_in", wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true
	case <-t.C:
		return false
	}
}

// discover reads the provider's discovery document and returns its jwks_uri.
func (v *OIDCVerifier) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, v.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("oidc discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("oidc discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("oidc discovery: %s answered %s", u, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxProviderDocument)).Decode(&doc); err != nil {
		return "", fmt.Errorf("oidc discovery: read %s: %w", u, err)
	}
	// Discovery §4.3: the issuer in the document must be the one asked for.
	if doc.Issuer != v.cfg.Issuer {
		return "", fmt.Errorf("oidc discovery: the document's issuer %q is not %q", truncate(doc.Issuer), v.cfg.Issuer)
	}
	if err := checkProviderURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("oidc discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// startKeys builds the JWKS cache. Its refresh goroutine lives until ctx
// ends (jwkset ends it on ctx.Done).
func (v *OIDCVerifier) startKeys(ctx context.Context, jwksURI string) error {
	noErrorFirst := false // Run retries instead: a first fetch must work
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURI}, keyfunc.Override{
		Client:                    v.client,
		HTTPTimeout:               v.cfg.HTTPTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorFirst,
		RefreshInterval:           v.cfg.RefreshInterval,
		// jwkset's limiter makes a caller wait for its turn; keyFor's gate
		// refuses at once instead, so this one never holds anyone back.
		// Its wait deadline also bounds the refresh's request.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
		RateLimitWaitMax:  v.cfg.HTTPTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				v.log.WarnContext(ctx, "oidc: refreshing provider keys failed", "jwks_uri", u, "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("oidc keys: %w", err)
	}
	// Only signature keys: a key published for encryption ("use":"enc")
	// never verifies a token. Keys without "use" are signature keys too.
	kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: kf.Storage(), UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return fmt.Errorf("oidc keys: %w", err)
	}
	v.keys.Store(&kf)
	close(v.ready)
	return nil
}

// Verify checks an access token of the provider and returns who it speaks
// for: signature by a key of the provider's JWKS with an allowed algorithm,
// iss, aud, exp (required), nbf and iat with Leeway, then the claim mapping
// (see principal). Every failure wraps ErrUnauthenticated with a message
// fit for the client, or ErrUnavailable before discovery succeeded.
func (v *OIDCVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	now := v.cfg.Now()
	if p, ok := v.verified.get(token, now); ok {
		return p, nil
	}
	p, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.verified.put(token, p, now)
	return p, nil
}

func (v *OIDCVerifier) verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, unauthenticated("missing token")
	}
	if len(token) > maxTokenLen {
		return nil, unauthenticated("malformed token")
	}
	kf := v.keys.Load()
	if kf == nil {
		return nil, fmt.Errorf("%w: the identity provider's keys are not loaded yet", ErrUnavailable)
	}
	c := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, c, v.keyFor(ctx, *kf)); err != nil {
		return nil, unauthenticated(oidcReason(err))
	}
	return v.principal(c)
}

// keyFor finds the key a token names. A kid not in the cached set makes
// keyfunc fetch the JWKS again, which is how a rotated-in key is found;
// the refetch gate admits one such fetch per UnknownKIDRefresh and refuses
// the other unknown kids at once, so a flood of forged tokens neither
// reaches the provider nor waits.
func (v *OIDCVerifier) keyFor(ctx context.Context, kf keyfunc.Keyfunc) jwt.Keyfunc {
	inner := kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		if kid, ok := t.Header["kid"].(string); ok && !knownKID(ctx, kf, kid) && !v.refetch.Allow() {
			return nil, jwkset.ErrKeyNotFound
		}
		return inner(t)
	}
}

// knownKID reports whether the cached JWKS holds kid, without fetching.
func knownKID(ctx context.Context, kf keyfunc.Keyfunc, kid string) bool {
	keys, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return false
	}
	for _, k := range keys {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// oidcReason is reason, knowing keyfunc's errors.
func oidcReason(err error) string {
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		return "unknown signing key"
	}
	if errors.Is(err, keyfunc.ErrKeyfunc) && !errors.Is(err, jwt.ErrTokenMalformed) {
		return "invalid signature"
	}
	return reason(err)
}

// limitedTransport caps the bodies of the provider's answers.
type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err //nolint:wrapcheck // http.Client wraps it
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, maxProviderDocument), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
