package bulk

import (
	"time"

	"github.com/vidda/vidda/internal/obs"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts what this instance's exporter does: kick-offs it
// accepted, runs it started and how they ended, what they wrote and how
// long they took. A job runs on whichever instance claims it, so the
// kick-offs of one instance and the runs of another add up only across
// instances.
type metrics struct {
	queued    prometheus.Counter
	started   prometheus.Counter
	finished  *prometheus.CounterVec
	running   prometheus.Gauge
	resources prometheus.Counter
	bytes     prometheus.Counter
	duration  *prometheus.HistogramVec
}

// outcomeInterrupted is a run cut short by a stop: its job runs again.
const outcomeInterrupted = "interrupted"

func newMetrics() *metrics {
	m := &metrics{
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_export_jobs_queued_total", Help: "Bulk Data kick-offs accepted here and queued as jobs.",
		}),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_export_runs_started_total", Help: "Export runs started by this instance (a job taken over or run again counts again).",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_export_runs_finished_total", Help: "Export runs ended, by outcome: completed, failed, cancelled, interrupted (a stop; the job runs again).",
		}, []string{"outcome"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vidda_export_running", Help: "Export runs in progress on this instance.",
		}),
		resources: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_export_resources_written_total", Help: "Resources written to export files (one ndjson line each).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_export_bytes_written_total", Help: "Bytes written to export files.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vidda_export_run_seconds", Help: "How long an export run took, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 17), // 50 ms to about 55 min
		}, []string{"outcome"}),
	}
	// Every outcome is there from the start, so a rate over it is 0, not
	// absent, until the first run ends so.
	for _, o := range []string{OutcomeCompleted, OutcomeFailed, OutcomeCancelled, outcomeInterrupted} {
		m.finished.WithLabelValues(o)
	}
	return m
}

// Register adds the exporter's metrics to reg; nil registers nothing.
func (e *Exporter) Register(reg prometheus.Registerer) error {
	m := e.m
	return obs.Register(reg, m.queued, m.started, m.finished, m.running, m.resources, m.bytes, m.duration)
}

// begin counts a run that starts.
func (m *metrics) begin() {
	m.started.Inc()
	m.running.Inc()
}

// end counts a run that ended with outcome after took.
func (m *metrics) end(outcome string, took time.Duration) {
	m.running.Dec()
	m.finished.WithLabelValues(outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(took.Seconds())
}

// flushEvery is how many lines a run writes between two updates of the
// written counters: often enough for a live rate, rare enough to cost
// nothing per line.
const flushEvery = 4096

// tally counts one run's lines and bytes, and adds them to the written
// counters every flushEvery lines and when the run ends.
type tally struct {
	m            *metrics
	lines, bytes int64
}

// add counts one line of n bytes.
func (t *tally) add(n int) {
	t.lines++
	t.bytes += int64(n)
	if t.lines >= flushEvery {
		t.flush()
	}
}

// flush moves what was counted to the counters (adding 0 is harmless).
func (t *tally) flush() {
	t.m.resources.Add(float64(t.lines))
	t.m.bytes.Add(float64(t.bytes))
	t.lines, t.bytes = 0, 0
}
