package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgInfo is what the reader needs to judge the baseline: whether commits
// were durable.
type pgInfo struct {
	Version           string `json:"server_version"`
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	Database          string `json:"database"`
}

// databaseURL is base with its database replaced by name.
func databaseURL(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("VIDDA_BENCH_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

// createDatabase creates a fresh database on the server of adminURL and
// returns its name, its URL and the server's settings.
func createDatabase(ctx context.Context, adminURL string) (name, dbURL string, info pgInfo, err error) {
	name = fmt.Sprintf("bench_%d", time.Now().Unix())
	if dbURL, err = databaseURL(adminURL, name); err != nil {
		return "", "", info, err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", "", info, fmt.Errorf("connect VIDDA_BENCH_DATABASE_URL: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"server_version", &info.Version},
		{"fsync", &info.Fsync},
		{"synchronous_commit", &info.SynchronousCommit},
	} {
		if err := conn.QueryRow(ctx, "SHOW "+s.name).Scan(s.dst); err != nil {
			return "", "", info, fmt.Errorf("show %s: %w", s.name, err)
		}
	}
	info.Database = name
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", info, fmt.Errorf("create database %s: %w", name, err)
	}
	return name, dbURL, info, nil
}

// dropDatabase drops the bench database, closing any session left in it.
func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// onBenchDB runs statements, each autocommitted, in the bench database.
func onBenchDB(ctx context.Context, dbURL string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect bench database: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// countObservations counts the rows a run left in the observation table.
func countObservations(ctx context.Context, dbURL string) (int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect bench database: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM observation").Scan(&n); err != nil {
		return 0, fmt.Errorf("count observations: %w", err)
	}
	return n, nil
}
