package subscription

import (
	"sync/atomic"
	"time"

	"github.com/vidda/vidda/internal/obs"

	"github.com/prometheus/client_golang/prometheus"
)

// The runner's Prometheus metrics. Counters move as notifications go out;
// the gauges (subscriptions by status, those with a backlog, the age of
// the oldest notification not yet delivered) are read at scrape time from
// the loop's view, which only the instance that leads has: the others say
// 0, so a sum over instances is the cluster's value.

// Outcomes of a notification, as counted.
const (
	outcomeDelivered = "delivered"
	outcomeFailed    = "failed"
	// outcomeDropped: the matched version could not be read back.
	outcomeDropped = "dropped"
)

type metrics struct {
	notifications *prometheus.CounterVec
	handshakes    *prometheus.CounterVec
	matched       prometheus.Counter
	send          prometheus.Histogram
	latency       prometheus.Histogram

	leading atomic.Bool
}

func newMetrics() *metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_subscription_notifications_total",
			Help: "Event notifications by outcome: delivered (a 2xx), failed (tried again after back-off), dropped (the matched version is gone).",
		}, []string{"outcome"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_subscription_handshakes_total", Help: "Subscription handshakes by outcome: delivered or failed.",
		}, []string{"outcome"}),
		matched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_subscription_events_matched_total", Help: "Resource versions matched to a subscription's criteria and queued in its outbox.",
		}),
		send: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vidda_subscription_send_seconds", Help: "How long one notification's POST took, answered or not.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5 ms to about 10 s
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vidda_subscription_delivery_latency_seconds", Help: "From a change being matched to its notification delivered, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14), // 10 ms to about 40 min
		}),
	}
	for _, o := range []string{outcomeDelivered, outcomeFailed, outcomeDropped} {
		m.notifications.WithLabelValues(o)
	}
	for _, o := range []string{outcomeDelivered, outcomeFailed} {
		m.handshakes.WithLabelValues(o)
	}
	return m
}

// sent counts one notification's attempt that took d; err is the
// endpoint's failure.
func (m *metrics) sent(d time.Duration, handshake bool, err error) {
	m.send.Observe(d.Seconds())
	outcome := outcomeDelivered
	if err != nil {
		outcome = outcomeFailed
	}
	if handshake {
		m.handshakes.WithLabelValues(outcome).Inc()
		return
	}
	m.notifications.WithLabelValues(outcome).Inc()
}

// delivered observes the latency of an event matched at matched.
func (m *metrics) delivered(matched time.Time) {
	m.latency.Observe(max(time.Since(matched), 0).Seconds())
}

// Register adds the runner's metrics to reg; nil registers nothing.
func (r *Runner) Register(reg prometheus.Registerer) error {
	m := r.m
	return obs.Register(reg, m.notifications, m.handshakes, m.matched, m.send, m.latency, &collector{r: r, d: newDescs()})
}

type descs struct {
	leader, subscriptions, backlog, oldest *prometheus.Desc
}

func newDescs() descs {
	return descs{
		leader: prometheus.NewDesc("vidda_subscription_leader",
			"1 on the instance that matches and delivers notifications (holds the change feed's lock), 0 on the others.", nil, nil),
		subscriptions: prometheus.NewDesc("vidda_subscription_subscriptions",
			"Live subscriptions by status (requested, active, error); counted by the leading instance.", []string{"status"}, nil),
		backlog: prometheus.NewDesc("vidda_subscription_backlog_subscriptions",
			"Live subscriptions with notifications waiting in their outbox.", nil, nil),
		oldest: prometheus.NewDesc("vidda_subscription_oldest_pending_seconds",
			"Age of the oldest notification waiting to be delivered (0 when none waits).", nil, nil),
	}
}

// collector reads the gauges from the runner at scrape time.
type collector struct {
	r *Runner
	d descs
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.d.leader
	ch <- c.d.subscriptions
	ch <- c.d.backlog
	ch <- c.d.oldest
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r, m := c.r, c.r.m
	byStatus := map[string]int{StatusRequested: 0, StatusActive: 0, StatusError: 0}
	backlog := 0
	var oldest time.Time
	leading := m.leading.Load()
	if leading {
		r.mu.Lock()
		for _, s := range r.subs {
			if s.spec == nil || s.row.Deleted || !s.row.State.Live {
				continue
			}
			if _, ok := byStatus[s.spec.Status]; ok {
				byStatus[s.spec.Status]++
			}
			if !s.pending {
				continue
			}
			backlog++
			if !s.oldest.IsZero() && (oldest.IsZero() || s.oldest.Before(oldest)) {
				oldest = s.oldest
			}
		}
		r.mu.Unlock()
	}
	lead := 0.0
	if leading {
		lead = 1
	}
	ch <- prometheus.MustNewConstMetric(c.d.leader, prometheus.GaugeValue, lead)
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(c.d.subscriptions, prometheus.GaugeValue, float64(n), status)
	}
	ch <- prometheus.MustNewConstMetric(c.d.backlog, prometheus.GaugeValue, float64(backlog))
	age := 0.0
	if !oldest.IsZero() {
		age = max(time.Since(oldest), 0).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.d.oldest, prometheus.GaugeValue, age)
}
