package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/devices"
)

type metrics struct {
	messages     *prometheus.CounterVec
	byFormat     map[devices.Kind]prometheus.Counter // messages' children, looked up once
	rejected     *prometheus.CounterVec
	stored       prometheus.Counter
	duplicates   prometheus.Counter
	deadLetters  prometheus.Counter
	commitErrors prometheus.Counter
	queued       prometheus.Gauge
	batchSize    prometheus.Histogram
	commit       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vidda_ingest_messages_total", Help: "Device messages received, by format."}, []string{"format"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vidda_ingest_rejected_total", Help: "Readings or messages rejected, by reason."}, []string{"reason"}),
		stored:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vidda_ingest_stored_total", Help: "Readings stored as Observations."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_ingest_duplicates_total", Help: "Re-sent readings that were already stored.",
		}),
		deadLetters:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vidda_ingest_dead_letters_total", Help: "Messages kept as dead letters."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "vidda_ingest_commit_errors_total", Help: "Failed commit attempts (retried)."}),
		queued:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "vidda_ingest_queued_messages", Help: "Messages waiting for a commit (consumer lag)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vidda_ingest_batch_readings", Help: "Readings per commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vidda_ingest_commit_seconds", Help: "Commit latency of a batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	m.byFormat = make(map[devices.Kind]prometheus.Counter, 3)
	for _, k := range []devices.Kind{devices.KindReadings, devices.KindSenML, devices.KindFHIR} {
		m.byFormat[k] = m.messages.WithLabelValues(string(k))
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.rejected, m.stored, m.duplicates, m.deadLetters, m.commitErrors, m.queued, m.batchSize, m.commit)
	}
	return m
}

// message counts a message of format k.
func (m *metrics) message(k devices.Kind) {
	if c, ok := m.byFormat[k]; ok {
		c.Inc()
		return
	}
	m.messages.WithLabelValues(string(k)).Inc()
}

func (m *metrics) observeCommit(d time.Duration, readings, dead int) {
	m.commit.Observe(d.Seconds())
	m.batchSize.Observe(float64(readings))
	m.deadLetters.Add(float64(dead))
}
