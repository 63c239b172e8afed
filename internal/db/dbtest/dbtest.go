// Package dbtest gives tests a real, throwaway PostgreSQL database.
//
// One cluster serves a whole `go test` run: when VIDDA_TEST_DATABASE_URL is
// set (the Makefile starts one cluster and sets it) that server is used;
// otherwise the first test package to need a database starts its own cluster
// in a temporary directory with initdb/pg_ctl and stops it at the end. Each
// test package gets a fresh, migrated database, and NewDatabase gives a test
// one of its own when it needs isolation.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/vidda/vidda/internal/db"
	"github.com/vidda/vidda/internal/db/devpg"
)

// EnvURL names the variable pointing tests at an existing server; its
// database part is ignored, the harness creates databases of its own.
const EnvURL = "VIDDA_TEST_DATABASE_URL"

// harness is the per-process state of Main. A test binary is one process
// and TestMain runs once, so this one variable is the harness's owner.
//
//nolint:gochecknoglobals // per-test-binary harness state, set once in Main.
var harness struct {
	mu      sync.Mutex
	server  string // URL of the maintenance database ("postgres")
	pkgURL  string // this package's fresh database, created lazily
	created []string
}

// Main runs the package's tests around a throwaway cluster (when needed)
// and drops the databases it created. It calls os.Exit.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	var cluster *devpg.Cluster
	if u := os.Getenv(EnvURL); u != "" {
		harness.server = withDatabase(u, "postgres")
	} else {
		dir, err := os.MkdirTemp("", "vidda-pg-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// The cluster may run as an unprivileged user who must reach the data dir.
		if err := os.Chmod(dir, 0o711); err != nil { //nolint:gosec // traversable, not readable, by the cluster's user
			fmt.Fprintln(os.Stderr, "dbtest:", err)
			return 1
		}
		cluster, err = devpg.Start(ctx, devpg.Options{Dir: dir + "/data"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
			return 1
		}
		harness.server = cluster.URL("postgres")
	}
	code := m.Run()
	// Every goroutine a test started must be gone by now (STYLE.md §9).
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
			// fasthttp's worker-pool cleaner notices a shutdown only at its next 10 s tick.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			// fasthttp keeps one process-wide goroutine refreshing the Date header.
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
			// Fiber's rate limiter starts one process-wide clock goroutine, like
			// fasthttp's; its name depends on whether it was inlined.
			goleak.IgnoreAnyFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
			goleak.IgnoreAnyFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: leaked goroutines:", err)
			code = 1
		}
	}
	for _, name := range harness.created {
		if err := exec(ctx, harness.server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: drop:", err)
		}
	}
	if cluster != nil {
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
		}
	}
	return code
}

// URL returns the connection string of this test package's database,
// created and migrated on first use.
func URL(tb testing.TB) string {
	tb.Helper()
	harness.mu.Lock()
	defer harness.mu.Unlock()
	if harness.pkgURL == "" {
		u, err := create(tb.Name())
		if err != nil {
			tb.Fatalf("dbtest: %v", err)
		}
		harness.pkgURL = u
	}
	return harness.pkgURL
}

// NewDatabase returns the connection string of a new, migrated database
// for this test alone.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	harness.mu.Lock()
	defer harness.mu.Unlock()
	u, err := create(tb.Name())
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	return u
}

// Pool opens a pool on this package's database, closed when t ends.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return PoolFor(tb, URL(tb))
}

// PoolFor opens a pool on the database at u, closed when t ends.
func PoolFor(tb testing.TB, u string) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, db.Config{URL: u})
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func create(testName string) (string, error) {
	if harness.server == "" {
		return "", fmt.Errorf("no server: call dbtest.Main from TestMain")
	}
	name := "t_" + sanitize(testName) + "_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := exec(ctx, harness.server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	harness.created = append(harness.created, name)
	u := withDatabase(harness.server, name)
	pool, err := db.Open(ctx, db.Config{URL: u})
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return "", err
	}
	return u, nil
}

func exec(ctx context.Context, u, sql string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func withDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	parsed.Path = "/" + name
	return parsed.String()
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
