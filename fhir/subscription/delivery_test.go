package subscription_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
)

const (
	weight = "29463-7" // LOINC body weight
	pulse  = "8867-4"  // LOINC heart rate
)

// historyNotification is what a payload notification carries.
type historyNotification struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string `json:"fullUrl"`
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Subject      struct {
				Reference string `json:"reference"`
			} `json:"subject"`
		} `json:"resource"`
		Request struct {
			Method string `json:"method"`
		} `json:"request"`
	} `json:"entry"`
}

func TestASubscriptionIsHandshakenThenNotifiedOfWhatMatchesFromBothWritePaths(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	r.start(t)
	sub := r.subscribe(t, "Observation?patient=p1&code=http://loinc.org|"+weight, rc.url(), subscription.PayloadFHIR, "Authorization: Bearer hook-secret")
	if got, _ := r.status(t, sub.ID); got != subscription.StatusRequested {
		t.Fatalf("a new subscription is %s, want requested until its handshake", got)
	}
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	hs := rc.notices()
	if len(hs) != 1 || hs[0].kind != "handshake" || hs[0].header.Get("Authorization") != "Bearer hook-secret" {
		t.Fatalf("handshake: %+v", hs)
	}
	var empty historyNotification
	if err := json.Unmarshal(hs[0].body, &empty); err != nil || empty.Type != "history" || len(empty.Entry) != 0 {
		t.Fatalf("handshake body %s: %v", hs[0].body, err)
	}

	want := map[string]bool{}
	want[r.create(t, "p1", weight, "71.5").ID] = true                             // the FHIR API's create path
	r.create(t, "p1", pulse, "64")                                                // another code
	r.create(t, "p2", weight, "80.0")                                             // another patient
	for _, res := range r.ingest(t, "p1", weight, "dev1/a", "dev1/b", "dev1/c") { // the devices' COPY path
		want[res.ID] = true
	}
	r.ingest(t, "p2", weight, "dev2/a")

	rc.waitEvents(t, len(want), 10*time.Second)
	time.Sleep(300 * time.Millisecond) // nothing else may follow
	evs, ids := rc.events()
	if len(ids) != len(want) {
		t.Fatalf("%d distinct events for %d matching readings", len(ids), len(want))
	}
	var numbers []int
	for _, n := range evs {
		var b historyNotification
		if err := json.Unmarshal(n.body, &b); err != nil {
			t.Fatalf("event body %s: %v", n.body, err)
		}
		if b.ResourceType != "Bundle" || b.Type != "history" || b.ID != n.eventID || len(b.Entry) != 1 {
			t.Fatalf("event %s: body %s", n.eventID, n.body)
		}
		e := b.Entry[0]
		if !want[e.Resource.ID] || e.Resource.Subject.Reference != "Patient/p1" || n.resource != "Observation/"+e.Resource.ID+"/_history/1" ||
			e.FullURL != "https://vidda.test/fhir/Observation/"+e.Resource.ID || e.Request.Method != http.MethodPost {
			t.Errorf("event %s carries %+v (X-Vidda-Resource %s)", n.eventID, e, n.resource)
		}
		if n.subscription != "Subscription/"+sub.ID || !strings.HasPrefix(n.header.Get("Content-Type"), subscription.PayloadFHIR) ||
			n.header.Get("Authorization") != "Bearer hook-secret" {
			t.Errorf("event %s headers %v", n.eventID, n.header)
		}
		if n.eventID != store.EventID(sub.ID, store.Version{Type: "Observation", ID: e.Resource.ID, Version: 1}) {
			t.Errorf("event id %s is not derived from the subscription and the version", n.eventID)
		}
		k, _ := strconv.Atoi(n.eventNumber)
		numbers = append(numbers, k)
	}
	if !slices.IsSorted(numbers) {
		t.Errorf("events arrived out of order: %v", numbers)
	}
}

func TestAReceiverThatFailsForAWhileGetsEveryNotificationAcrossARestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	r.start(t)
	sub := r.subscribe(t, "Observation?code="+weight, rc.url(), subscription.PayloadFHIR)
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)

	rc.answer.Store(http.StatusServiceUnavailable)
	want := map[string]bool{}
	for i := range 3 {
		want[r.create(t, "p"+strconv.Itoa(i), weight, "70").ID] = true
	}
	errText := r.waitStatus(t, sub.ID, subscription.StatusError, 10*time.Second)
	if !strings.Contains(errText, "503") || strings.Contains(errText, "s3cret") {
		t.Errorf("Subscription.error %q should name the 503 and not the endpoint's query", errText)
	}

	// vidda stops; readings arrive meanwhile through the devices' path;
	// vidda starts again.
	r.stop()
	for _, res := range r.ingest(t, "p9", weight, "dev9/a", "dev9/b") {
		want[res.ID] = true
	}
	r.start(t)
	time.Sleep(500 * time.Millisecond) // still failing after the restart
	if _, ids := rc.events(); len(ids) != 0 {
		t.Fatalf("%d events accepted while the receiver failed", len(ids))
	}
	rc.answer.Store(http.StatusOK)

	evs := rc.waitEvents(t, len(want), 15*time.Second)
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	_, ids := rc.events()
	got := map[string]bool{}
	for _, n := range evs {
		got[strings.Split(n.resource, "/")[1]] = true
	}
	for id := range want {
		if !got[id] {
			t.Errorf("Observation/%s never arrived", id)
		}
	}
	if len(ids) != len(want) {
		t.Errorf("%d distinct event ids for %d readings", len(ids), len(want))
	}
	t.Logf("%d readings, %d deliveries accepted, %d distinct events", len(want), len(evs), len(ids))
}

func TestAnIDOnlySubscriptionIsNotifiedWithoutABody(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	r.start(t)
	sub := r.subscribe(t, "Observation?patient=p1", rc.url(), "")
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	obs := r.create(t, "p1", weight, "70")
	n := rc.waitEvents(t, 1, 10*time.Second)[0]
	if len(n.body) != 0 || n.header.Get("Content-Type") != "" || n.resource != "Observation/"+obs.ID+"/_history/1" || n.eventID == "" {
		t.Fatalf("id-only notification: headers %v body %q", n.header, n.body)
	}
}

func TestTheGrantOfTheWriterLimitsWhatIsNotified(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	r.start(t)
	// An admin acting in one patient's context (patient/ scopes) grants
	// that patient's compartment only.
	onlyP1 := func(string) (subscription.Grant, error) {
		return subscription.Grant{Access: store.Access{PatientID: "p1"}, By: "admin-in-context"}, nil
	}
	st, err := r.service.Create(context.Background(), r.parse(t, "Subscription",
		subscriptionJSON("Observation?code="+weight, rc.url(), subscription.PayloadFHIR)), onlyP1, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	r.waitStatus(t, st.ID, subscription.StatusActive, 10*time.Second)
	r.create(t, "p2", weight, "80")
	mine := r.create(t, "p1", weight, "70")
	r.create(t, "p3", weight, "90")
	rc.waitEvents(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	evs, _ := rc.events()
	if len(evs) != 1 || !strings.HasPrefix(evs[0].resource, "Observation/"+mine.ID+"/") {
		t.Fatalf("notified %d events (%v), want only the reading of p1", len(evs), evs)
	}
}

func TestAFailedHandshakeIsAnErrorThatRecoversWhenTheEndpointAnswers(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	rc.answer.Store(http.StatusNotFound)
	r.start(t)
	sub := r.subscribe(t, "Observation?patient=p1", rc.url(), subscription.PayloadFHIR)
	errText := r.waitStatus(t, sub.ID, subscription.StatusError, 10*time.Second)
	if !strings.Contains(errText, "handshake") || !strings.Contains(errText, "404") {
		t.Errorf("error %q", errText)
	}
	r.create(t, "p1", weight, "70") // not notified: never active
	rc.answer.Store(http.StatusOK)
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	after := r.create(t, "p1", weight, "71")
	rc.waitEvents(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if evs, _ := rc.events(); len(evs) != 1 || !strings.HasPrefix(evs[0].resource, "Observation/"+after.ID+"/") {
		t.Fatalf("events %v, want only the reading after activation", evs)
	}
}

func TestTurningASubscriptionOffOrDeletingItStopsItsNotifications(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"off", "deleted"} {
		t.Run("when "+how, func(t *testing.T) {
			r := newRig(t, fastConfig())
			rc := newReceiver(t)
			r.start(t)
			sub := r.subscribe(t, "Observation?patient=p1", rc.url(), "")
			r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
			r.create(t, "p1", weight, "70")
			rc.waitEvents(t, 1, 10*time.Second)
			ctx := context.Background()
			if how == "off" {
				body := strings.Replace(subscriptionJSON("Observation?patient=p1", rc.url(), ""), `"requested"`, `"off"`, 1)
				body = strings.Replace(body, `{`, `{"id":"`+sub.ID+`",`, 1)
				if _, _, err := r.service.Update(ctx, r.parse(t, "Subscription", body), sub.ID, 0, system, store.Access{}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := r.st.Delete(ctx, "Subscription", sub.ID, store.Access{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			r.create(t, "p1", weight, "71")
			time.Sleep(500 * time.Millisecond)
			if evs, _ := rc.events(); len(evs) != 1 {
				t.Fatalf("%d events, want none after the subscription was %s", len(evs), how)
			}
			var live bool
			if err := r.pool.QueryRow(ctx, "SELECT live FROM subscription_state WHERE id = $1", sub.ID).Scan(&live); err != nil || live {
				t.Fatalf("still live (%v)", err)
			}
		})
	}
}

func TestTwoInstancesDeliverEachNotificationOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	other := newRigOn(t, r.pool.Config().ConnString(), fastConfig())
	rc := newReceiver(t)
	r.start(t)
	other.start(t)
	sub := r.subscribe(t, "Observation?code="+weight, rc.url(), subscription.PayloadFHIR)
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	const n = 20
	for i := range n {
		if i%2 == 0 {
			r.create(t, "p1", weight, "70")
		} else {
			other.ingest(t, "p2", weight, "dev/"+strconv.Itoa(i))
		}
	}
	rc.waitEvents(t, n, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if evs, ids := rc.events(); len(evs) != n || len(ids) != n {
		t.Fatalf("%d deliveries of %d distinct events, want %d of each", len(evs), len(ids), n)
	}
	// The one that leads stops: the other takes over.
	r.stop()
	other.create(t, "p1", weight, "72")
	rc.waitEvents(t, n+1, 15*time.Second)
}

func TestAChangeCommittedLateIsNotSkipped(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	rc := newReceiver(t)
	r.start(t)
	sub := r.subscribe(t, "Observation?code="+weight, rc.url(), "")
	r.waitStatus(t, sub.ID, subscription.StatusActive, 10*time.Second)
	first := r.create(t, "p1", weight, "70")
	rc.waitEvents(t, 1, 10*time.Second)

	// A writer that began before the next reading commits after it (two
	// ingest committers do this): a cursor on last_updated would pass it.
	ctx := context.Background()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, sql := range []string{
		"CREATE TEMP TABLE held ON COMMIT DROP AS SELECT * FROM observation WHERE id = '" + first.ID + "'",
		"UPDATE held SET id = 'held-1', ingest_key = NULL, last_updated = now() - interval '1 hour'",
		"INSERT INTO observation SELECT * FROM held",
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	later := r.create(t, "p1", weight, "71")
	time.Sleep(300 * time.Millisecond)
	if _, ids := rc.events(); len(ids) != 1 {
		t.Fatalf("%d events while an older writer is open; the feed must wait for it", len(ids))
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rc.waitEvents(t, 3, 10*time.Second)
	got := map[string]bool{}
	for _, n := range evs {
		got[strings.Split(n.resource, "/")[1]] = true
	}
	if !got["held-1"] || !got[later.ID] {
		t.Fatalf("events %v: the late commit and the reading after it must both arrive", got)
	}
}
