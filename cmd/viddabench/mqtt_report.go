package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vidda/vidda/devices/loadgen"
)

// Targets of the device-ingestion issue; missing one is reported, not an
// error.
const (
	targetEmbeddedPerSec = 25_000 // readings/s, 1,000 homes flooding
	targetVsCeiling      = 0.5    // embedded ÷ CopyFrom ceiling
	targetSinglePerSec   = 2_000  // one connection, window 20
	targetFixedP99ms     = 250.0  // p99 publish→commit at the fixed load
	targetRSSMiB         = 250.0  // vidda's peak RSS
	// issueNoopPerSec is what the issue measured for a no-op hook (with a
	// paho load generator), for comparison.
	issueNoopPerSec = 44_000
)

// ingestRun is one load phase. Its summary counts the readings confirmed
// within the phase (PerSecond is the throughput); the percentiles cover
// every confirmed reading, those confirmed while draining too.
type ingestRun struct {
	summary
	Window           int     `json:"window"`
	OfferedPerSecond float64 `json:"offered_per_second,omitempty"`
	Sent             int     `json:"sent"`
	Confirmed        int     `json:"confirmed"`
	Unconfirmed      int     `json:"unconfirmed_after_drain"`
	BrokerAcks       int     `json:"broker_pubacks"`
	MaxLateMs        float64 `json:"max_late_ms,omitempty"`
	CPU              cpuUse  `json:"cpu"`
	// Stored is how many observation rows the phase added (-1: not
	// counted); it must not be below Confirmed.
	Stored  int          `json:"stored_rows"`
	Commits *commitStats `json:"commits,omitempty"`
}

func newIngestRun(res loadgen.Result, l loadgen.Load, cpu cpuUse) ingestRun {
	s := summarize(res.Elapsed, []worker{{lat: res.Latencies, errors: res.Errors, firstErr: res.FirstError}})
	s.Clients, s.Count, s.PerSecond, s.CPUBusyPct = res.Homes, res.InPeriod, res.PerSecond(), cpu.MachineBusyPct
	return ingestRun{
		summary: s, Window: l.Window, OfferedPerSecond: l.Rate, Sent: res.Sent, Confirmed: res.Confirmed,
		Unconfirmed: res.Unconfirmed, BrokerAcks: res.BrokerAcks, MaxLateMs: ms(res.MaxLate), CPU: cpu, Stored: -1,
	}
}

// ran reports whether the phase produced anything.
func (r ingestRun) ran() bool { return r.Sent > 0 || r.Errors > 0 }

// commitStats are vidda's own ingest metrics over a phase.
type commitStats struct {
	Commits      int     `json:"commits"`
	MeanReadings float64 `json:"mean_readings_per_commit"`
	MeanCommitMs float64 `json:"mean_commit_ms"`
}

type mqttConfig struct {
	Vidda             string  `json:"vidda"`
	Homes             int     `json:"homes"`
	Window            int     `json:"window"`
	DurationS         float64 `json:"duration_s"`
	BacklogReadings   int     `json:"backlog_readings"`
	FixedRate         float64 `json:"fixed_rate"`
	Mosquitto         string  `json:"mosquitto"`
	MosquittoInflight int     `json:"mosquitto_max_inflight"`
	NaivePool         int     `json:"naive_pool"`
}

type viddaRun struct {
	StartupMs float64 `json:"startup_ms"`
	// LogLines counts what vidda logged at VIDDA_LOG_LEVEL=warn (warnings
	// and errors); LogHead is the first few of them.
	LogLines   int      `json:"log_lines"`
	LogHead    []string `json:"log_head,omitempty"`
	RSSKiB     int64    `json:"rss_kib_after_flood"`
	PeakRSSKiB int64    `json:"peak_rss_kib"`
	Stopped    bool     `json:"stopped"`
	ShutdownMs float64  `json:"shutdown_ms"`
	ExitCode   int      `json:"exit_code"`
}

// mqttReport is everything one `viddabench mqtt` run measured.
type mqttReport struct {
	Machine  machine    `json:"machine"`
	Postgres pgInfo     `json:"postgres"`
	Config   mqttConfig `json:"config"`

	ProvisionS float64 `json:"provision_s"`
	// ObservationBytes is the mean JSON size of the rows the ceiling wrote.
	ObservationBytes int       `json:"observation_bytes"`
	Ceiling          []summary `json:"copy_ceiling"` // one per connection count
	CeilingCPU       []cpuUse  `json:"copy_ceiling_cpu"`
	Naive            ingestRun `json:"naive_consumer"`
	Noop             ingestRun `json:"noop_hook"`

	Embedded      viddaRun  `json:"embedded"`
	Flood         ingestRun `json:"embedded_flood"`
	Single        ingestRun `json:"embedded_single_connection"`
	Fixed         ingestRun `json:"embedded_fixed_rate"`
	External      viddaRun  `json:"external"`
	ExternalFlood ingestRun `json:"mosquitto_flood"`
	// ExternalStoredPerSec is the DB count's growth during the mosquitto
	// flood, per second.
	ExternalStoredPerSec float64 `json:"mosquitto_stored_per_second"`

	Targets   []targetResult `json:"targets"`
	Problems  []string       `json:"problems"`
	ServerLog string         `json:"server_log,omitempty"`
}

type targetResult struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
	Ran    bool    `json:"ran"`
}

// ceiling is the best CopyFrom rate.
func (r *mqttReport) ceiling() float64 {
	best := 0.0
	for _, c := range r.Ceiling {
		best = max(best, c.PerSecond)
	}
	return best
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// judge checks the targets and lists what makes the run fail: errors and
// acknowledged readings that are not stored.
func (r *mqttReport) judge() {
	flood := r.Flood.PerSecond
	peakMiB := float64(max(r.Embedded.PeakRSSKiB, r.Embedded.RSSKiB)) / 1024
	r.Targets = []targetResult{
		{"embedded flood readings/s", flood, fmt.Sprintf("≥ %d", targetEmbeddedPerSec), flood >= targetEmbeddedPerSec, r.Flood.ran()},
		{"embedded ÷ CopyFrom ceiling", ratio(flood, r.ceiling()), fmt.Sprintf("≥ %.1f", targetVsCeiling), ratio(flood, r.ceiling()) >= targetVsCeiling, r.Flood.ran() && r.ceiling() > 0},
		{"one connection readings/s", r.Single.PerSecond, fmt.Sprintf("≥ %d", targetSinglePerSec), r.Single.PerSecond >= targetSinglePerSec, r.Single.ran()},
		{"p99 ms at fixed load", r.Fixed.P99ms, fmt.Sprintf("≤ %.0f", targetFixedP99ms), r.Fixed.Count > 0 && r.Fixed.P99ms <= targetFixedP99ms, r.Fixed.ran()},
		{"vidda peak RSS MiB", peakMiB, fmt.Sprintf("≤ %.0f", targetRSSMiB), peakMiB > 0 && peakMiB <= targetRSSMiB, r.Embedded.PeakRSSKiB > 0},
	}
	for i, c := range r.Ceiling {
		if c.Errors > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("copy ceiling %d: %d commits failed, first: %s", i+1, c.Errors, c.FirstError))
		}
	}
	for _, p := range []struct {
		name string
		run  ingestRun
	}{
		{"naive consumer", r.Naive},
		{"no-op hook", r.Noop},
		{"embedded flood", r.Flood},
		{"embedded single connection", r.Single},
		{"embedded fixed rate", r.Fixed},
		{"mosquitto flood", r.ExternalFlood},
	} {
		if p.run.Errors > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d connections failed, first: %s", p.name, p.run.Errors, p.run.FirstError))
		}
		if p.run.Stored >= 0 && p.run.Stored < p.run.Confirmed {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: LOST READINGS: %d confirmed to devices, %d stored", p.name, p.run.Confirmed, p.run.Stored))
		}
	}
	if x := r.ExternalFlood; x.Stored >= 0 && x.Stored < x.BrokerAcks {
		r.Problems = append(r.Problems, fmt.Sprintf("mosquitto flood: LOST READINGS: mosquitto acknowledged %d, vidda stored %d", x.BrokerAcks, x.Stored))
	}
	for _, v := range []struct {
		name string
		run  viddaRun
	}{{"embedded", r.Embedded}, {"external", r.External}} {
		if v.run.Stopped && v.run.ExitCode != 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("vidda serve (%s) exited with code %d after SIGTERM", v.name, v.run.ExitCode))
		}
	}
}

func (r *mqttReport) write(w io.Writer, asJSON bool) error {
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

func (r *mqttReport) text(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	m, pg, c := r.Machine, r.Postgres, r.Config
	p("viddabench mqtt: %s, %d homes (one connection and device credential each), window %d, %gs per phase",
		c.Vidda, c.Homes, c.Window, c.DurationS)
	p("machine   nproc %d, %s, %.1f GiB RAM, %s/%s, %s, load average at start %s",
		m.CPUs, m.CPUModel, float64(m.MemTotalKiB)/(1<<20), m.OS, m.Arch, m.Go, m.LoadAvg)
	p("postgres  %s, fsync=%s, synchronous_commit=%s, database %s (dropped after the run)", pg.Version, pg.Fsync, pg.SynchronousCommit, pg.Database)
	p("load      devices/loadgen: raw MQTT 3.1.1 over mochi's packet codec, QoS 1, compact JSON readings of 5 types; a reading")
	p("          is confirmed by its PUBACK (embedded broker: after the commit) or by vidda's reply on …/acks (mosquitto)")
	if r.ProvisionS > 0 {
		p("homes     %d patients, devices and credentials written through fhir/store in %.1fs", c.Homes, r.ProvisionS)
	}
	p("")
	p("1. ceiling: pgx CopyFrom of vidda's observation rows (~%d B of JSON, every column incl. ingest_key), %d rows per commit", r.ObservationBytes, copyBatch)
	for i, s := range r.Ceiling {
		p("   %-15s %s", plural(s.Clients, "connection"), line(s, "rows/s"))
		if i < len(r.CeilingCPU) {
			p("   %-15s %s", "CPU", cpuText(r.CeilingCPU[i]))
		}
	}
	p("   (latencies are per %d-row commit)", copyBatch)
	p("2. naive consumer: in-process devices/broker whose Handler INSERTs each reading in its own transaction (pool of %d), then acks", c.NaivePool)
	r.runLines(p, r.Naive, false)
	p("3. no-op hook: in-process devices/broker whose Handler acks at once and stores nothing")
	r.runLines(p, r.Noop, false)
	p("   the issue quotes ~%d/s for this with a paho load generator; this run: %.2f× that", issueNoopPerSec, ratio(r.Noop.PerSecond, issueNoopPerSec))
	p("4. vidda serve, embedded broker (VIDDA_LOG_LEVEL=warn, fresh database)")
	if r.Embedded.StartupMs == 0 {
		p("   not started or never ready")
	} else {
		p("   start-up      %s", msText(r.Embedded.StartupMs))
		p("   a. flood: %d homes, each keeping %d readings unacknowledged; publish→PUBACK = publish→commit", r.Flood.Clients, r.Flood.Window)
		r.runLines(p, r.Flood, true)
		p("      vs ceiling    %.2f of CopyFrom's best, %.0f rows/s (target ≥ %.1f: %s)", ratio(r.Flood.PerSecond, r.ceiling()), r.ceiling(), targetVsCeiling, r.met(1))
		p("      vs naive      %.1f× the naive consumer", ratio(r.Flood.PerSecond, r.Naive.PerSecond))
		p("      vs no-op      %.2f of the no-op hook", ratio(r.Flood.PerSecond, r.Noop.PerSecond))
		p("      target ≥ %d readings/s: %s", targetEmbeddedPerSec, r.met(0))
		p("      RSS           %s after the flood, %s peak (target ≤ %.0f MiB: %s)", kibText(r.Embedded.RSSKiB), kibText(r.Embedded.PeakRSSKiB), targetRSSMiB, r.met(4))
		p("   b. one connection flushing %d buffered readings (3 days' backlog), window %d", r.Config.BacklogReadings, r.Single.Window)
		r.runLines(p, r.Single, true)
		p("      target ≥ %d readings/s: %s", targetSinglePerSec, r.met(2))
		p("   c. fixed offered load: %.0f readings/s over %d homes; latency from when each publish was due", r.Fixed.OfferedPerSecond, r.Fixed.Clients)
		r.runLines(p, r.Fixed, true)
		if r.Fixed.ran() {
			share := ratio(r.Fixed.PerSecond, r.Fixed.OfferedPerSecond)
			p("      %.0f%% of the offered load confirmed in the period; publishes went out up to %s after they were due", 100*share, msText(r.Fixed.MaxLateMs))
			if share < 0.95 {
				p("      (vidda did not keep up with the offered load, so this latency is mostly queueing; a full window delays publishes)")
			}
		}
		p("      target p99 ≤ %.0f ms: %s", targetFixedP99ms, r.met(3))
		stopLine(p, r.Embedded)
	}
	p("5. vidda serve with Mosquitto (VIDDA_MQTT_URL; max_inflight_messages %d, max_queued_messages 0)", c.MosquittoInflight)
	switch {
	case c.Mosquitto == "":
		p("   skipped (--mosquitto \"\")")
	case r.External.StartupMs == 0:
		p("   not started or never ready")
	default:
		p("   flood: %d homes, each keeping %d readings unconfirmed by vidda's reply on …/acks (publish→reply = publish→commit + delivery)", r.ExternalFlood.Clients, r.ExternalFlood.Window)
		r.runLines(p, r.ExternalFlood, true)
		p("      stored        %.0f readings/s by the database count over the flood (%.2f of embedded)", r.ExternalStoredPerSec, ratio(r.ExternalStoredPerSec, r.Flood.PerSecond))
		p("      mosquitto     %d PUBACKs to devices; %d stored when the backlog had drained", r.ExternalFlood.BrokerAcks, r.ExternalFlood.Stored)
		stopLine(p, r.External)
	}
	p("")
	p("targets (reported, not enforced)")
	for _, t := range r.Targets {
		state := met(t.Met)
		if !t.Ran {
			state = "not measured"
		}
		p("   %-28s %10.2f  target %-7s %s", t.Name, t.Value, t.Target, state)
	}
	p("")
	if len(r.Problems) == 0 {
		p("OK: no errors and no lost readings")
	}
	for _, pr := range r.Problems {
		p("PROBLEM: %s", pr)
	}
	if r.ServerLog != "" {
		p("\n--- vidda serve log (end) ---\n%s\n--- end of log ---", strings.TrimRight(r.ServerLog, "\n"))
	}
}

// runLines prints a load phase: rate and latency, then what was sent,
// stored and who used the CPU.
func (r *mqttReport) runLines(p func(string, ...any), run ingestRun, vidda bool) {
	ind := "   "
	if vidda {
		ind = "      "
	}
	if !run.ran() {
		p("%snot run", ind)
		return
	}
	p("%s%-13s %s", ind, "readings", line(run.summary, "/s"))
	stored := ""
	if run.Stored >= 0 {
		stored = fmt.Sprintf(", %d rows stored", run.Stored)
	}
	p("%s%-13s %d sent, %d confirmed (%d in the period), %d unconfirmed after the drain%s", ind, "count", run.Sent, run.Confirmed, run.Count, run.Unconfirmed, stored)
	p("%s%-13s %s", ind, "CPU", cpuText(run.CPU))
	if cs := run.Commits; cs != nil && cs.Commits > 0 {
		p("%s%-13s %d commits, %.0f readings and %s each on average", ind, "vidda ingest", cs.Commits, cs.MeanReadings, msText(cs.MeanCommitMs))
	}
}

// cpuText is who used the CPU, in cores.
func cpuText(u cpuUse) string {
	s := fmt.Sprintf("machine %.0f%% busy; cores: viddabench %.2f", u.MachineBusyPct, u.BenchCores)
	for _, c := range []struct {
		name  string
		cores float64
	}{{"vidda", u.ViddaCores}, {"postgres", u.PostgresCores}, {"mosquitto", u.MosquittoCores}} {
		if c.cores > 0 {
			s += fmt.Sprintf(", %s %.2f", c.name, c.cores)
		}
	}
	return s + fmt.Sprintf(", other %.2f", u.OtherCores)
}

func (r *mqttReport) met(i int) string {
	if i >= len(r.Targets) || !r.Targets[i].Ran {
		return "not measured"
	}
	return met(r.Targets[i].Met)
}

func stopLine(p func(string, ...any), v viddaRun) {
	if v.Stopped {
		p("   SIGTERM: exited in %s with code %d", msText(v.ShutdownMs), v.ExitCode)
	} else {
		p("   SIGTERM: not reached")
	}
	if v.LogLines == 0 {
		p("   log: nothing at level warn or above")
		return
	}
	p("   log: %d lines at level warn or above, first:", v.LogLines)
	for _, l := range v.LogHead {
		p("      %s", l)
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
