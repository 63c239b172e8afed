package care

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vidda/vidda/internal/obs"

	"github.com/prometheus/client_golang/prometheus"
)

// The engine's Prometheus metrics. Counters move where the work is done:
// Tasks by the instance that leads the worklist (and Acknowledge by the
// instance a nurse used), lookup failures by every instance's
// Interpreter. The outbox gauges are read from the database at scrape
// time by every instance, so they show a backlog even when no instance
// leads: take their max over instances, not their sum.

// Stages a failure is counted by (vidda_care_errors_total).
const (
	// stageLimits: a patient's Goals or CarePlans could not be read; the
	// reading was judged by the default limits.
	stageLimits = "limits_lookup"
	// stageTrend: a trend rule's readings could not be read; the reading
	// was judged without it.
	stageTrend = "trend_lookup"
	// stageRule: a flagged reading the rules could not make a problem of
	// (skipped).
	stageRule = "rule"
	// stageReview: a flagged reading whose Task could not be written
	// (tried again next round).
	stageReview = "review"
	// stageRound: a worklist round that failed (the outbox unreadable).
	stageRound = "round"
	// stageMissed: a missed-measurement check that failed.
	stageMissed = "missed_check"
)

// Who closed a Task (vidda_care_tasks_closed_total).
const (
	closedByEngine       = "engine"       // readings resumed, or no longer planned
	closedByPractitioner = "practitioner" // Worklist.Acknowledge
)

type metrics struct {
	opened    *prometheus.CounterVec
	escalated prometheus.Counter
	closed    *prometheus.CounterVec
	reviewed  prometheus.Counter
	errors    *prometheus.CounterVec
	leading   atomic.Bool
}

func newMetrics() *metrics {
	m := &metrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_care_tasks_opened_total", Help: "Worklist Tasks opened, by kind (review-reading, missed-measurement).",
		}, []string{"kind"}),
		escalated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_care_tasks_escalated_total", Help: "Open worklist Tasks whose priority a worse reading raised.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_care_tasks_closed_total",
			Help: "Worklist Tasks completed by the engine (readings resumed, no longer planned) or a practitioner's acknowledgement through the dashboard (not counted: Tasks completed by a PUT to the FHIR API).",
		}, []string{"by"}),
		reviewed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_care_readings_reviewed_total", Help: "Flagged readings taken from the outbox and reviewed (a Task opened or extended, or nothing to do).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_care_errors_total",
			Help: "Failures of the care engine by stage: limits_lookup and trend_lookup (the reading was judged without them), rule (a flagged reading skipped), review (a Task write, tried again), round, missed_check.",
		}, []string{"stage"}),
	}
	for _, k := range []string{TaskReview, TaskMissed} {
		m.opened.WithLabelValues(k)
	}
	for _, b := range []string{closedByEngine, closedByPractitioner} {
		m.closed.WithLabelValues(b)
	}
	for _, s := range []string{stageLimits, stageTrend, stageRule, stageReview, stageRound, stageMissed} {
		m.errors.WithLabelValues(s)
	}
	return m
}

// A Worklist made by NewWorklist alone counts nothing: every method is
// safe on a nil *metrics.

func (m *metrics) fail(stage string) {
	if m != nil {
		m.errors.WithLabelValues(stage).Inc()
	}
}

func (m *metrics) open(kind string) {
	if m != nil {
		m.opened.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) escalate() {
	if m != nil {
		m.escalated.Inc()
	}
}

func (m *metrics) close(by string) {
	if m != nil {
		m.closed.WithLabelValues(by).Inc()
	}
}

func (m *metrics) review(n int) {
	if m != nil {
		m.reviewed.Add(float64(n))
	}
}

// Register adds the engine's metrics (its Interpreter's and Worklist's
// included) to reg; nil registers nothing.
func (e *Engine) Register(reg prometheus.Registerer) error {
	m := e.in.m
	return obs.Register(reg, m.opened, m.escalated, m.closed, m.reviewed, m.errors, &outboxCollector{e: e, d: newOutboxDescs()})
}

type outboxDescs struct {
	leader, readings, oldest *prometheus.Desc
}

func newOutboxDescs() outboxDescs {
	return outboxDescs{
		leader: prometheus.NewDesc("vidda_care_leader",
			"1 on the instance that runs the worklist (holds the lock vidda.care), 0 on the others.", nil, nil),
		readings: prometheus.NewDesc("vidda_care_outbox_readings",
			"Flagged readings stored and not yet reviewed into Tasks (the care outbox; the same on every instance).", nil, nil),
		oldest: prometheus.NewDesc("vidda_care_outbox_lag_seconds",
			"Age of the oldest flagged reading waiting in the outbox, from when it was queued (by the transaction that stored or flagged it; 0 when none waits).", nil, nil),
	}
}

// outboxCollector reads the outbox at scrape time.
type outboxCollector struct {
	e *Engine
	d outboxDescs
}

// scrapeTimeout bounds the outbox query of one scrape.
const scrapeTimeout = 2 * time.Second

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.d.leader
	ch <- c.d.readings
	ch <- c.d.oldest
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	lead := 0.0
	if c.e.in.m.leading.Load() {
		lead = 1
	}
	ch <- prometheus.MustNewConstMetric(c.d.leader, prometheus.GaugeValue, lead)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, oldest, err := c.e.db.outboxBacklog(ctx)
	if err != nil {
		// No value rather than a wrong one; /readyz says the database
		// is away.
		c.e.log.Log(ctx, slog.LevelDebug, "care: outbox metrics", "err", err)
		return
	}
	lag := 0.0
	if n > 0 && !oldest.IsZero() {
		lag = max(time.Since(oldest), 0).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.d.readings, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.d.oldest, prometheus.GaugeValue, lag)
}

// outboxBacklog counts the outbox and returns when its oldest row was
// queued (zero when none). The age is the row's own, not its reading's:
// a reading deleted or updated since it was queued still waits as long.
// One pass: count(*) reads every row anyway.
func (d *DB) outboxBacklog(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest *time.Time
	err := d.pool.QueryRow(ctx, "SELECT count(*), min(queued_at) FROM care_outbox").Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("care outbox backlog: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, *oldest, nil
}
