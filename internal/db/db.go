package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says how to reach PostgreSQL.
type Config struct {
	// URL is a libpq connection string (VIDDA_DATABASE_URL).
	URL string
	// MaxConns caps the pool; 0 means pgx's default (max(4, NumCPU)).
	MaxConns int32
	// ConnectTimeout bounds the first ping at start-up.
	ConnectTimeout time.Duration
}

// ErrNoURL is returned when no database URL was configured.
var ErrNoURL = errors.New("VIDDA_DATABASE_URL is not set")

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.URL == "" {
		return ErrNoURL
	}
	if _, err := pgxpool.ParseConfig(c.URL); err != nil {
		return fmt.Errorf("VIDDA_DATABASE_URL: %w", err)
	}
	return nil
}

// Open creates a pool and checks that the database answers.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	// Vidda's queries are short index walks; the JIT compiler, which the
	// planner turns on by cost estimate, spent 40 of 139 ms of a $lastn on
	// a million readings compiling. A URL that sets jit keeps its choice.
	if _, set := pc.ConnConfig.RuntimeParams["jit"]; !set {
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redact(pc), err)
	}
	return pool, nil
}

// redact names host, port and database, never the password.
func redact(pc *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
