package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/httpapi"
)

// newSubscriptionServer is a server whose Subscriptions are written
// through fhir/subscription, as in vidda serve (without a runner: these
// tests are about what is accepted and by whom).
func newSubscriptionServer(t *testing.T) *server {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Addr = ln.Addr().String()
	subs := subscription.NewService(types, subscription.NewChecker(types, params, subscription.DefaultConfig()), st)
	srv, err := httpapi.New(httpapi.Deps{
		Store: st, Types: types, Params: params, Verifier: keys, Ready: st, Metrics: prometheus.NewRegistry(),
		Subscriptions: subs,
	}, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	storeDone, httpDone := make(chan error, 1), make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	go func() { httpDone <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-httpDone; err != nil {
			t.Errorf("http server: %v", err)
		}
		if err := <-storeDone; err != nil {
			t.Errorf("store: %v", err)
		}
	})
	return &server{base: "http://" + cfg.Addr, keys: keys, st: st}
}

func (s *server) tokenWith(t *testing.T, role auth.Role, patient string, scopes ...string) string {
	t.Helper()
	tok, err := s.keys.Mint(context.Background(), auth.TokenRequest{Subject: "test-" + string(role), Role: role, PatientID: patient, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func subscriptionBody(criteria, channelType, endpoint string) string {
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "EHR inbox", "criteria": criteria,
		"channel": map[string]any{"type": channelType, "endpoint": endpoint, "payload": "application/fhir+json"},
	})
	return string(b)
}

func TestOnlySystemClientsAndAdminsWhoseScopesCoverTheCriteriaSubscribe(t *testing.T) {
	s := newSubscriptionServer(t)
	const hook = "https://ehr.example/fhir-hook"
	ehr := s.tokenWith(t, auth.RoleSystem, "", "system/Subscription.cruds", "system/Observation.rs")
	tests := []struct {
		name     string
		token    string
		criteria string
		status   int
	}{
		{"a system client with Subscription and Observation scopes", ehr, "Observation?patient=p1&code=http://loinc.org|29463-7", 201},
		{"the same client on a type its scopes do not cover", ehr, "Patient?gender=female", 403},
		{"a system client that may only read", s.tokenWith(t, auth.RoleSystem, ""), "Observation?patient=p1", 403},
		{"an admin", s.token(t, auth.RoleAdmin, ""), "Patient?gender=female", 201},
		{"a nurse, though user/*.* covers Subscription", s.token(t, auth.RoleNurse, ""), "Observation?patient=p1", 403},
		{"a patient", s.token(t, auth.RolePatient, "p1"), "Observation?patient=p1", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, "POST", "/fhir/Subscription", tt.token, subscriptionBody(tt.criteria, "rest-hook", hook))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if r.status != 201 {
				if code := r.outcome(t); code != "forbidden" {
					t.Errorf("issue code %q, want forbidden", code)
				}
				return
			}
			if m := r.json(t); m["status"] != "requested" {
				t.Errorf("stored status %v, want requested", m["status"])
			}
		})
	}
	r := s.do(t, "GET", "/fhir/Subscription?status=requested&url="+hook, ehr, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"total":2`) {
		t.Fatalf("search: %d %s", r.status, r.body)
	}
}

func TestASubscriptionViddaCannotServeIsAnOperationOutcome(t *testing.T) {
	s := newSubscriptionServer(t)
	admin := s.token(t, auth.RoleAdmin, "")
	tests := []struct {
		name, body, want string
	}{
		{"criteria on MedicationRequest, not served", subscriptionBody("MedicationRequest?status=active", "rest-hook", "https://ehr.example/h"), "MedicationRequest, which vidda does not serve"},
		{"criteria that do not parse", subscriptionBody("Observation?date=someday", "rest-hook", "https://ehr.example/h"), "criteria"},
		{"a websocket channel", subscriptionBody("Observation?code=x", "websocket", "https://ehr.example/h"), "rest-hook"},
		{"an http endpoint", subscriptionBody("Observation?code=x", "rest-hook", "http://ehr.example/h"), "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, "POST", "/fhir/Subscription", admin, tt.body)
			if r.status != 422 || r.outcome(t) != "not-supported" || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("status %d: %s, want 422 saying %q", r.status, r.body, tt.want)
			}
		})
	}
}

func TestASubscriptionUpdatedByItsClientIsHandshakenAgain(t *testing.T) {
	s := newSubscriptionServer(t)
	admin := s.token(t, auth.RoleAdmin, "")
	created := s.do(t, "POST", "/fhir/Subscription", admin, subscriptionBody("Observation?code=x", "rest-hook", "https://ehr.example/h")).json(t)
	id, _ := created["id"].(string)
	body := strings.Replace(subscriptionBody("Observation?code=y", "rest-hook", "https://ehr.example/h"), `{`, `{"id":"`+id+`",`, 1)
	body = strings.Replace(body, `"requested"`, `"active"`, 1)
	r := s.do(t, "PUT", "/fhir/Subscription/"+id, admin, body)
	if r.status != 200 || r.json(t)["status"] != "requested" || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if bad := s.do(t, "PUT", "/fhir/Subscription/"+id, admin, strings.Replace(body, "rest-hook", "email", 1)); bad.status != 422 {
		t.Fatalf("an update to an email channel: %d %s", bad.status, bad.body)
	}
}

func TestASubscriptionInABundleIsRefused(t *testing.T) {
	s := newSubscriptionServer(t)
	bundle := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":"Subscription"},"resource":` +
		subscriptionBody("Observation?code=x", "rest-hook", "https://ehr.example/h") + `}]}`
	r := s.do(t, "POST", "/fhir", s.token(t, auth.RoleAdmin, ""), bundle)
	if r.status != 200 || !strings.Contains(string(r.body), "422") || !strings.Contains(string(r.body), "on its own") {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
}
