package subscription_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// rig is a store over a database of the test's own, with its group-commit
// writers running, and a Runner that can be stopped and started again as
// a vidda restart would.
type rig struct {
	pool    *pgxpool.Pool
	st      *store.Store
	types   *fhir.Registry
	params  *search.Registry
	cfg     subscription.Config
	service *subscription.Service
	// reg, when set, serves the metrics of the runner start starts.
	reg prometheus.Registerer

	stopRunner func()
}

// fastConfig retries and polls quickly, so that tests of failures take
// seconds.
func fastConfig() subscription.Config {
	cfg := subscription.DefaultConfig()
	cfg.BaseURL = "https://vidda.test"
	cfg.Timeout = 2 * time.Second
	cfg.RetryMin = 50 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.ErrorAfter = 2
	cfg.Poll = 100 * time.Millisecond
	return cfg
}

func newRig(tb testing.TB, cfg subscription.Config) *rig {
	tb.Helper()
	return newRigOn(tb, dbtest.NewDatabase(tb), cfg)
}

func newRigOn(tb testing.TB, dbURL string, cfg subscription.Config) *rig {
	tb.Helper()
	pool := dbtest.PoolFor(tb, dbURL)
	log := slog.New(slog.DiscardHandler)
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("store: %v", err)
		}
	})
	r := &rig{pool: pool, st: st, types: types, params: params, cfg: cfg}
	r.service = subscription.NewService(types, subscription.NewChecker(types, params, cfg), st)
	tb.Cleanup(r.stop)
	return r
}

// start runs a Runner until stop (or the end of the test).
func (r *rig) start(tb testing.TB) {
	tb.Helper()
	if r.stopRunner != nil {
		tb.Fatal("runner already running")
	}
	runner := subscription.NewRunner(r.st, r.types, r.params, r.cfg, testLog())
	if r.reg != nil {
		if err := runner.Register(r.reg); err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	r.stopRunner = func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("runner: %v", err)
		}
	}
}

// stop ends the Runner, as a vidda shutdown does.
func (r *rig) stop() {
	if r.stopRunner != nil {
		r.stopRunner()
		r.stopRunner = nil
	}
}

// testLog is the runner's log: discarded, or text on stderr at debug
// level with VIDDA_TEST_LOG=debug.
func testLog() *slog.Logger {
	if os.Getenv("VIDDA_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// system grants what a system client with system/*.* may see: everything.
func system(string) (subscription.Grant, error) {
	return subscription.Grant{By: "test-system"}, nil
}

func (r *rig) parse(tb testing.TB, typ, body string) *fhir.Resource {
	tb.Helper()
	res, err := r.types.Parse(typ, []byte(body))
	if err != nil {
		tb.Fatalf("parse %s: %v\n%s", typ, err, body)
	}
	return res
}

// subscribe creates a Subscription through the Service, as POST
// /fhir/Subscription does.
func (r *rig) subscribe(tb testing.TB, criteria, endpoint, payload string, headers ...string) *store.Stored {
	tb.Helper()
	st, err := r.service.Create(context.Background(), r.parse(tb, "Subscription", subscriptionJSON(criteria, endpoint, payload, headers...)), system, store.Access{})
	if err != nil {
		tb.Fatalf("subscribe %s: %v", criteria, err)
	}
	return st
}

func subscriptionJSON(criteria, endpoint, payload string, headers ...string) string {
	channel := map[string]any{"type": "rest-hook", "endpoint": endpoint}
	if payload != "" {
		channel["payload"] = payload
	}
	if len(headers) > 0 {
		channel["header"] = headers
	}
	b, _ := json.Marshal(map[string]any{
		"resourceType": "Subscription", "status": "requested", "reason": "test", "criteria": criteria, "channel": channel,
	})
	return string(b)
}

// status reads a Subscription's status and error.
func (r *rig) status(tb testing.TB, id string) (string, string) {
	tb.Helper()
	st, err := r.st.Read(context.Background(), "Subscription", id, store.Access{})
	if err != nil {
		tb.Fatal(err)
	}
	var m struct{ Status, Error string }
	if err := json.Unmarshal(st.Content, &m); err != nil {
		tb.Fatal(err)
	}
	return m.Status, m.Error
}

// waitStatus waits until Subscription id has status want.
func (r *rig) waitStatus(tb testing.TB, id, want string, within time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		got, errText := r.status(tb, id)
		if got == want {
			return errText
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Subscription/%s is %s (%q), want %s within %v", id, got, errText, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func obsJSON(patient, code, when, value string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,`+
		`"valueQuantity":{"value":%s,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, code, patient, when, value)
}

// create stores a reading through the store's create path (POST
// /fhir/Observation).
func (r *rig) create(tb testing.TB, patient, code, value string) *store.Stored {
	tb.Helper()
	st, err := r.st.Create(context.Background(), r.parse(tb, "Observation", obsJSON(patient, code, "2026-11-20T07:00:00Z", value)), store.Access{})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// ingest stores readings through the devices' path: prepared, then COPYed
// in one batch.
func (r *rig) ingest(tb testing.TB, patient, code string, keys ...string) []store.IngestResult {
	tb.Helper()
	obs := make([]store.IngestObservation, len(keys))
	for i, k := range keys {
		obs[i] = store.IngestObservation{Key: k, Resource: r.parse(tb, "Observation", obsJSON(patient, code, "2026-11-20T08:00:00Z", "70.1"))}
	}
	res, err := r.st.Ingest(context.Background(), obs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// notice is one request a receiver got.
type notice struct {
	at           time.Time
	kind         string // handshake or event
	eventID      string
	eventNumber  string
	resource     string // X-Vidda-Resource
	subscription string
	header       http.Header
	body         []byte
}

// receiver is a webhook endpoint that records what it is sent and
// answers with the status it is set to.
type receiver struct {
	srv    *httptest.Server
	answer atomic.Int32
	mu     sync.Mutex
	got    []notice
	signal chan struct{}
}

func newReceiver(tb testing.TB) *receiver {
	tb.Helper()
	rc := &receiver{signal: make(chan struct{}, 1)}
	rc.answer.Store(http.StatusOK)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		n := notice{
			at: time.Now(), kind: req.Header.Get("X-Vidda-Notification"), eventID: req.Header.Get("X-Vidda-Event-Id"),
			eventNumber: req.Header.Get("X-Vidda-Event-Number"), resource: req.Header.Get("X-Vidda-Resource"),
			subscription: req.Header.Get("X-Vidda-Subscription"), header: req.Header.Clone(), body: body,
		}
		status := int(rc.answer.Load())
		rc.mu.Lock()
		if status/100 == 2 {
			rc.got = append(rc.got, n)
		}
		rc.mu.Unlock()
		select {
		case rc.signal <- struct{}{}:
		default:
		}
		w.WriteHeader(status)
	}))
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/hook?token=s3cret" }

// notices returns what was accepted (2xx) so far.
func (rc *receiver) notices() []notice {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]notice(nil), rc.got...)
}

// events returns the accepted events, and how many distinct event ids
// they carry.
func (rc *receiver) events() ([]notice, map[string]int) {
	var out []notice
	ids := map[string]int{}
	for _, n := range rc.notices() {
		if n.kind == "event" {
			out = append(out, n)
			ids[n.eventID]++
		}
	}
	return out, ids
}

// waitEvents waits until n distinct events were accepted.
func (rc *receiver) waitEvents(tb testing.TB, n int, within time.Duration) []notice {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		evs, ids := rc.events()
		if len(ids) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d distinct events arrived within %v, want %d", len(ids), within, n)
		}
		select {
		case <-rc.signal:
		case <-time.After(20 * time.Millisecond):
		}
	}
}
