package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vidda/vidda/devices/loadgen"
)

// `viddabench soak` (make soak) runs one `vidda serve` for a bounded time
// under a steady mixed load, the way a region's instance lives between
// deployments: homes publishing readings at a fixed rate over the embedded
// broker, clinicians searching, and (once wired) video visits joining and
// leaving. It samples vidda's RSS, goroutines and heap throughout and
// reports them at the start and the end: a leak shows as a slope. It also
// checks that every confirmed reading was stored.

type soakOptions struct {
	options
	homes      int
	rate       float64       // readings/s over all homes
	searchRate float64       // searches/s
	sample     time.Duration // sampling interval
	warmup     time.Duration // samples before this are not the baseline
	visitEvery time.Duration // a video visit starts this often (0: none)
	visitHold  time.Duration // media flows this long in each visit
}

// visitLoop runs video visits against a vidda until ctx ends and returns
// how many visits completed and failed (soak_visits.go).
type visitLoop func(ctx context.Context, base, adminToken string) visitSummary

func runSoak(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseSoakFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	rep := &soakReport{Machine: readMachine(), Duration: o.duration.String(), Homes: o.homes, Rate: o.rate, SearchRate: o.searchRate}
	err = withBenchDatabase(ctx, o.adminURL, func(dbURL string, info pgInfo) error {
		rep.Postgres = info
		return soak(ctx, o, dbURL, rep)
	})
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		rep.print(stdout)
	}
	if err != nil {
		return err
	}
	if msg := rep.failure(); msg != "" {
		return errors.New(msg)
	}
	return nil
}

func parseSoakFlags(args []string, getenv func(string) string, stdout io.Writer) (soakOptions, error) {
	o := soakOptions{options: options{getenv: getenv, adminURL: getenv("VIDDA_BENCH_DATABASE_URL")}}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&o.vidda, "vidda", "bin/vidda", "path of the vidda binary")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "length of the soak")
	fs.IntVar(&o.homes, "homes", 200, "simulated homes, one MQTT connection each")
	fs.Float64Var(&o.rate, "rate", 200, "readings per second over all homes")
	fs.Float64Var(&o.searchRate, "search-rate", 20, "Observation searches per second")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "how often RSS, goroutines and heap are sampled")
	fs.DurationVar(&o.warmup, "warmup", time.Minute, "samples before this are not the baseline (caches, pools and connections fill up)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.DurationVar(&o.visitEvery, "visit-every", 5*time.Second, "a video visit (two real pion peers through the SFU) starts this often; 0: no video")
	fs.DurationVar(&o.visitHold, "visit-media", 3*time.Second, "how long media flows in each video visit")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: viddabench soak [--duration 10m] [--homes 200] [--rate 200] [--search-rate 20] [--visit-every 5s] [--visit-media 3s] [--json]")
		fmt.Fprintln(stdout, "\nNeeds VIDDA_BENCH_DATABASE_URL (make soak provides a throwaway cluster).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.adminURL == "":
		return o, errors.New("VIDDA_BENCH_DATABASE_URL is not set (make soak sets it)")
	case o.duration < time.Minute || o.sample <= 0 || o.sample > o.duration/4:
		return o, fmt.Errorf("--duration must be at least 1m and --sample at most a quarter of it (got %s, %s)", o.duration, o.sample)
	case o.homes < 1 || o.homes > maxHomes || o.rate <= 0 || o.searchRate < 0:
		return o, fmt.Errorf("--homes must be 1..%d and --rate above 0 (got %d, %g)", maxHomes, o.homes, o.rate)
	case o.visitEvery < 0 || o.visitHold <= 0:
		return o, fmt.Errorf("--visit-every must not be negative and --visit-media must be positive (got %s, %s)", o.visitEvery, o.visitHold)
	case o.warmup >= o.duration:
		return o, fmt.Errorf("--warmup %s must be shorter than --duration %s", o.warmup, o.duration)
	}
	return o, nil
}

// soakSample is vidda at one moment of the soak.
type soakSample struct {
	AtS        float64 `json:"at_s"`
	RSSKiB     int64   `json:"rss_kib"`
	Goroutines int     `json:"goroutines"`
	HeapKiB    int64   `json:"heap_inuse_kib"`
	Stored     int     `json:"readings_stored"`
}

type soakReport struct {
	Machine    machine        `json:"machine"`
	Postgres   pgInfo         `json:"postgres"`
	Duration   string         `json:"duration"`
	Homes      int            `json:"homes"`
	Rate       float64        `json:"rate"`
	SearchRate float64        `json:"search_rate"`
	Readings   loadgenSummary `json:"readings"`
	Stored     int            `json:"stored"`
	Searches   summary        `json:"searches"`
	Visits     *visitSummary  `json:"visits,omitempty"`
	Samples    []soakSample   `json:"samples"`
	Baseline   int            `json:"baseline_sample"` // index of the first sample after the warm-up
	ExitCode   int            `json:"exit_code"`
	ShutdownMs float64        `json:"shutdown_ms"`
	LogLines   int            `json:"log_lines_warn_or_above"`
	LogHead    []string       `json:"log_head,omitempty"`
	Error      string         `json:"error,omitempty"`
}

type loadgenSummary struct {
	Sent        int     `json:"sent"`
	Confirmed   int     `json:"confirmed"`
	Unconfirmed int     `json:"unconfirmed"`
	PerSecond   float64 `json:"per_second"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
}

type visitSummary struct {
	Done       int    `json:"done"`
	Failed     int    `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
}

func soak(ctx context.Context, o soakOptions, dbURL string, rep *soakReport) (err error) {
	// Video on free loopback ports: the soak's vidda must not collide with
	// a developer's (make run) on the default TURN and media ports.
	base := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text",
		"VIDDA_TURN_LISTEN=127.0.0.1:0", "VIDDA_MEDIA_UDP=127.0.0.1:0", "VIDDA_MEDIA_TCP=127.0.0.1:0")
	if _, err := runVidda(ctx, o.vidda, base, "migrate"); err != nil {
		return err
	}
	homes, err := provisionHomes(ctx, dbURL, o.homes)
	if err != nil {
		return err
	}
	var visits visitLoop
	if o.visitEvery > 0 {
		if visits, err = videoVisits(ctx, o.vidda, base, homes, o.visitEvery, o.visitHold); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "viddabench-soak-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logPath := filepath.Join(dir, "vidda.log")
	mqttAddr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	var run viddaRun
	v, err := startVidda(ctx, mqttOptions{options: o.options}, append(base, "VIDDA_MQTT_LISTEN="+mqttAddr), logPath, mqttAddr, &run)
	if err != nil {
		return err
	}
	defer v.srv.kill()

	fleet, err := loadgen.Dial(ctx, loadgen.DialConfig{Addr: mqttAddr, Homes: fleetHomes(homes), Confirm: loadgen.ConfirmPuback})
	if err != nil {
		return fmt.Errorf("connect homes: %w", err)
	}
	defer fleet.Close()

	runCtx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	var res loadgen.Result
	var resErr error
	wg.Go(func() {
		res, resErr = fleet.Run(runCtx, loadgen.Load{Prefix: "soak-", Window: 20, Rate: o.rate, Duration: o.duration, Drain: 30 * time.Second})
	})
	var searches []worker
	if o.searchRate > 0 {
		searches = make([]worker, 4)
		for i := range searches {
			wg.Go(func() { searches[i] = soakSearches(runCtx, v.srv.base, v.metrics.token, homes, o.searchRate/4, i) })
		}
	}
	if visits != nil {
		wg.Go(func() {
			s := visits(runCtx, v.srv.base, v.metrics.token)
			rep.Visits = &s
		})
	}
	sampleAll := func() {
		s := sampleVidda(ctx, v, dbURL)
		s.AtS = time.Since(start).Seconds()
		rep.Samples = append(rep.Samples, s)
		if rep.Baseline == 0 && time.Since(start) >= o.warmup {
			rep.Baseline = len(rep.Samples) - 1
		}
	}
	sampleAll()
	tick := time.NewTicker(o.sample)
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-tick.C:
			sampleAll()
		}
	}
	tick.Stop()
	wg.Wait()
	sampleAll()
	if resErr != nil {
		return fmt.Errorf("readings: %w", resErr)
	}
	rep.Readings = loadgenSummary{
		Sent: res.Sent, Confirmed: res.Confirmed, Unconfirmed: res.Unconfirmed,
		PerSecond: res.PerSecond(), Errors: res.Errors, FirstError: res.FirstError,
	}
	rep.Searches = summarize(o.duration, searches)
	if rep.Stored, err = countObservations(ctx, dbURL); err != nil {
		return err
	}
	shutdown, code, err := v.srv.terminate(60 * time.Second)
	rep.ShutdownMs, rep.ExitCode = ms(shutdown), code
	rep.LogLines, rep.LogHead = logSummary(logPath)
	return err
}

// soakSearches runs one client's share of the searches at a steady rate:
// a random home's newest readings, a page of 50.
func soakSearches(ctx context.Context, base, token string, homes []home, rate float64, seed int) worker {
	var w worker
	t := newTarget(base, token, 1)
	defer t.close()
	rng := rand.New(rand.NewPCG(uint64(seed), 42)) //nolint:gosec // load shape, not security
	every := time.Duration(float64(time.Second) / rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return w
		case <-tick.C:
		}
		h := homes[rng.IntN(len(homes))]
		t0 := time.Now()
		if err := t.search(ctx, h.patient); err != nil {
			if ctx.Err() != nil {
				return w
			}
			w.fail(err.Error())
			continue
		}
		w.lat = append(w.lat, time.Since(t0))
	}
}

// sampleVidda reads vidda's RSS from /proc and its goroutines and heap
// from /metrics; a value it cannot read stays zero.
func sampleVidda(ctx context.Context, v *viddaChild, dbURL string) soakSample {
	var s soakSample
	if n, err := v.srv.rssKiB(); err == nil {
		s.RSSKiB = n
	}
	if m, err := scrapeGauges(ctx, v.srv.base, v.metrics.token, "go_goroutines", "go_memstats_heap_inuse_bytes"); err == nil {
		s.Goroutines = int(m["go_goroutines"])
		s.HeapKiB = int64(m["go_memstats_heap_inuse_bytes"] / 1024)
	}
	if n, err := countObservations(ctx, dbURL); err == nil {
		s.Stored = n
	}
	return s
}

// scrapeGauges returns the named unlabelled gauges of /metrics.
func scrapeGauges(ctx context.Context, base, token string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := drain(resp)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for _, n := range names {
			if name == n {
				if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
					out[n] = f
				}
			}
		}
	}
	return out, nil
}

// failure says why the run failed, "" when it did not: a lost or
// unconfirmed reading, errors, an unclean exit. Growth is reported, not
// judged: the numbers are for a person to read.
func (r *soakReport) failure() string {
	switch {
	case r.Readings.Unconfirmed > 0 || r.Readings.Errors > 0:
		return fmt.Sprintf("soak: %d readings unconfirmed, %d connection errors (%s)", r.Readings.Unconfirmed, r.Readings.Errors, r.Readings.FirstError)
	case r.Stored != r.Readings.Confirmed:
		return fmt.Sprintf("soak: %d readings confirmed but %d stored", r.Readings.Confirmed, r.Stored)
	case r.Searches.Errors > 0:
		return fmt.Sprintf("soak: %d searches failed (%s)", r.Searches.Errors, r.Searches.FirstError)
	case r.Visits != nil && r.Visits.Failed > 0:
		return fmt.Sprintf("soak: %d video visits failed (%s)", r.Visits.Failed, r.Visits.FirstError)
	case r.ExitCode != 0:
		return fmt.Sprintf("soak: vidda exited with code %d", r.ExitCode)
	}
	return ""
}

func (r *soakReport) print(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("viddabench soak: %s, %d homes at %.0f readings/s, %.0f searches/s", r.Duration, r.Homes, r.Rate, r.SearchRate)
	m, pg := r.Machine, r.Postgres
	p("machine   nproc %d, %s, %.1f GiB RAM, %s/%s, %s, load average at start %s",
		m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.OS, m.Arch, m.Go, m.LoadAvg)
	p("postgres  %s, fsync=%s, synchronous_commit=%s", pg.Version, pg.Fsync, pg.SynchronousCommit)
	p("")
	p("   time   RSS MiB   heap MiB   goroutines   readings stored")
	for i, s := range r.Samples {
		mark := ""
		if i == r.Baseline {
			mark = "  ← baseline (after the warm-up)"
		}
		p("%6.0fs %9.1f %10.1f %12d %17d%s", s.AtS, float64(s.RSSKiB)/1024, float64(s.HeapKiB)/1024, s.Goroutines, s.Stored, mark)
	}
	if n := len(r.Samples); n > r.Baseline+1 {
		b, e := r.Samples[r.Baseline], r.Samples[n-2] // the last sample is after the load stopped
		p("")
		p("from the baseline to the end of the load (%.0f s):", e.AtS-b.AtS)
		p("   RSS         %.1f → %.1f MiB (%+.1f%%)", float64(b.RSSKiB)/1024, float64(e.RSSKiB)/1024, pct(float64(e.RSSKiB), float64(b.RSSKiB)))
		p("   heap        %.1f → %.1f MiB (%+.1f%%)", float64(b.HeapKiB)/1024, float64(e.HeapKiB)/1024, pct(float64(e.HeapKiB), float64(b.HeapKiB)))
		p("   goroutines  %d → %d (%+d)", b.Goroutines, e.Goroutines, e.Goroutines-b.Goroutines)
		// The heap saws up and down with every GC cycle: the peaks of the
		// two halves compare better than two single samples.
		first, second := halves(r.Samples[r.Baseline : n-1])
		p("   peak RSS    %.1f MiB in the first half, %.1f MiB in the second", float64(first.RSSKiB)/1024, float64(second.RSSKiB)/1024)
		p("   peak heap   %.1f MiB in the first half, %.1f MiB in the second", float64(first.HeapKiB)/1024, float64(second.HeapKiB)/1024)
	}
	p("")
	p("readings   %d sent, %d confirmed, %d unconfirmed, %d stored, %.0f/s, %d connection errors", r.Readings.Sent, r.Readings.Confirmed, r.Readings.Unconfirmed, r.Stored, r.Readings.PerSecond, r.Readings.Errors)
	p("searches   %d done, %d failed, p50 %.2f ms, p99 %.2f ms", r.Searches.Count, r.Searches.Errors, r.Searches.P50ms, r.Searches.P99ms)
	if r.Visits != nil {
		p("visits     %d done, %d failed (two pion peers each, media both ways through the SFU)", r.Visits.Done, r.Visits.Failed)
		if r.Visits.FirstError != "" {
			p("   first failure: %s", r.Visits.FirstError)
		}
	} else {
		p("visits     none: this run has no video load")
	}
	p("SIGTERM    exited in %.0f ms with code %d; %d log lines at warn or above", r.ShutdownMs, r.ExitCode, r.LogLines)
	for _, l := range r.LogHead {
		p("   %s", l)
	}
	if msg := r.failure(); msg != "" {
		p("FAILED: %s", msg)
	} else {
		p("OK: every confirmed reading stored, no errors (growth is reported, not judged)")
	}
}

// halves returns the peaks of RSS, heap and goroutines in the first and
// the second half of samples.
func halves(samples []soakSample) (first, second soakSample) {
	peak := func(ss []soakSample) soakSample {
		var m soakSample
		for _, s := range ss {
			m.RSSKiB, m.HeapKiB, m.Goroutines = max(m.RSSKiB, s.RSSKiB), max(m.HeapKiB, s.HeapKiB), max(m.Goroutines, s.Goroutines)
		}
		return m
	}
	mid := len(samples) / 2
	return peak(samples[:mid]), peak(samples[mid:])
}
