package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// `viddabench search` loads a year of vital signs (1,000,000 Observations
// of 1,000 patients by default) through the store's own row preparation,
// then times four patient-scoped Observation searches over HTTP against
// hand-written SQL through pgx on the same database and indexes.

// searchOptions are the settings of one `viddabench search` run.
type searchOptions struct {
	options                    // vidda, duration, json, adminURL, getenv
	observations int           // Observations loaded
	patients     int           // Patients they belong to
	many         int           // concurrent clients of the second round
	loaders      int           // concurrent COPY connections
	warm         time.Duration // unrecorded warm-up before each phase
	keep         bool          // leave the bench database behind
	explain      bool          // report the plans of vidda's queries
}

// Targets of the search benchmark; missing one is reported, not an error.
const (
	targetSearchLoadS  = 60.0 // seconds to load 1M observations
	targetSearchP50ms  = 2.0  // one client
	targetSearchP99ms  = 10.0 // one client
	targetSearchQPS    = 3000 // many clients
	targetSearchFactor = 2.0  // vidda's p50 ÷ the baseline's
)

// runSearch is `viddabench search`.
func runSearch(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseSearchFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	rep := searchReport{Machine: readMachine(), Config: searchConfig{
		Vidda: o.vidda, Observations: o.observations, Patients: o.patients, Many: o.many, DurationS: o.duration.Seconds(),
	}}
	return conclude(ctx, &rep, collectSearch(ctx, o, &rep), stdout, o.json)
}

func parseSearchFlags(args []string, getenv func(string) string, stdout io.Writer) (searchOptions, error) {
	o := searchOptions{options: options{getenv: getenv}}
	fs := flag.NewFlagSet("viddabench search", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&o.vidda, "vidda", "bin/vidda", "path of the vidda binary to benchmark")
	fs.IntVar(&o.observations, "observations", 1_000_000, "Observations to load")
	fs.IntVar(&o.patients, "patients", 1000, "Patients the Observations belong to")
	fs.IntVar(&o.many, "clients", 32, "concurrent clients of the second round (the first has one)")
	fs.IntVar(&o.loaders, "loaders", 4, "concurrent COPY connections of the load")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each timed phase")
	fs.DurationVar(&o.warm, "warm", 300*time.Millisecond, "unrecorded warm-up before each timed phase")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the bench database and print its URL (useful with a server that outlives the run, not deploy/with-testdb.sh)")
	fs.BoolVar(&o.explain, "explain", false, "report EXPLAIN (ANALYZE, BUFFERS) of the page query of each search shape, generic and custom plan")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: viddabench search [--vidda bin/vidda] [--observations 1000000] [--patients 1000] [--clients 32] [--duration 3s] [--explain] [--keep] [--json]")
		fmt.Fprintln(stdout, "\nNeeds VIDDA_BENCH_DATABASE_URL (a postgres:// URL; the run creates and drops its own database there).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.patients < 1 || o.patients > 1_000_000:
		return o, errors.New("--patients must be between 1 and 1000000")
	case o.observations < o.patients || o.observations > 100_000_000:
		return o, errors.New("--observations must be at least --patients and at most 100000000")
	case o.many < 1 || o.many > maxClients:
		return o, fmt.Errorf("--clients must be between 1 and %d", maxClients)
	case o.loaders < 1 || o.loaders > 64:
		return o, errors.New("--loaders must be between 1 and 64")
	case o.duration < 100*time.Millisecond:
		return o, errors.New("--duration must be at least 100ms")
	case o.warm < 0:
		return o, errors.New("--warm must not be negative")
	}
	o.adminURL = getenv("VIDDA_BENCH_DATABASE_URL")
	if o.adminURL == "" {
		return o, errors.New("VIDDA_BENCH_DATABASE_URL is not set (run through make bench-search or deploy/with-testdb.sh --durable)")
	}
	if _, err := os.Stat(o.vidda); err != nil {
		return o, fmt.Errorf("--vidda: %w (build it with make build)", err)
	}
	return o, nil
}

// collectSearch fills rep phase by phase; it returns the error that
// stopped it.
func collectSearch(ctx context.Context, o searchOptions, rep *searchReport) error {
	onDatabase := func(fn func(dbURL string, info pgInfo) error) error { return withBenchDatabase(ctx, o.adminURL, fn) }
	if o.keep {
		onDatabase = func(fn func(dbURL string, info pgInfo) error) error {
			return keepBenchDatabase(ctx, o.adminURL, &rep.KeptDatabase, fn)
		}
	}
	return onDatabase(func(dbURL string, info pgInfo) error {
		rep.Postgres = info
		if _, err := runVidda(ctx, o.vidda, o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text"), "migrate"); err != nil {
			return err
		}
		ds, err := loadSearchData(ctx, o, dbURL, &rep.Load)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "viddabench-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		logPath := filepath.Join(dir, "vidda-serve.log")
		err = measureSearches(ctx, o, dbURL, logPath, ds, rep)
		if err != nil {
			rep.ServerLog = logTail(logPath)
		}
		return err
	})
}

// staffToken is a clinician's token: staff, not bound to one patient.
func staffToken(ctx context.Context, o searchOptions, env []string) (string, error) {
	out, err := runVidda(ctx, o.vidda, env, "token", "--role", "clinician")
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(out)
	if token == "" || strings.ContainsAny(token, " \n") {
		return "", errors.New("vidda token --role clinician did not print one token")
	}
	return token, nil
}
