package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vidda/vidda/devices/loadgen"
)

// runMQTT is `viddabench mqtt`.
func runMQTT(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseMQTTFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return benchMQTT(ctx, o, stdout)
}

// mqttOptions are the settings of one `viddabench mqtt` run.
type mqttOptions struct {
	options                    // vidda, duration, json, adminURL, getenv
	homes        int           // simulated homes, one connection each
	window       int           // unconfirmed readings per connection
	backlog      int           // readings one connection flushes in phase 4b
	rate         float64       // offered readings/s in phase 4c
	mosquitto    string        // mosquitto binary; "" skips phase 5
	mosqInflight int           // mosquitto's max_inflight_messages
	ceilingConns []int         // connection counts of the CopyFrom ceiling
	drain        time.Duration // longest wait for outstanding confirmations
}

// maxHomes bounds --homes: each is a connection (a file descriptor in
// this process, vidda and mosquitto) and a Patient and Device.
const maxHomes = 10_000

func parseMQTTFlags(args []string, getenv func(string) string, stdout io.Writer) (mqttOptions, error) {
	o := mqttOptions{options: options{getenv: getenv}, drain: 30 * time.Second}
	fs := flag.NewFlagSet("viddabench mqtt", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&o.vidda, "vidda", "bin/vidda", "path of the vidda binary to benchmark")
	fs.IntVar(&o.homes, "homes", 1000, "simulated homes: connections, each with its own device credential")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "length of each timed phase")
	fs.IntVar(&o.window, "window", 20, "unconfirmed readings a home keeps outstanding (a gateway's in-flight window)")
	fs.IntVar(&o.backlog, "backlog", 10_000, "buffered readings one connection flushes (phase 4b)")
	fs.Float64Var(&o.rate, "rate", 10_000, "fixed offered load, readings/s over all homes (phase 4c)")
	fs.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", `mosquitto binary for phase 5 ("" skips it)`)
	fs.IntVar(&o.mosqInflight, "mosquitto-inflight", 500, "mosquitto's max_inflight_messages (deploy/mosquitto/mosquitto.conf uses 500)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: viddabench mqtt [--vidda bin/vidda] [--homes 1000] [--duration 15s] [--window 20] [--backlog 10000] [--rate 10000] [--mosquitto /usr/sbin/mosquitto] [--json]")
		fmt.Fprintln(stdout, "\nNeeds VIDDA_BENCH_DATABASE_URL (a postgres:// URL; the run creates and drops its own database there).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.homes < 1 || o.homes > maxHomes:
		return o, fmt.Errorf("--homes must be between 1 and %d", maxHomes)
	case o.duration < time.Second:
		return o, errors.New("--duration must be at least 1s")
	case o.window < 1 || o.window > 65535:
		return o, errors.New("--window must be between 1 and 65535")
	case o.backlog < 1 || o.backlog > 1_000_000:
		return o, errors.New("--backlog must be between 1 and 1000000")
	case o.rate <= 0:
		return o, errors.New("--rate must be positive")
	case o.mosqInflight < 1:
		return o, errors.New("--mosquitto-inflight must be at least 1")
	}
	o.ceilingConns = []int{1}
	if n := runtime.NumCPU(); n > 1 {
		o.ceilingConns = append(o.ceilingConns, n)
	}
	o.adminURL = getenv("VIDDA_BENCH_DATABASE_URL")
	if o.adminURL == "" {
		return o, errors.New("VIDDA_BENCH_DATABASE_URL is not set (run through make bench-ingest or deploy/with-testdb.sh --durable)")
	}
	if _, err := os.Stat(o.vidda); err != nil {
		return o, fmt.Errorf("--vidda: %w (build it with make build)", err)
	}
	if o.mosquitto != "" {
		if _, err := os.Stat(o.mosquitto); err != nil {
			return o, fmt.Errorf(`--mosquitto: %w (apt-get install mosquitto, or --mosquitto "" to skip phase 5)`, err)
		}
	}
	return o, nil
}

// The loads of the phases. Reading ids start with a prefix per phase, so
// that no phase's reading is a duplicate of another's.
func (o mqttOptions) floodLoad(prefix string) loadgen.Load {
	return loadgen.Load{
		Prefix: prefix, Window: o.window, Duration: o.duration, Drain: o.drain,
		Backlog: 2 * time.Hour, Spacing: time.Second,
	}
}

func (o mqttOptions) backlogLoad() loadgen.Load {
	const outage = 72 * time.Hour
	return loadgen.Load{
		Prefix: "b-", Window: o.window, Count: o.backlog, Limit: 2 * time.Minute, Drain: o.drain,
		Backlog: outage, Spacing: outage / time.Duration(o.backlog),
	}
}

func (o mqttOptions) fixedLoad() loadgen.Load {
	return loadgen.Load{
		Prefix: "r-", Window: o.window, Rate: o.rate, Duration: o.duration, Drain: o.drain,
		Backlog: 2 * time.Hour, Spacing: time.Second,
	}
}

// benchMQTT runs every phase, prints the report and fails if anything
// went wrong (errors, a crash, a lost reading).
func benchMQTT(ctx context.Context, o mqttOptions, stdout io.Writer) error {
	rep := mqttReport{Machine: readMachine(), Config: mqttConfig{
		Vidda: o.vidda, Homes: o.homes, Window: o.window, DurationS: o.duration.Seconds(), BacklogReadings: o.backlog,
		FixedRate: o.rate, Mosquitto: o.mosquitto, MosquittoInflight: o.mosqInflight, NaivePool: naivePoolSize,
	}}
	for _, r := range []*ingestRun{&rep.Naive, &rep.Noop, &rep.Flood, &rep.Single, &rep.Fixed, &rep.ExternalFlood} {
		r.Stored = -1
	}
	return conclude(ctx, &rep, collectMQTT(ctx, o, &rep), stdout, o.json)
}

// collectMQTT fills rep phase by phase; it returns the error that stopped
// it.
func collectMQTT(ctx context.Context, o mqttOptions, rep *mqttReport) error {
	return withBenchDatabase(ctx, o.adminURL, func(dbURL string, info pgInfo) (err error) {
		rep.Postgres = info
		if _, err := runVidda(ctx, o.vidda, o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text"), "migrate"); err != nil {
			return err
		}
		t0 := time.Now()
		homes, err := provisionHomes(ctx, dbURL, o.homes)
		if err != nil {
			return err
		}
		rep.ProvisionS = time.Since(t0).Seconds()
		pg := watched{name: "postgres", pid: postmasterPID(ctx, dbURL), tree: true}
		if err := baselines(ctx, o, dbURL, homes, pg, rep); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "viddabench-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		if err := fresh(ctx, dbURL); err != nil {
			return err
		}
		if err := measureEmbedded(ctx, o, dbURL, filepath.Join(dir, "vidda-embedded.log"), homes, pg, rep); err != nil {
			return err
		}
		if o.mosquitto == "" {
			return nil
		}
		if err := fresh(ctx, dbURL); err != nil {
			return err
		}
		return measureExternal(ctx, o, dbURL, dir, homes, pg, rep)
	})
}

// fresh empties the observation table and checkpoints, so that no phase
// pays for another's rows or dirty pages.
func fresh(ctx context.Context, dbURL string) error {
	return onBenchDB(ctx, dbURL, "TRUNCATE observation", "CHECKPOINT")
}

// baselines runs phases 1 to 3: the CopyFrom ceiling, the naive consumer
// and the no-op hook.
func baselines(ctx context.Context, o mqttOptions, dbURL string, homes []home, pg watched, rep *mqttReport) error {
	size, err := meanObservationSize(homes)
	if err != nil {
		return err
	}
	rep.ObservationBytes = size
	for _, n := range o.ceilingConns {
		if err := fresh(ctx, dbURL); err != nil {
			return err
		}
		meter := startCPU(pg)
		s, err := copyCeiling(ctx, dbURL, homes, n, o.duration)
		if err != nil {
			return err
		}
		cpu := meter.stop()
		s.CPUBusyPct = cpu.MachineBusyPct
		rep.Ceiling = append(rep.Ceiling, s)
		rep.CeilingCPU = append(rep.CeilingCPU, cpu)
	}
	if err := fresh(ctx, dbURL); err != nil {
		return err
	}
	load := o.floodLoad("n-")
	res, cpu, err := naiveConsumer(ctx, dbURL, homes, load, pg)
	rep.Naive = newIngestRun(res, load, cpu)
	if err != nil {
		return err
	}
	if rep.Naive.Stored, err = countObservations(ctx, dbURL); err != nil {
		return err
	}
	load = o.floodLoad("o-")
	res, cpu, err = inProcess(ctx, homes, noopHandler(), load, pg)
	rep.Noop = newIngestRun(res, load, cpu)
	return err
}

// meanObservationSize is the mean size of the stored JSON of the five
// reading types.
func meanObservationSize(homes []home) (int, error) {
	m, err := newRowMaker()
	if err != nil {
		return 0, err
	}
	total := 0
	for seq := range 5 {
		t, err := newRowTemplate(m, homes[0], ceilingPrefix, seq, time.Now())
		if err != nil {
			return 0, err
		}
		total += len(t.content)
	}
	return total / 5, nil
}

// phaseHooks run while the homes of a phase are connected: start just
// before the load starts, end after it. Either may be nil.
type phaseHooks struct{ start, end func() }

// flood dials the homes at addr, runs one load and returns what the
// generator saw and who used the CPU, this process and watch.
func flood(ctx context.Context, addr string, homes []home, confirm loadgen.Confirm, l loadgen.Load, watch []watched, hooks phaseHooks) (loadgen.Result, cpuUse, error) {
	f, err := loadgen.Dial(ctx, loadgen.DialConfig{Addr: addr, Homes: fleetHomes(homes), Confirm: confirm})
	if err != nil {
		return loadgen.Result{}, cpuUse{}, err
	}
	defer f.Close()
	if hooks.start != nil {
		hooks.start()
	}
	meter := startCPU(watch...)
	res, err := f.Run(ctx, l)
	cpu := meter.stop()
	if hooks.end != nil {
		hooks.end()
	}
	return res, cpu, err
}
