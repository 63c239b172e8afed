package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// webhook is an EHR's notification endpoint: it records the events it
// accepts, and answers with the status it is set to.
type webhook struct {
	srv    *httptest.Server
	answer atomic.Int32
	mu     sync.Mutex
	events map[string]string // event id → X-Vidda-Resource, for accepted events
	tries  int               // every request, handshakes and refused ones included
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{events: map[string]string{}}
	w.answer.Store(http.StatusOK)
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		status := int(w.answer.Load())
		w.mu.Lock()
		w.tries++
		if id := req.Header.Get("X-Vidda-Event-Id"); id != "" && status == http.StatusOK {
			var b struct {
				ID    string `json:"id"`
				Entry []struct {
					Resource struct {
						Subject struct{ Reference string } `json:"subject"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if json.Unmarshal(body, &b) == nil && b.ID == id && len(b.Entry) == 1 && b.Entry[0].Resource.Subject.Reference == "Patient/demo-patient-1" {
				w.events[id] = req.Header.Get("X-Vidda-Resource")
			} else {
				status = http.StatusBadRequest // not what was subscribed to
			}
		}
		w.mu.Unlock()
		rw.WriteHeader(status)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) count() (events, tries int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events), w.tries
}

func (w *webhook) waitEvents(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, _ := w.count()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook accepted %d distinct events within %v, want %d", got, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subscriptionStatus reads a Subscription's status over the API.
func subscriptionStatus(t *testing.T, base, token, id string) (status, errText string) {
	t.Helper()
	var s struct{ Status, Error string }
	getJSON(t, base+"/fhir/Subscription/"+id, token, http.StatusOK, &s)
	return s.Status, s.Error
}

func waitSubscription(t *testing.T, base, token, id, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, errText := subscriptionStatus(t, base, token, id)
		if got == want {
			return errText
		}
		if time.Now().After(deadline) {
			t.Fatalf("Subscription/%s is %s (%q), want %s", id, got, errText, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestASubscriptionDeliversAcrossAFailingReceiverAndAViddaRestart is the
// whole path as an EHR sees it: a system client subscribes over HTTP, a
// home device's readings arrive over MQTT, the EHR's endpoint fails for a
// while, vidda is killed, readings are stored while it is down, vidda
// starts again, the endpoint recovers; then every reading has arrived.
func TestASubscriptionDeliversAcrossAFailingReceiverAndAViddaRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "error",
		"VIDDA_SUBSCRIPTION_RETRY_MIN": "50ms", "VIDDA_SUBSCRIPTION_RETRY_MAX": "400ms",
		"VIDDA_SUBSCRIPTION_ERROR_AFTER": "2", "VIDDA_SUBSCRIPTION_POLL": "100ms",
	}
	base := "http://" + env["VIDDA_HTTP_ADDR"]
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-1", "--serial", "SCALE-1")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(out), &cred); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCmd(t, ctx, env, "token", "--role", "system", "--sub", "ehr-1", "--scope", "system/Subscription.cruds system/Observation.rs")
	if err != nil {
		t.Fatal(err)
	}
	ehr := strings.TrimSpace(out)
	hook := newWebhook(t)

	first := startVidda(t, env)
	body := fmt.Sprintf(`{"resourceType":"Subscription","status":"requested","reason":"weights to the EHR",
		"criteria":"Observation?patient=demo-patient-1&code=http://loinc.org|29463-7",
		"channel":{"type":"rest-hook","endpoint":%q,"payload":"application/fhir+json","header":["Authorization: Bearer ehr-inbox"]}}`,
		hook.srv.URL+"/vidda")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/fhir/Subscription", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ehr)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID, Status string }
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || created.Status != "requested" {
		t.Fatalf("create: %d %+v %v", resp.StatusCode, created, err)
	}
	waitSubscription(t, base, ehr, created.ID, "active", 15*time.Second)

	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	gw := &gateway{acked: map[int]bool{}}
	gw.flood(t, env["VIDDA_MQTT_LISTEN"], cred, []int{0, 1, 2}, at)
	hook.waitEvents(t, 3, 15*time.Second)

	hook.answer.Store(http.StatusServiceUnavailable)
	gw.flood(t, env["VIDDA_MQTT_LISTEN"], cred, []int{3, 4}, at)
	if errText := waitSubscription(t, base, ehr, created.ID, "error", 15*time.Second); !strings.Contains(errText, "503") {
		t.Errorf("Subscription.error %q does not name the 503", errText)
	}
	if left := gw.unacked(5); len(left) > 0 {
		t.Fatalf("readings %v were not acknowledged", left)
	}

	// vidda dies; readings keep arriving through the store's ingest path
	// (another instance's broker, say) while it is down.
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	pool := dbtest.PoolFor(t, dbURL)
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	var down []store.IngestObservation
	for i := range 2 {
		res, err := types.Parse("Observation", fmt.Appendf(nil, `{"resourceType":"Observation","status":"final",
			"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/demo-patient-1"},
			"effectiveDateTime":%q,"valueQuantity":{"value":70.%d,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
			at.Add(time.Duration(100+i)*time.Second).Format(time.RFC3339), i))
		if err != nil {
			t.Fatal(err)
		}
		down = append(down, store.IngestObservation{Key: "while-down/" + fmt.Sprint(i), Resource: res})
	}
	if _, err := st.Ingest(ctx, down, nil); err != nil {
		t.Fatal(err)
	}

	startVidda(t, env)
	time.Sleep(time.Second)
	if n, tries := hook.count(); n != 3 || tries < 5 {
		t.Fatalf("while the endpoint fails: %d events accepted, %d requests; want 3 and retries", n, tries)
	}
	hook.answer.Store(http.StatusOK)
	hook.waitEvents(t, 7, 20*time.Second)
	waitSubscription(t, base, ehr, created.ID, "active", 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	n, tries := hook.count()
	if n != 7 {
		t.Fatalf("%d distinct events for 7 readings", n)
	}
	t.Logf("7 readings: 7 distinct events accepted after %d requests (handshake and refused attempts included)", tries)
}
