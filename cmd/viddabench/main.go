// Command viddabench measures a built vidda binary against a durable
// PostgreSQL and a baseline taken in the same run.
//
// `viddabench http` creates a throwaway database on the server of
// VIDDA_BENCH_DATABASE_URL, measures the raw ceiling of one autocommitted
// INSERT per transaction from pgx, then starts `vidda serve` as a child and
// measures its start-up time, memory, FHIR create throughput and latency
// (against that ceiling), read latency and a clean SIGTERM shutdown. It
// prints a readable report, or JSON with --json. `make bench` runs it on a
// throwaway cluster with fsync on (deploy/with-testdb.sh --durable).
//
// `viddabench mqtt` measures device ingestion in the same way: a CopyFrom
// ceiling, a naive consumer and a no-op hook on vidda's own broker package
// in process, then `vidda serve` with its embedded broker and with
// Mosquitto, loaded by simulated home gateways (devices/loadgen). `make
// bench-ingest` runs it.
//
// `http` talks to vidda only over HTTP and its command line, as an operator
// would; `mqtt` also provisions its devices through fhir/store, and builds
// its baselines from devices/broker and the devices mapping. Everything
// listens on and connects to 127.0.0.1 only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "viddabench:", err)
		os.Exit(1)
	}
}

// run dispatches to the benchmark named by args[0].
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	if args[0] == "mqtt" {
		return runMQTT(ctx, args[1:], getenv, stdout)
	}
	if args[0] == "search" {
		return runSearch(ctx, args[1:], getenv, stdout)
	}
	if args[0] == "export" {
		return runExport(ctx, args[1:], getenv, stdout)
	}
	if args[0] == "sfu" {
		return runSFU(ctx, args[1:], getenv, stdout)
	}
	if args[0] == "soak" {
		return runSoak(ctx, args[1:], getenv, stdout)
	}
	if args[0] != "http" {
		usage(stdout)
		return fmt.Errorf("unknown benchmark %q", args[0])
	}
	o, err := parseHTTPFlags(args[1:], getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return benchHTTP(ctx, o, stdout)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: viddabench http|mqtt|search|export|soak|sfu [flags]

Benchmarks bin/vidda against the PostgreSQL server of VIDDA_BENCH_DATABASE_URL
(make bench and make bench-ingest provide a throwaway cluster with fsync on).

http  the raw INSERT ceiling from pgx, vidda's start-up time and memory, FHIR
      creates against that ceiling, reads by id, shutdown on SIGTERM, and
      what auditing costs on reads and searches (VIDDA_AUDIT on vs off).
mqtt  device ingestion: the CopyFrom ceiling, a naive consumer and a no-op
      hook, then 1,000 simulated homes against vidda's embedded broker (flood,
      one connection's backlog, a fixed load) and through Mosquitto.
export  a Bulk Data export of 1M Observations, kick-off to manifest, against
      COPY ... TO STDOUT of the same rows, with vidda's RSS.
soak  a bounded steady run (make soak): homes publishing, clinicians
      searching; vidda's RSS, heap and goroutines from start to end.
sfu   video forwarding (make bench-sfu, no database): concurrent 1:1 visits
      of pion peers on loopback through the SFU in a process of its own;
      forwarded packets per second per core of the SFU, memory per peer.

Run "viddabench <name> --help" for the flags.
`)
}

// options are the settings of one `viddabench http` run.
type options struct {
	vidda    string        // path of the vidda binary
	clients  int           // concurrent clients in every concurrent phase
	duration time.Duration // length of each write phase
	reads    int           // sequential reads by one client
	json     bool          // print JSON instead of text
	adminURL string        // VIDDA_BENCH_DATABASE_URL
	getenv   func(string) string

	// auditRounds and auditDuration shape step 7 (audit on vs off): rounds
	// per mode, and the length of each phase in a round.
	auditRounds   int
	auditDuration time.Duration
	auditTrail    int // AuditEvents in the table before step 7
}

// maxClients bounds --clients: far above what one machine can use, and
// small enough for a pgx pool size (int32).
const maxClients = 1024

func parseHTTPFlags(args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	o := options{getenv: getenv}
	fs := flag.NewFlagSet("viddabench http", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&o.vidda, "vidda", "bin/vidda", "path of the vidda binary to benchmark")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients (pgx connections, HTTP clients)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of the raw and create phases (concurrent reads run half of it)")
	fs.IntVar(&o.reads, "reads", 5000, "sequential reads by one client")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.IntVar(&o.auditRounds, "audit-rounds", 2, "rounds of the audit on/off comparison per mode (0: skip it)")
	fs.DurationVar(&o.auditDuration, "audit-duration", 4*time.Second, "length of each audit phase in each round")
	fs.IntVar(&o.auditTrail, "audit-trail", 1_000_000, "AuditEvents written before step 7: the trail a region keeps, so that autovacuum and autoanalyze run as often per row as they would on it")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: viddabench http [--vidda bin/vidda] [--clients 16] [--duration 10s] [--reads 5000] [--audit-rounds 2] [--audit-duration 4s] [--audit-trail 1000000] [--json]")
		fmt.Fprintln(stdout, "\nNeeds VIDDA_BENCH_DATABASE_URL (a postgres:// URL; the run creates and drops its own database there).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.clients < 1 || o.clients > maxClients:
		return o, fmt.Errorf("--clients must be between 1 and %d", maxClients)
	case o.duration < 100*time.Millisecond:
		return o, errors.New("--duration must be at least 100ms")
	case o.reads < 1:
		return o, errors.New("--reads must be at least 1")
	case o.auditTrail < 0:
		return o, errors.New("--audit-trail must not be negative")
	case o.auditRounds < 0 || (o.auditRounds > 0 && o.auditDuration < 100*time.Millisecond):
		return o, errors.New("--audit-rounds must not be negative, --audit-duration at least 100ms")
	}
	o.adminURL = getenv("VIDDA_BENCH_DATABASE_URL")
	if o.adminURL == "" {
		return o, errors.New("VIDDA_BENCH_DATABASE_URL is not set (run through make bench or deploy/with-testdb.sh --durable)")
	}
	if _, err := os.Stat(o.vidda); err != nil {
		return o, fmt.Errorf("--vidda: %w (build it with make build)", err)
	}
	return o, nil
}

// childEnv is the whole environment of a vidda child: PATH and HOME from
// ours plus the given settings, so stray VIDDA_* variables cannot leak in.
// Tuning knobs named in VIDDABENCH_PASS (e.g. "VIDDA_PPROF_ADDR
// VIDDA_CREATE_BATCH") are passed on, for experiments.
func (o options) childEnv(settings ...string) []string {
	var env []string
	keys := append([]string{"PATH", "HOME", "TMPDIR"}, strings.Fields(o.getenv("VIDDABENCH_PASS"))...)
	for _, k := range keys {
		if v := o.getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, settings...)
}
