package web

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/care"
)

// Server time of the dashboard's pages at a clinic's size, through the
// whole handler (session check, store queries, template, audit record):
//
//	deploy/with-testdb.sh go test -run '^$' -bench Dashboard -benchtime 40x ./internal/web/
//
// Worklist: 1,000 monitored patients on the nurse's care team, 200 open
// Tasks (target 50 ms). Patient page and /me: one patient with a year of
// readings, 5 measures twice a day (3,650 Observations; target 100 ms).

// bulk writes resources in transactions of 500 (update as create).
func (h *harness) bulk(typ string, bodies map[string]map[string]any) {
	h.t.Helper()
	var entries []store.Entry
	flush := func() {
		if len(entries) == 0 {
			return
		}
		if _, err := h.st.Transaction(context.Background(), entries); err != nil {
			h.t.Fatalf("bulk %s: %v", typ, err)
		}
		entries = entries[:0]
	}
	for id, body := range bodies {
		res := h.parse(typ, id, body)
		entries = append(entries, store.Entry{Index: len(entries), Method: http.MethodPut, URL: typ + "/" + id, Op: store.OpUpdate, Type: typ, ID: id, Resource: res})
		if len(entries) == 500 {
			flush()
		}
	}
	flush()
}

func BenchmarkDashboardWorklist1000Patients200Tasks(b *testing.B) {
	h := newHarness(b, DefaultConfig())
	h.clinic()
	now := time.Now()
	patients, obs, tasks := map[string]map[string]any{}, map[string]map[string]any{}, map[string]map[string]any{}
	prios := []string{"stat", "urgent", "routine", "asap", "routine"}
	for i := range 1000 {
		id := fmt.Sprintf("bp-%04d", i)
		patients[id] = map[string]any{
			"active": true, "name": []any{map[string]any{"family": fmt.Sprintf("Family%d", i), "given": []any{"Given"}}},
			"managingOrganization": ref("Organization/org-a"),
		}
		if i%5 != 0 {
			continue
		}
		oid := "bo-" + id
		obs[oid] = map[string]any{
			"status": "final", "code": loinc("59408-5"), "subject": ref("Patient/" + id),
			"effectiveDateTime": now.Add(-time.Duration(i) * time.Minute).UTC().Format(time.RFC3339),
			"valueQuantity":     qty(float64(85+i%6), "%"),
			"interpretation":    []any{map[string]any{"coding": []any{map[string]any{"code": "L"}}}},
		}
		tasks["bt-"+id] = map[string]any{
			"status": "requested", "intent": "order", "priority": prios[(i/5)%len(prios)],
			"code": map[string]any{"coding": []any{map[string]any{"system": "urn:vidda:care-task", "code": care.TaskReview}}},
			"for":  ref("Patient/" + id), "focus": ref("Observation/" + oid),
			"authoredOn": now.Add(-time.Duration(i) * time.Minute).UTC().Format(time.RFC3339),
		}
	}
	h.bulk("Patient", patients)
	h.bulk("Observation", obs)
	h.bulk("Task", tasks)
	ingrid := h.signIn("ingrid", "ingrid's long password")
	if _, body := ingrid.get("/app"); len(tasksIn(body)) != 200 {
		b.Fatalf("%d rows, want 200", len(tasksIn(body)))
	}
	b.ResetTimer()
	for b.Loop() {
		if resp, _ := ingrid.get("/app"); resp.StatusCode != http.StatusOK {
			b.Fatal(resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
}

// yearOfReadings gives p1 a year of readings: blood pressure, SpO2, pulse
// and weight twice a day, and temperature (3,650 Observations).
func (h *harness) yearOfReadings() {
	h.t.Helper()
	now := time.Now()
	obs := map[string]map[string]any{}
	for d := range 365 {
		for k, hour := range []time.Duration{7 * time.Hour, 19 * time.Hour} {
			at := now.Add(-time.Duration(d)*24*time.Hour - hour).UTC().Format(time.RFC3339)
			tag := fmt.Sprintf("%d-%d", d, k)
			base := func(code string) map[string]any {
				return map[string]any{"status": "final", "code": loinc(code), "subject": ref("Patient/p1"), "effectiveDateTime": at}
			}
			bp := base("85354-9")
			bp["component"] = []any{
				map[string]any{"code": loinc("8480-6"), "valueQuantity": qty(float64(125+d%20), "mm[Hg]")},
				map[string]any{"code": loinc("8462-4"), "valueQuantity": qty(float64(78+d%10), "mm[Hg]")},
			}
			obs["y-bp-"+tag] = bp
			for _, m := range []struct {
				code, unit string
				v          float64
			}{{"59408-5", "%", float64(93 + d%5)}, {"8867-4", "/min", float64(65 + d%15)}, {"29463-7", "kg", 70 + float64(d%30)/10}, {"8310-5", "Cel", 36.6 + float64(d%8)/10}} {
				o := base(m.code)
				o["valueQuantity"] = qty(m.v, m.unit)
				obs["y-"+m.code+"-"+tag] = o
			}
		}
	}
	h.bulk("Observation", obs)
}

func BenchmarkDashboardPatientPageYearOfReadings(b *testing.B) {
	h := newHarness(b, DefaultConfig())
	h.clinic()
	h.yearOfReadings()
	ingrid := h.signIn("ingrid", "ingrid's long password")
	for _, days := range []int{7, 30, 90} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			path := fmt.Sprintf("/app/patients/p1?days=%d", days)
			for b.Loop() {
				if resp, _ := ingrid.get(path); resp.StatusCode != http.StatusOK {
					b.Fatal(resp.StatusCode)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
		})
	}
	astrid := h.signIn("astrid", "astrid's long password")
	b.Run("me", func(b *testing.B) {
		for b.Loop() {
			if resp, _ := astrid.get("/me"); resp.StatusCode != http.StatusOK {
				b.Fatal(resp.StatusCode)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
	})
}
