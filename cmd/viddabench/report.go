package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// report is everything one run measured; it is printed as text or JSON.
type report struct {
	Machine  machine   `json:"machine"`
	Postgres pgInfo    `json:"postgres"`
	Config   runConfig `json:"config"`

	Raw          summary `json:"raw_insert"`
	StartupMs    float64 `json:"startup_ms"`
	IdleRSSKiB   int64   `json:"idle_rss_kib"`
	Creates      summary `json:"creates"`
	CreatesVsRaw float64 `json:"creates_vs_raw"`
	ReadIDs      int     `json:"read_ids"`
	ReadsOne     summary `json:"reads_sequential"`
	ReadsMany    summary `json:"reads_concurrent"`
	LoadRSSKiB   int64   `json:"load_rss_kib"`
	Stopped      bool    `json:"stopped"`
	ShutdownMs   float64 `json:"shutdown_ms"`
	ExitCode     int     `json:"exit_code"`
	Rows         int     `json:"observation_rows"` // -1: not counted
	// Audit is step 7; nil when skipped.
	Audit *auditReport `json:"audit,omitempty"`

	Targets   targets  `json:"targets"`
	Problems  []string `json:"problems"`
	ServerLog string   `json:"server_log,omitempty"`
}

type runConfig struct {
	Vidda     string  `json:"vidda"`
	Clients   int     `json:"clients"`
	DurationS float64 `json:"duration_s"`
	Reads     int     `json:"reads"`
}

type targets struct {
	CreatesVsRaw    float64 `json:"creates_vs_raw_min"`
	CreatesVsRawMet bool    `json:"creates_vs_raw_met"`
	ReadP99ms       float64 `json:"read_p99_ms_max"`
	ReadP99Met      bool    `json:"read_p99_met"`
}

// judge checks the targets and lists what makes the run fail.
func (r *report) judge() {
	r.Targets = targets{
		CreatesVsRaw: targetCreateRatio, CreatesVsRawMet: r.CreatesVsRaw >= targetCreateRatio,
		ReadP99ms: targetReadP99ms, ReadP99Met: r.ReadsOne.Count > 0 && r.ReadsOne.P99ms <= targetReadP99ms,
	}
	for _, p := range []struct {
		name string
		s    summary
	}{{"creates", r.Creates}, {"sequential reads", r.ReadsOne}, {"concurrent reads", r.ReadsMany}} {
		if p.s.Errors > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d failed, first: %s", p.name, p.s.Errors, p.s.FirstError))
		}
	}
	if r.Stopped && r.ExitCode != 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("vidda serve exited with code %d after SIGTERM", r.ExitCode))
	}
	if r.Rows >= 0 && r.Rows < r.Creates.Count {
		r.Problems = append(r.Problems, fmt.Sprintf("only %d observation rows after %d acknowledged creates", r.Rows, r.Creates.Count))
	}
	if r.Audit != nil {
		r.Problems = append(r.Problems, r.Audit.Problems...)
	}
}

// serverFailed reports whether the server's log belongs in the report.
func (r *report) serverFailed() bool {
	return r.Creates.Errors > 0 || r.ReadsOne.Errors > 0 || r.ReadsMany.Errors > 0 || (r.Stopped && r.ExitCode != 0)
}

func (r *report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	var b strings.Builder
	r.text(&b)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (r *report) text(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	m, pg := r.Machine, r.Postgres
	p("viddabench http: %s, %d clients, %gs per write phase, %d sequential reads", r.Config.Vidda, r.Config.Clients, r.Config.DurationS, r.Config.Reads)
	p("machine   nproc %d, %s, %.1f GiB RAM, %s/%s, %s, load average at start %s",
		m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.OS, m.Arch, m.Go, m.LoadAvg)
	p("postgres  %s, fsync=%s, synchronous_commit=%s, database %s (dropped after the run)", pg.Version, pg.Fsync, pg.SynchronousCommit, pg.Database)
	p("")
	p("1. raw ceiling: %d pgx connections, one autocommitted INSERT INTO observation per transaction", r.Config.Clients)
	p("   ceiling       %s", line(r.Raw, "inserts/s"))
	if r.StartupMs == 0 {
		p("2.-6. vidda serve was not started or never became ready")
		r.problems(p)
		return
	}
	p("2. vidda serve")
	p("   start-up      %s (exec to the first 200 from /readyz, polled every 5 ms)", msText(r.StartupMs))
	p("   idle RSS      %s (%s after ready)", kibText(r.IdleRSSKiB), idleWait)
	p("3. creates: %d clients POST /fhir/Observation (~1 KB blood pressure), 201 counted", r.Creates.Clients)
	p("   creates       %s", line(r.Creates, "creates/s"))
	p("   vs raw        %.2f× raw inserts/s (target ≥ %.1f×: %s)", r.CreatesVsRaw, targetCreateRatio, met(r.Targets.CreatesVsRawMet))
	p("4. reads: GET /fhir/Observation/<id> of %d created ids, chosen at random", r.ReadIDs)
	p("   1 client      %s", line(r.ReadsOne, "reads/s"))
	p("                 target p99 ≤ %g ms: %s", targetReadP99ms, met(r.Targets.ReadP99Met))
	p("   %-13s %s", fmt.Sprintf("%d clients", r.ReadsMany.Clients), line(r.ReadsMany, "reads/s"))
	p("5. memory")
	p("   RSS after load %s", kibText(r.LoadRSSKiB))
	if r.Stopped {
		rows := "rows not counted"
		if r.Rows >= 0 {
			rows = fmt.Sprintf("%d observation rows for %d acknowledged creates", r.Rows, r.Creates.Count)
		}
		p("6. SIGTERM: exited in %s with code %d; %s", msText(r.ShutdownMs), r.ExitCode, rows)
	} else {
		p("6. SIGTERM: not reached")
	}
	if r.Audit != nil {
		r.Audit.text(p)
	}
	r.problems(p)
}

func (r *report) problems(p func(string, ...any)) {
	p("")
	if len(r.Problems) == 0 {
		p("OK: no errors (targets are reported above, not enforced)")
	}
	for _, pr := range r.Problems {
		p("PROBLEM: %s", pr)
	}
	if r.ServerLog != "" {
		p("\n--- vidda serve log (end) ---\n%s\n--- end of log ---", strings.TrimRight(r.ServerLog, "\n"))
	}
}

// line is one phase in a line: rate, count, latency percentiles, errors.
func line(s summary, unit string) string {
	if s.Count == 0 && s.Errors == 0 {
		return "not run"
	}
	return fmt.Sprintf("%8.0f %-9s (%d in %.2fs)  p50 %s  p90 %s  p99 %s  max %s  errors %d  CPU %.0f%% busy",
		s.PerSecond, unit, s.Count, s.Seconds, msText(s.P50ms), msText(s.P90ms), msText(s.P99ms), msText(s.MaxMs), s.Errors, s.CPUBusyPct)
}

func msText(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func kibText(k int64) string {
	if k == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
