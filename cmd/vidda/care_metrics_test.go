package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricWith sums the samples of name in the /metrics of the vidda at
// base whose labels include every one of labels (`kind="review-reading"`);
// a name with no sample at all fails the test.
func metricWith(t *testing.T, base, token, name string, labels ...string) float64 {
	t.Helper()
	total, found := scrapeMetric(t, base, token, name, labels...)
	if !found {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return total
}

// scrapeMetric reads the /metrics of the vidda at base (token: admin or
// system) and sums the samples of name whose labels include every one of
// labels; found is false when there is none.
func scrapeMetric(t *testing.T, base, token, name string, labels ...string) (total float64, found bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
lines:
	for _, line := range strings.Split(string(b), "\n") {
		sample, value, ok := strings.Cut(line, " ")
		if !ok || (sample != name && !strings.HasPrefix(sample, name+"{")) {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(sample, l) {
				continue lines
			}
		}
		v, _ := strconv.ParseFloat(value, 64)
		total += v
		found = true
	}
	return total, found
}

// TestTheCareEngineCountsTheTasksItOpensEscalatesAndCloses drives the
// engine of a real vidda with device readings and a CarePlan and reads
// its metrics from /metrics.
func TestTheCareEngineCountsTheTasksItOpensEscalatesAndCloses(t *testing.T) {
	r := newCareRig(t, "CARE-METRICS")
	admin, _, err := runCmd(t, context.Background(), r.env, "token", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	admin = strings.TrimSpace(admin)
	m := func(name string, labels ...string) float64 { return metricWith(t, r.base, admin, name, labels...) }
	waitMetric := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitMetric("this only instance leads the worklist", func() bool { return m("vidda_care_leader") == 1 })
	openedReview := func() float64 { return m("vidda_care_tasks_opened_total", `kind="review-reading"`) }
	before := openedReview()

	// A low SpO2 opens a Task; a critical one escalates it.
	r.read(t, "spo2", `"value":91,"unit":"%"`, time.Now().Add(-time.Minute))
	r.waitTasks(t, "reading|59408-5", func(ks []e2eTask) bool { return len(ks) == 1 })
	waitMetric("one review Task opened", func() bool { return openedReview() == before+1 })
	r.read(t, "spo2", `"value":87,"unit":"%"`, time.Now())
	r.waitTasks(t, "reading|59408-5", func(ks []e2eTask) bool { return len(ks) == 1 && ks[0].Priority == "stat" })
	waitMetric("the Task escalated", func() bool { return m("vidda_care_tasks_escalated_total") == 1 })
	if got := openedReview(); got != before+1 {
		t.Errorf("%v review Tasks opened, want %v: the second reading goes on the first Task", got, before+1)
	}

	// A planned measure that does not come opens a missed-measurement
	// Task; its reading has the engine close it.
	plan := fmt.Sprintf(`{"resourceType":"CarePlan","id":"metrics-hr","status":"active","intent":"plan","subject":{"reference":"Patient/demo-patient-1"},
		"period":{"start":%q},"activity":[{"detail":{"status":"in-progress","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},
		"scheduledTiming":{"repeat":{"frequency":1,"period":1,"periodUnit":"h"}}}}]}`, time.Now().Add(-3*time.Hour).UTC().Format(time.RFC3339))
	if status, body := send(t, http.MethodPut, r.base+"/fhir/CarePlan/metrics-hr", r.nurse, plan); status != 201 && status != 200 {
		t.Fatalf("PUT CarePlan: %d %s", status, body)
	}
	r.waitTasks(t, "missed|9279-1", func(ks []e2eTask) bool { return len(ks) == 1 })
	closedBefore := m("vidda_care_tasks_closed_total", `by="engine"`)
	if got := m("vidda_care_tasks_opened_total", `kind="missed-measurement"`); got < 1 {
		t.Errorf("%v missed-measurement Tasks opened", got)
	}
	r.read(t, "respiratory-rate", `"value":16,"unit":"/min"`, time.Now())
	r.waitTasks(t, "missed|9279-1", func(ks []e2eTask) bool { return len(ks) == 1 && ks[0].Status == "completed" })
	waitMetric("the engine closed the missed-measurement Task", func() bool {
		return m("vidda_care_tasks_closed_total", `by="engine"`) == closedBefore+1
	})

	// Everything flagged was reviewed; nothing failed.
	waitMetric("an empty outbox", func() bool {
		return m("vidda_care_outbox_readings") == 0 && m("vidda_care_outbox_lag_seconds") == 0
	})
	if got := m("vidda_care_readings_reviewed_total"); got < 2 {
		t.Errorf("%v flagged readings reviewed, want at least the 2 SpO2 readings", got)
	}
	if got := m("vidda_care_errors_total"); got != 0 {
		t.Errorf("%v care engine errors", got)
	}
}
