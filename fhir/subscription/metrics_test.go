package subscription_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/internal/obs/obstest"

	"github.com/vidda/vidda/fhir/subscription"
)

// eventually waits until ok holds, failing after within.
func eventually(tb testing.TB, within time.Duration, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeliveriesFailuresAndTheBacklogShowInTheMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	reg := prometheus.NewPedanticRegistry()
	r.reg = reg
	rc := newReceiver(t)
	r.start(t)
	m := func(name string, labels ...string) float64 { return obstest.Sum(t, reg, name, labels...) }
	eventually(t, 10*time.Second, "the only runner leads", func() bool { return m("vidda_subscription_leader") == 1 })

	sub := r.subscribe(t, "Observation?code="+weight, rc.url(), subscription.PayloadFHIR)
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	eventually(t, 10*time.Second, "one active subscription", func() bool {
		return m("vidda_subscription_subscriptions", "status", "active") == 1
	})
	if got := m("vidda_subscription_handshakes_total", "outcome", "delivered"); got != 1 {
		t.Errorf("%v handshakes delivered, want 1", got)
	}

	// The receiver fails: the notifications wait in the outbox.
	rc.answer.Store(http.StatusServiceUnavailable)
	r.create(t, "p1", weight, "70")
	r.create(t, "p2", weight, "71")
	eventually(t, 10*time.Second, "a failed notification", func() bool {
		return m("vidda_subscription_notifications_total", "outcome", "failed") >= 1
	})
	eventually(t, 10*time.Second, "a subscription with a backlog", func() bool {
		return m("vidda_subscription_backlog_subscriptions") == 1 && m("vidda_subscription_oldest_pending_seconds") > 0
	})
	// The backlog shows with the first failed version; the matcher may
	// still be on the second.
	eventually(t, 10*time.Second, "both versions matched", func() bool {
		return m("vidda_subscription_events_matched_total") == 2
	})
	if got := m("vidda_subscription_notifications_total", "outcome", "delivered"); got != 0 {
		t.Errorf("%v notifications delivered to a failing receiver", got)
	}

	// It answers again: both are delivered and the backlog is gone.
	rc.answer.Store(http.StatusOK)
	rc.waitEvents(t, 2, 15*time.Second)
	eventually(t, 10*time.Second, "two deliveries counted and no backlog", func() bool {
		return m("vidda_subscription_notifications_total", "outcome", "delivered") == 2 &&
			m("vidda_subscription_backlog_subscriptions") == 0 && m("vidda_subscription_oldest_pending_seconds") == 0
	})
	if got := m("vidda_subscription_delivery_latency_seconds"); got != 2 {
		t.Errorf("%v delivery latencies observed, want 2", got)
	}
	if sends, tries := m("vidda_subscription_send_seconds"), m("vidda_subscription_notifications_total")+m("vidda_subscription_handshakes_total"); sends != tries {
		t.Errorf("%v POSTs timed for %v attempts", sends, tries)
	}

	r.stop()
	if got := m("vidda_subscription_leader"); got != 0 {
		t.Errorf("a stopped runner still says it leads (%v)", got)
	}
}
