package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrUnknownClient means no enabled client has the id.
var ErrUnknownClient = errors.New("unknown client")

// Client is a registered SMART Backend Services client: a system that
// obtains access tokens with a signed client assertion.
type Client struct {
	ID   string
	Name string
	// Scopes are the system/ scopes it may be granted.
	Scopes []string
	// JWKS is its public JWK Set inline, or JWKSURL where it serves one
	// (exactly one of the two).
	JWKS     json.RawMessage
	JWKSURL  string
	Disabled bool
	Created  time.Time
}

// Validate checks a client before it is registered.
func (c *Client) Validate() error {
	if c.ID == "" || len(c.ID) > 128 || strings.ContainsAny(c.ID, " \t\r\n") {
		return fmt.Errorf("%w: client id must be 1-128 characters without spaces", ErrInvalidTokenRequest)
	}
	if len(c.Scopes) == 0 {
		return fmt.Errorf("%w: a client needs at least one system/ scope", ErrInvalidTokenRequest)
	}
	for _, s := range c.Scopes {
		sc, err := ParseScope(s)
		if err != nil {
			return err
		}
		if sc.Context != ContextSystem {
			return fmt.Errorf("%w: %s: a backend client gets system/ scopes only", ErrInvalidScope, truncate(s))
		}
	}
	switch {
	case (len(c.JWKS) == 0) == (c.JWKSURL == ""):
		return fmt.Errorf("%w: give the client's public keys inline or as a URL, not both", ErrInvalidTokenRequest)
	case c.JWKSURL != "":
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%w: jwks url %q is not an http(s) URL", ErrInvalidTokenRequest, truncate(c.JWKSURL))
		}
	default:
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(c.JWKS, &set); err != nil || len(set.Keys) == 0 {
			return fmt.Errorf("%w: the inline JWKS must be a JWK Set with at least one key", ErrInvalidTokenRequest)
		}
	}
	return nil
}

// Clients keeps the registered clients in PostgreSQL.
type Clients struct {
	pool *pgxpool.Pool
}

// NewClients returns the client registry over pool.
func NewClients(pool *pgxpool.Pool) *Clients { return &Clients{pool: pool} }

// Add registers c, or replaces the client with its id (new keys, scopes or
// name), enabling it again.
func (r *Clients) Add(ctx context.Context, c *Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var jwks *string
	if len(c.JWKS) > 0 {
		s := string(c.JWKS)
		jwks = &s
	}
	var jwksURL *string
	if c.JWKSURL != "" {
		jwksURL = &c.JWKSURL
	}
	_, err := r.pool.Exec(ctx, `INSERT INTO auth_client (client_id, name, scopes, jwks, jwks_url, created_at)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (client_id) DO UPDATE SET name = $2, scopes = $3, jwks = $4, jwks_url = $5, disabled = false`,
		c.ID, c.Name, c.Scopes, jwks, jwksURL)
	if err != nil {
		return fmt.Errorf("add client %s: %w", c.ID, err)
	}
	return nil
}

// Disable stops id from obtaining tokens; tokens already issued run out
// within their few minutes.
func (r *Clients) Disable(ctx context.Context, id string) error {
	tag, err := r.pool.Exec(ctx, `UPDATE auth_client SET disabled = true WHERE client_id = $1`, id)
	if err != nil {
		return fmt.Errorf("disable client %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("disable client %s: %w", truncate(id), ErrUnknownClient)
	}
	return nil
}

// List returns every client, enabled or not, by id.
func (r *Clients) List(ctx context.Context) ([]Client, error) {
	rows, err := r.pool.Query(ctx, `SELECT client_id, name, scopes, coalesce(jwks, ''), coalesce(jwks_url, ''), disabled, created_at
		FROM auth_client ORDER BY client_id`)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanClient)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// Get returns the enabled client id, or ErrUnknownClient.
func (r *Clients) Get(ctx context.Context, id string) (*Client, error) {
	rows, err := r.pool.Query(ctx, `SELECT client_id, name, scopes, coalesce(jwks, ''), coalesce(jwks_url, ''), disabled, created_at
		FROM auth_client WHERE client_id = $1 AND NOT disabled`, id)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", truncate(id), err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanClient)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUnknownClient
	}
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", truncate(id), err)
	}
	return &c, nil
}

func scanClient(row pgx.CollectableRow) (Client, error) {
	var c Client
	var jwks string
	err := row.Scan(&c.ID, &c.Name, &c.Scopes, &jwks, &c.JWKSURL, &c.Disabled, &c.Created)
	if jwks != "" {
		c.JWKS = json.RawMessage(jwks)
	}
	return c, err
}

// rememberJTI records an assertion id until it expires; false: it was
// seen before (a replay). Expired ids are swept now and then.
func (r *Clients) rememberJTI(ctx context.Context, client, jti string, exp time.Time) (bool, error) {
	tag, err := r.pool.Exec(ctx, `INSERT INTO auth_client_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, client, jti, exp)
	if err != nil {
		return false, fmt.Errorf("assertion id: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// sweepJTIs forgets assertion ids whose assertions have expired.
func (r *Clients) sweepJTIs(ctx context.Context, now time.Time) error {
	if _, err := r.pool.Exec(ctx, `DELETE FROM auth_client_jti WHERE expires_at < $1`, now); err != nil {
		return fmt.Errorf("sweep assertion ids: %w", err)
	}
	return nil
}
