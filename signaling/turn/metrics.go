package turn

import (
	"net"

	"github.com/vidda/vidda/internal/obs"

	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts what the embedded TURN server does, from pion's event
// hooks: allocations made and alive, authentication refused (by TURN
// method), relays refused by the peer rule.
type metrics struct {
	allocations   prometheus.Counter
	active        prometheus.Gauge
	authFailures  *prometheus.CounterVec
	relaysRefused prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_turn_allocations_total", Help: "TURN allocations made (a browser relaying its media).",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vidda_turn_allocations", Help: "TURN allocations alive now.",
		}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vidda_turn_auth_failures_total", Help: "TURN requests refused for their credentials (expired, forged or unknown), by TURN method.",
		}, []string{"method"}),
		relaysRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_turn_relays_refused_total", Help: "TURN permissions refused because the peer address is not allowed.",
		}),
	}
}

// events are pion's hooks that feed the metrics.
func (m *metrics) events() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(_, _ net.Addr, _, _, _ string, method string, verdict bool) {
			if !verdict {
				m.authFailures.WithLabelValues(method).Inc()
			}
		},
		OnAllocationCreated: func(_, _ net.Addr, _, _, _ string, _ net.Addr, _ int) {
			m.allocations.Inc()
			m.active.Inc()
		},
		OnAllocationDeleted: func(_, _ net.Addr, _, _, _ string) { m.active.Dec() },
	}
}

// Register adds the TURN server's metrics to reg.
func (s *Server) Register(reg prometheus.Registerer) error {
	return obs.Register(reg, s.m.allocations, s.m.active, s.m.authFailures, s.m.relaysRefused)
}
