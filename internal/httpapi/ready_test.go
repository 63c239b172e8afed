package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/httpapi"
)

// dependency is a database or broker that is up or down.
type dependency struct{ down bool }

func (d *dependency) Ping(context.Context) error {
	if d.down {
		return errors.New("connection refused")
	}
	return nil
}

func TestReadyzNamesEveryDependencyThatIsDown(t *testing.T) {
	db, broker := &dependency{}, &dependency{}
	checks := httpapi.ReadyChecks{{Name: "database", Check: db}, {Name: "broker", Check: broker}}
	tests := []struct {
		name                string
		dbDown, mqDown      bool
		path                string
		wantStatus          int
		wantBody            map[string]string
		readyIsAPlainPinger bool
	}{
		{"both up is ready", false, false, "/readyz", 200, map[string]string{"status": "ready", "database": "ok", "broker": "ok"}, false},
		{"a lost broker is unavailable and named", false, true, "/readyz", 503, map[string]string{"status": "unavailable", "database": "ok", "broker": "unreachable"}, false},
		{"a lost database is unavailable and named", true, false, "/readyz", 503, map[string]string{"status": "unavailable", "database": "unreachable", "broker": "ok"}, false},
		{"both lost are both named", true, true, "/readyz", 503, map[string]string{"status": "unavailable", "database": "unreachable", "broker": "unreachable"}, false},
		{"an excluded broker is not asked", false, true, "/readyz?exclude=broker", 200, map[string]string{"status": "ready", "database": "ok"}, false},
		{"a plain pinger is the database", true, false, "/readyz", 503, map[string]string{"status": "unavailable", "database": "unreachable"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db.down, broker.down = tt.dbDown, tt.mqDown
			var ready httpapi.Pinger = checks
			if tt.readyIsAPlainPinger {
				ready = db
			}
			srv, err := httpapi.New(httpapi.Deps{
				Types: fhir.NewRegistry(), Params: search.NewRegistry(time.UTC), Ready: ready, Metrics: prometheus.NewRegistry(),
			}, httpapi.DefaultConfig(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Handler().Test(httptest.NewRequest(http.MethodGet, tt.path, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantBody, body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadyChecksPingNamesTheFailedDependencies(t *testing.T) {
	checks := httpapi.ReadyChecks{{Name: "database", Check: &dependency{}}, {Name: "broker", Check: &dependency{down: true}}}
	err := checks.Ping(context.Background())
	if err == nil || err.Error() != "broker: connection refused" {
		t.Fatalf("Ping = %v, want the broker named", err)
	}
}
