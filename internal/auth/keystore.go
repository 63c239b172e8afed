package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/db"
)

const (
	// algEdDSA is the only JWT alg vidda signs with or accepts.
	algEdDSA = "EdDSA"
	// lockSigningKeys is the PostgreSQL advisory lock that serialises key
	// rotation between vidda processes ("vidd" "a" 0x000001).
	lockSigningKeys int64 = 0x76696464_61000001
	// reloadInterval rate-limits reloads caused by unknown kids, so a flood
	// of forged tokens costs the database at most one query a second.
	reloadInterval = time.Second
)

// KeyStore keeps vidda's Ed25519 signing keys in PostgreSQL (table
// auth_signing_key), mints tokens with the current key and verifies tokens
// against every key still inside its verification window. Verification keys
// are cached in memory; a token naming an unknown kid triggers a reload,
// at most once per second. It is safe for concurrent use, and several
// processes may share one database.
type KeyStore struct {
	pool   *pgxpool.Pool
	cfg    KeyConfig
	log    *slog.Logger
	parser *jwt.Parser

	keys atomic.Pointer[keySet] // nil until the first load

	// sem admits one reload at a time; lastReload is guarded by it.
	sem        chan struct{}
	lastReload time.Time
	reloads    atomic.Int64 // database loads, for tests

	verified *verifiedCache
}

// keySet is an immutable snapshot of the keys, swapped whole on reload.
type keySet struct {
	verify   map[string]verifyKey
	signer   *signer // nil: no current key
	loadedAt time.Time
}

type verifyKey struct {
	pub        ed25519.PublicKey
	validUntil time.Time // zero while the key is current
}

type signer struct {
	kid     string
	priv    ed25519.PrivateKey
	created time.Time
}

// NewKeyStore returns a KeyStore on pool; it touches the database only when
// first used. Zero fields of cfg take their defaults.
func NewKeyStore(pool *pgxpool.Pool, cfg KeyConfig, log *slog.Logger) *KeyStore {
	cfg = cfg.withDefaults()
	return &KeyStore{
		pool:     pool,
		cfg:      cfg,
		log:      log,
		verified: newVerifiedCache(verifiedCacheSize, verifiedCacheTTL),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{algEdDSA}),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithStrictDecoding(),
		),
		sem: make(chan struct{}, 1),
	}
}

// Run keeps a current key until ctx ends: it calls EnsureCurrent now and
// every CheckEvery, which also picks up keys other processes rotated in and
// deletes keys past their window. Failures are logged and retried at the
// next tick. It returns nil when ctx ends.
func (s *KeyStore) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	for {
		if err := s.EnsureCurrent(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "signing key check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EnsureCurrent makes sure there is a current signing key younger than
// RotateAfter, creating one when there is none or it is too old, and
// deletes retired keys whose verification window has passed. Processes
// calling it at once create one key between them: the work runs under a
// PostgreSQL advisory lock.
func (s *KeyStore) EnsureCurrent(ctx context.Context) error {
	return s.rotate(ctx, false)
}

// Rotate retires the current key (it keeps verifying for RotateAfter +
// MaxTokenTTL) and makes a new one current.
func (s *KeyStore) Rotate(ctx context.Context) error {
	return s.rotate(ctx, true)
}

func (s *KeyStore) rotate(ctx context.Context, force bool) error {
	op := "ensure signing key"
	if force {
		op = "rotate signing key"
	}
	now := s.cfg.Now()
	var created string
	var pruned int64
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockSigningKeys); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// Read after the lock: under READ COMMITTED each statement sees what
		// the previous holder committed.
		var current *time.Time
		if err := tx.QueryRow(ctx,
			`SELECT max(created_at) FROM auth_signing_key WHERE retired_at IS NULL`).Scan(&current); err != nil {
			return fmt.Errorf("read current key: %w", err)
		}
		if force || current == nil || now.Sub(*current) >= s.cfg.RotateAfter {
			kid, err := insertKey(ctx, tx, now)
			if err != nil {
				return err
			}
			created = kid
		}
		tag, err := tx.Exec(ctx, `DELETE FROM auth_signing_key WHERE retired_at < $1`,
			now.Add(-s.cfg.verifyWindow()))
		if err != nil {
			return fmt.Errorf("delete expired keys: %w", err)
		}
		pruned = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if created != "" {
		s.log.InfoContext(ctx, "signing key created", "kid", created)
	}
	if pruned > 0 {
		s.log.InfoContext(ctx, "expired signing keys deleted", "count", pruned)
	}
	if _, err := s.refresh(ctx, func(*keySet, time.Time) bool { return true }); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// insertKey retires the current key, dropping its private half, and stores
// a new current one.
func insertKey(ctx context.Context, tx pgx.Tx, now time.Time) (string, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	if _, err := tx.Exec(ctx,
		`UPDATE auth_signing_key SET retired_at = $1, private_key = NULL WHERE retired_at IS NULL`, now); err != nil {
		return "", fmt.Errorf("retire current key: %w", err)
	}
	kid := thumbprint(pub)
	if _, err := tx.Exec(ctx,
		`INSERT INTO auth_signing_key (kid, algorithm, private_key, public_key, created_at) VALUES ($1, $2, $3, $4, $5)`,
		kid, algEdDSA, privDER, pubDER, now); err != nil {
		return "", fmt.Errorf("insert key: %w", err)
	}
	return kid, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key (RFC
// 8037 OKP form), used as its kid: stable, unique, and what a JWKS would
// publish.
func thumbprint(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// refresh reloads the keys from the database when need says so, one caller
// at a time; a caller that waited for another's reload usually finds need
// satisfied and skips the query. It returns the newest snapshot (possibly
// nil) also when the reload fails.
func (s *KeyStore) refresh(ctx context.Context, need func(ks *keySet, lastReload time.Time) bool) (*keySet, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return s.keys.Load(), fmt.Errorf("load signing keys: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	ks := s.keys.Load()
	if !need(ks, s.lastReload) {
		return ks, nil
	}
	now := s.cfg.Now()
	s.lastReload = now // also after a failure: a failing database is not hammered either
	s.reloads.Add(1)
	fresh, err := s.load(ctx, now)
	if err != nil {
		return ks, fmt.Errorf("load signing keys: %w", err)
	}
	s.keys.Store(fresh)
	return fresh, nil
}

// load reads every key still inside its verification window.
func (s *KeyStore) load(ctx context.Context, now time.Time) (*keySet, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT kid, algorithm, public_key,
		       CASE WHEN retired_at IS NULL THEN private_key END,
		       created_at, retired_at
		FROM auth_signing_key`)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	ks := &keySet{verify: map[string]verifyKey{}, loadedAt: now}
	for rows.Next() {
		var (
			kid, alg        string
			pubDER, privDER []byte
			created         time.Time
			retired         *time.Time
		)
		if err := rows.Scan(&kid, &alg, &pubDER, &privDER, &created, &retired); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		if alg != algEdDSA {
			s.log.WarnContext(ctx, "signing key skipped: unsupported algorithm", "kid", kid, "algorithm", alg)
			continue
		}
		pub, err := parsePublic(pubDER)
		if err != nil {
			s.log.WarnContext(ctx, "signing key skipped: bad public key", "kid", kid, "err", err)
			continue
		}
		k := verifyKey{pub: pub}
		if retired != nil {
			k.validUntil = retired.Add(s.cfg.verifyWindow())
			if now.After(k.validUntil) {
				continue
			}
		} else if ks.signer == nil || created.After(ks.signer.created) {
			priv, err := parsePrivate(privDER, pub)
			if err != nil {
				s.log.WarnContext(ctx, "signing key skipped: bad private key", "kid", kid, "err", err)
				continue
			}
			ks.signer = &signer{kid: kid, priv: priv, created: created}
		}
		ks.verify[kid] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return ks, nil
}

func parsePublic(der []byte) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return pub, nil
}

func parsePrivate(der []byte, pub ed25519.PublicKey) (ed25519.PrivateKey, error) {
	if der == nil {
		return nil, errors.New("current key has no private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	if !pub.Equal(priv.Public()) {
		return nil, errors.New("private key does not match public key")
	}
	return priv, nil
}

// verificationKey returns the public key for kid, reloading (rate-limited)
// when kid is unknown. A database failure is logged, not returned: the
// token is refused as signed by an unknown key either way.
func (s *KeyStore) verificationKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k, ok := s.keys.Load().lookup(kid)
	if !ok {
		ks, err := s.refresh(ctx, func(ks *keySet, last time.Time) bool {
			if _, ok := ks.lookup(kid); ok {
				return false
			}
			return last.IsZero() || !s.cfg.Now().Before(last.Add(reloadInterval))
		})
		if err != nil {
			s.log.WarnContext(ctx, "reload signing keys", "err", err)
		}
		if k, ok = ks.lookup(kid); !ok {
			return nil, errUnknownKey
		}
	}
	if !k.validUntil.IsZero() && s.cfg.Now().After(k.validUntil) {
		return nil, errUnknownKey
	}
	return k.pub, nil
}

func (ks *keySet) lookup(kid string) (verifyKey, bool) {
	if ks == nil {
		return verifyKey{}, false
	}
	k, ok := ks.verify[kid]
	return k, ok
}

// currentSigner returns the key to sign with: the cached one while it is
// younger than CheckEvery, else a reloaded one, else a newly created one.
func (s *KeyStore) currentSigner(ctx context.Context) (*signer, error) {
	stale := func(ks *keySet, _ time.Time) bool {
		return ks == nil || ks.signer == nil || s.cfg.Now().Sub(ks.loadedAt) >= s.cfg.CheckEvery
	}
	if ks := s.keys.Load(); !stale(ks, time.Time{}) {
		return ks.signer, nil
	}
	ks, err := s.refresh(ctx, stale)
	if err != nil {
		if ks != nil && ks.signer != nil {
			// The database is away; the cached key is still good to sign with.
			s.log.WarnContext(ctx, "reload signing keys", "err", err)
			return ks.signer, nil
		}
		return nil, err
	}
	if ks.signer != nil {
		return ks.signer, nil
	}
	if err := s.EnsureCurrent(ctx); err != nil {
		return nil, err
	}
	if ks := s.keys.Load(); ks != nil && ks.signer != nil {
		return ks.signer, nil
	}
	return nil, errors.New("no current signing key")
}
