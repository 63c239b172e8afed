package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/audit"
)

// Step 7 of `viddabench http`: what authorization plus the audit trail
// cost on GET /fhir/Observation/{id} and on one patient's Observation
// search, against the same requests with VIDDA_AUDIT=off. Both run on the
// same database in the same run: vidda is restarted for each mode, the
// modes alternate (on, off, then off, on, ...) so that a drift in the
// machine's load does not favour one, and each mode's rounds are merged.
// Every audited round also checks that each request it sent left exactly
// one AuditEvent after the SIGTERM that ends it.
//
// Rows written in one phase leave PostgreSQL work for later: autovacuum
// and autoanalyze of audit_record (the rows behind the auditevent view),
// and a checkpoint sooner. Left alone, that work lands in whatever phase
// runs next, often an audit-off one, and makes auditing look free or even
// faster. So after every phase, in both modes, the bench settles the
// database (VACUUM audit_record, then CHECKPOINT), meters what that costs
// PostgreSQL and reports it per request as maintenance, counted in the CPU
// overhead. Both grow with the
// rows written. ANALYZE does not: autoanalyze runs once the table has
// grown by a tenth, so on the bench's small table it runs far more often
// per row than on a real audit trail; when it runs inside a phase, that
// phase pays for it.

// targetAuditPct is the most that auditing may add to a request's p50 or
// take off its rate.
const targetAuditPct = 10.0

// auditReport is what step 7 measured.
type auditReport struct {
	Rounds int `json:"rounds"`
	// Trail is how many AuditEvents were written before the rounds.
	Trail  int          `json:"audit_trail_before"`
	PhaseS float64      `json:"phase_s"`
	Phases []auditPhase `json:"phases"`
	// Requests is how many requests the audited rounds sent (warm-up
	// included); Rows how many AuditEvents they left.
	Requests int64 `json:"audited_requests"`
	Rows     int64 `json:"audit_rows"`
	// Problems are failed requests, unclean exits and lost events.
	Problems []string `json:"problems,omitempty"`
}

// auditPhase is one request mix at one concurrency, with audit on and off.
type auditPhase struct {
	Name string  `json:"name"`
	On   summary `json:"audit_on"`
	Off  summary `json:"audit_off"`
	// The CPU time (user+system) vidda and PostgreSQL (the postmaster and
	// its children: backends, WAL writer, checkpointer, autovacuum) spent
	// per request, in µs: unlike latency and rate, it hardly depends on
	// what else the machine runs.
	OnViddaCPUus  float64 `json:"audit_on_vidda_cpu_us_per_request"`
	OffViddaCPUus float64 `json:"audit_off_vidda_cpu_us_per_request"`
	OnPGCPUus     float64 `json:"audit_on_postgres_cpu_us_per_request"`
	OffPGCPUus    float64 `json:"audit_off_postgres_cpu_us_per_request"`
	// PostgreSQL's CPU settling the database after the phase (vacuum,
	// analyze, checkpoint), per request.
	OnMaintCPUus  float64 `json:"audit_on_maintenance_cpu_us_per_request"`
	OffMaintCPUus float64 `json:"audit_off_maintenance_cpu_us_per_request"`
	// Overheads in percent: how much higher with audit on (rates: how
	// much lower).
	P50Pct  float64 `json:"p50_overhead_pct"`
	P99Pct  float64 `json:"p99_overhead_pct"`
	RatePct float64 `json:"rate_overhead_pct"`
	CPUPct  float64 `json:"cpu_overhead_pct"` // vidda + PostgreSQL + maintenance
	Met     bool    `json:"target_met"`
}

// auditLoad is one phase's request: a read by id or a patient search.
type auditLoad struct {
	name    string
	clients int
	do      func(ctx context.Context, t *target, rng *rand.Rand) error
}

// measureAudit runs step 7 on the database the earlier steps filled.
func measureAudit(ctx context.Context, o options, dbURL, dir string, ids []string, rep *report) error {
	if o.auditRounds == 0 {
		return nil
	}
	ar := &auditReport{Rounds: o.auditRounds, PhaseS: o.auditDuration.Seconds(), Trail: o.auditTrail}
	rep.Audit = ar
	if err := preloadReadings(ctx, dbURL); err != nil {
		return err
	}
	if err := preloadAuditTrail(ctx, dbURL, o.auditTrail); err != nil {
		return err
	}
	// Settle what the earlier steps wrote, so that no round pays for it.
	if err := onBenchDB(ctx, dbURL, "VACUUM ANALYZE observation", "CHECKPOINT"); err != nil {
		return err
	}
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text")
	out, err := runVidda(ctx, o.vidda, env, "token", "--role", "admin")
	if err != nil {
		return err
	}
	token := strings.TrimSpace(out)
	read := func(ctx context.Context, t *target, rng *rand.Rand) error {
		return t.read(ctx, ids[rng.IntN(len(ids))])
	}
	search := func(ctx context.Context, t *target, rng *rand.Rand) error {
		return t.search(ctx, fmt.Sprintf("bench-pat-%03d", rng.IntN(numPatients)))
	}
	loads := []auditLoad{
		{"GET Observation/{id}, 1 client", 1, read},
		{fmt.Sprintf("GET Observation/{id}, %d clients", o.clients), o.clients, read},
		{"Observation?patient=&_count=50, 1 client", 1, search},
		{fmt.Sprintf("Observation?patient=&_count=50, %d clients", o.clients), o.clients, search},
	}
	type merged struct {
		workers     []worker
		elapsed     time.Duration
		cpuBusy     float64
		vidda, post time.Duration // CPU time
		maint       time.Duration // PostgreSQL's CPU time settling after it
	}
	pgPID := postmasterPID(ctx, dbURL)
	acc := make([]map[bool]*merged, len(loads))
	for i := range acc {
		acc[i] = map[bool]*merged{true: {}, false: {}}
	}
	for round := range o.auditRounds {
		modes := []bool{true, false}
		if round%2 == 1 {
			modes = []bool{false, true}
		}
		for _, on := range modes {
			logPath := filepath.Join(dir, fmt.Sprintf("vidda-audit-%d-%s.log", round, onOff(on)))
			err := auditRound(ctx, o, dbURL, logPath, token, on, ar, func(t *target, pid int) int64 {
				var sent int64
				for i, l := range loads {
					meter := startCPU(watched{name: "vidda", pid: pid}, watched{name: "postgres", pid: pgPID, tree: true})
					w, elapsed := l.run(ctx, t, round, o.auditDuration)
					u := meter.stop()
					m := acc[i][on]
					m.workers = append(m.workers, w...)
					m.elapsed += elapsed
					m.cpuBusy += u.MachineBusyPct / float64(o.auditRounds)
					m.vidda += time.Duration(u.ViddaCores * float64(elapsed))
					m.post += time.Duration(u.PostgresCores * float64(elapsed))
					sent += requests(w)
					settle := startCPU(watched{name: "postgres", pid: pgPID, tree: true})
					t0 := time.Now()
					if err := onBenchDB(ctx, dbURL, "VACUUM audit_record", "CHECKPOINT"); err != nil {
						ar.Problems = append(ar.Problems, "audit step: settle: "+err.Error())
					}
					m.maint += time.Duration(settle.stop().PostgresCores * float64(time.Since(t0)))
				}
				return sent
			})
			if err != nil {
				rep.ServerLog = logTail(logPath)
				return err
			}
		}
	}
	for i, l := range loads {
		p := auditPhase{Name: l.name}
		for _, on := range []bool{true, false} {
			m := acc[i][on]
			s := summarize(m.elapsed, m.workers)
			s.Clients, s.CPUBusyPct = l.clients, m.cpuBusy
			perReq := func(d time.Duration) float64 {
				if n := s.Count + s.Errors; n > 0 {
					return float64(d.Microseconds()) / float64(n)
				}
				return 0
			}
			if on {
				p.On, p.OnViddaCPUus, p.OnPGCPUus, p.OnMaintCPUus = s, perReq(m.vidda), perReq(m.post), perReq(m.maint)
			} else {
				p.Off, p.OffViddaCPUus, p.OffPGCPUus, p.OffMaintCPUus = s, perReq(m.vidda), perReq(m.post), perReq(m.maint)
			}
		}
		p.P50Pct = pct(p.On.P50ms, p.Off.P50ms)
		p.P99Pct = pct(p.On.P99ms, p.Off.P99ms)
		p.RatePct = pct(p.Off.PerSecond, p.On.PerSecond)
		p.CPUPct = pct(p.OnViddaCPUus+p.OnPGCPUus+p.OnMaintCPUus, p.OffViddaCPUus+p.OffPGCPUus+p.OffMaintCPUus)
		p.Met = p.On.Count > 0 && p.Off.Count > 0 && p.P50Pct <= targetAuditPct && p.RatePct <= targetAuditPct
		for _, s := range []summary{p.On, p.Off} {
			if s.Errors > 0 {
				ar.Problems = append(ar.Problems, fmt.Sprintf("audit step, %s: %d failed, first: %s", l.name, s.Errors, s.FirstError))
			}
		}
		ar.Phases = append(ar.Phases, p)
	}
	if ar.Rows != ar.Requests {
		ar.Problems = append(ar.Problems, fmt.Sprintf("audit step: %d AuditEvents for %d audited requests", ar.Rows, ar.Requests))
	}
	return nil
}

// auditRound starts vidda with audit on or off, warms it up, runs measure,
// stops it with SIGTERM and counts the AuditEvents the round left.
func auditRound(ctx context.Context, o options, dbURL, logPath, token string, on bool, ar *auditReport, measure func(t *target, pid int) int64) error {
	addr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	mqttAddr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	before, err := countAuditEvents(ctx, dbURL)
	if err != nil {
		return err
	}
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_HTTP_ADDR="+addr, "VIDDA_MQTT_LISTEN="+mqttAddr,
		"VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text", "VIDDA_AUDIT="+onOff(on))
	srv, _, err := startServer(ctx, o.vidda, env, addr, logPath)
	if err != nil {
		return err
	}
	defer srv.kill()
	t := newTarget(srv.base, token, o.clients)
	defer t.close()
	// Warm-up, not recorded: connections, plans, caches.
	warm := auditLoad{clients: o.clients, do: func(ctx context.Context, t *target, rng *rand.Rand) error {
		return t.search(ctx, fmt.Sprintf("bench-pat-%03d", rng.IntN(numPatients)))
	}}
	w, _ := warm.run(ctx, t, 99, time.Second)
	sent := requests(w) + measure(t, srv.cmd.Process.Pid)
	if ctx.Err() != nil {
		return fmt.Errorf("audit step: %w", ctx.Err())
	}
	t.close()
	// The HTTP drain (20 s at most) and then the audit writer's (30 s).
	if _, code, err := srv.terminate(90 * time.Second); err != nil || code != 0 {
		return fmt.Errorf("audit step: vidda serve (VIDDA_AUDIT=%s) stopped with code %d: %w", onOff(on), code, err)
	}
	after, err := countAuditEvents(ctx, dbURL)
	if err != nil {
		return err
	}
	switch {
	case on:
		ar.Requests += sent
		ar.Rows += after - before
	case after != before:
		ar.Problems = append(ar.Problems, fmt.Sprintf("audit step: %d AuditEvents written with VIDDA_AUDIT=off", after-before))
	}
	return nil
}

// run sends l's requests from its clients for d and returns what each saw.
func (l auditLoad) run(ctx context.Context, t *target, seed int, d time.Duration) ([]worker, time.Duration) {
	workers := make([]worker, l.clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range l.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(seed))) //nolint:gosec // which id to read needs no secrecy.
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				if err := l.do(ctx, t, rng); err != nil {
					if ctx.Err() != nil {
						break
					}
					workers[w].fail(err.Error())
					continue
				}
				workers[w].lat = append(workers[w].lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	return workers, time.Since(start)
}

// search is one patient's newest 50 Observations.
func (t *target) search(ctx context.Context, patient string) error {
	return t.get(ctx, t.fhir+"/Observation?patient="+url.QueryEscape(patient)+"&_count=50", `"searchset"`)
}

// get sends a GET and checks for a 200 whose body holds want.
func (t *target) get(ctx context.Context, u, want string) error {
	req, err := t.request(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", u, err)
	}
	got, err := drain(resp)
	if err != nil {
		return fmt.Errorf("get %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), want) {
		return fmt.Errorf("get %s: %s: %s", u, resp.Status, clip(got))
	}
	return nil
}

// requests counts the requests workers sent, answered or failed.
func requests(workers []worker) int64 {
	var n int64
	for _, w := range workers {
		n += int64(len(w.lat) + w.errors)
	}
	return n
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// pct is how much higher a is than b, in percent.
func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * (a/b - 1)
}

// preloadPerPatient readings per patient make each patient search of step
// 7 answer a full page of 50.
const preloadPerPatient = 60

// preloadReadings COPYs preloadPerPatient readings of every bench patient
// into observation, with the columns the raw ceiling writes.
func preloadReadings(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("preload readings: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	code := tokens("http://loinc.org", "85354-9")
	category := tokens("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
	status := tokens("http://hl7.org/fhir/observation-status", "final")
	at := time.Now().UTC().Truncate(time.Millisecond)
	n := preloadPerPatient * numPatients
	rows := make([][]any, n)
	for i := range rows {
		r := newReading(maxClients-1, i) // a client number the create phase never uses
		id := newUUID()
		rows[i] = []any{
			id, int64(1), at, r.patient, r.storedBody(id, at), code, category, status,
			[]string{"Patient/" + r.patient},
			r.effective, r.effective.Add(time.Second),
		}
	}
	cols := []string{"id", "version_id", "last_updated", "patient_id", "content", "code", "category", "status", "subject", "date_start", "date_end"}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"observation"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("preload readings: %w", err)
	}
	return nil
}

// preloadAuditTrail writes n AuditEvents of reads spread over the past
// year through vidda's own audit.Writer (the rows vidda writes, one COPY
// per 10,000). On the empty table of a fresh bench database autoanalyze
// runs after every 10 % of growth, that is every few thousand rows, which
// no trail that has run for a while pays for; with a year's trail under
// it, it runs as rarely as it would in a region.
func preloadAuditTrail(ctx context.Context, dbURL string, n int) error {
	if n == 0 {
		return nil
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("preload audit trail: %w", err)
	}
	defer pool.Close()
	w, err := audit.NewWriter(pool, search.NewRegistry(time.UTC), audit.DefaultConfig(), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("preload audit trail: %w", err)
	}
	const batch = 10_000
	start := time.Now().Add(-365 * 24 * time.Hour)
	step := 365 * 24 * time.Hour / time.Duration(n)
	events := make([]audit.Event, 0, batch)
	for i := range n {
		events = append(events, audit.Event{
			Kind: audit.KindRead, Outcome: audit.OutcomeSuccess, Time: start.Add(time.Duration(i) * step),
			ResourceType: "Observation", ResourceID: fmt.Sprintf("obs-%d", i), RequestID: fmt.Sprintf("req-%d", i),
			Patients: []string{fmt.Sprintf("bench-pat-%03d", i%numPatients)},
			Agent: audit.Agent{
				Subject: fmt.Sprintf("u-%d", i%50), Role: "nurse", Reference: fmt.Sprintf("Practitioner/bench-prac-%d", i%50), Address: "127.0.0.1",
			},
		})
		if len(events) == batch || i == n-1 {
			if err := w.WriteNow(ctx, events...); err != nil {
				return fmt.Errorf("preload audit trail: %w", err)
			}
			events = events[:0]
		}
	}
	return onBenchDB(ctx, dbURL, "VACUUM ANALYZE audit_record")
}

// countAuditEvents counts the rows of the audit trail.
func countAuditEvents(ctx context.Context, dbURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect bench database: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM auditevent").Scan(&n); err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// text writes step 7 of the report.
func (a *auditReport) text(p func(string, ...any)) {
	p("7. audit: authorization plus audit vs VIDDA_AUDIT=off, same database, %d rounds alternating on/off, %gs per phase and round",
		a.Rounds, a.PhaseS)
	p("   (%d more readings loaded first: every patient search answers a full page of 50; and an audit trail of %d AuditEvents over the past year)",
		preloadPerPatient*numPatients, a.Trail)
	for _, ph := range a.Phases {
		p("   %s", ph.Name)
		p("     audit on   %s", line(ph.On, "req/s"))
		p("                CPU per request: vidda %.0f µs + PostgreSQL %.0f µs + maintenance %.0f µs", ph.OnViddaCPUus, ph.OnPGCPUus, ph.OnMaintCPUus)
		p("     audit off  %s", line(ph.Off, "req/s"))
		p("                CPU per request: vidda %.0f µs + PostgreSQL %.0f µs + maintenance %.0f µs", ph.OffViddaCPUus, ph.OffPGCPUus, ph.OffMaintCPUus)
		p("     overhead   p50 %+.1f%%  p99 %+.1f%%  req/s %+.1f%%  CPU/req %+.1f%%  (target p50 and req/s ≤ %g%%: %s)",
			ph.P50Pct, ph.P99Pct, ph.RatePct, ph.CPUPct, targetAuditPct, met(ph.Met))
	}
	p("   audit trail: %d AuditEvents for %d audited requests, each round ended by SIGTERM", a.Rows, a.Requests)
}
