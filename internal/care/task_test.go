package care

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir"
)

func TestATaskGathersReadingsAndEscalates(t *testing.T) {
	reg := fhir.NewRegistry()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	first := &problem{kind: TaskReview, key: "reading|59408-5", code: "59408-5", name: "Oxygen saturation", flag: FlagLow, prio: PriorityUrgent, focus: "Observation/a", patient: "p1"}
	b, err := newTask(first, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Parse("Task", b); err != nil {
		t.Fatalf("new Task does not validate: %v", err)
	}
	d, err := parseTask(b)
	if err != nil {
		t.Fatal(err)
	}
	worse := *first
	worse.focus, worse.flag, worse.prio = "Observation/b", FlagCriticalLow, PriorityStat
	if changed, err := d.addReading(&worse, now); !changed || err != nil {
		t.Fatalf("adding a reading: %v %v", changed, err)
	}
	if changed, _ := d.addReading(&worse, now); changed {
		t.Error("the same reading added twice")
	}
	milder := *first
	milder.focus = "Observation/c"
	if _, err := d.addReading(&milder, now); err != nil {
		t.Fatal(err)
	}
	if p := d.str("priority"); p != "stat" || d.str("description") != "Oxygen saturation: Critical low" {
		t.Errorf("priority %s, description %q: want stat, kept after a milder reading", p, d.str("description"))
	}
	if err := d.close("Practitioner/n", "Called her", now); err != nil {
		t.Fatal(err)
	}
	body, err := d.bytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Parse("Task", body); err != nil {
		t.Fatalf("closed Task does not validate: %v", err)
	}
	if got := TaskReadings(body); !slices.Equal(got, []string{"Observation/a", "Observation/b", "Observation/c"}) {
		t.Errorf("readings %v", got)
	}
	if d.str("status") != "completed" || TaskOpen(d.str("status")) {
		t.Errorf("status %s", d.str("status"))
	}
}

// TestAReaderOfItsOwnFindsATasksReadingsInOnePass: a struct that embeds
// TaskReadingRefs next to members of its own (as the pages' Task does)
// reads the readings TaskReadings does, from either way they were
// recorded, the focus first.
func TestAReaderOfItsOwnFindsATasksReadingsInOnePass(t *testing.T) {
	for _, c := range []struct{ name, task string }{
		{"further readings in Task.input", `{"status":"requested","focus":{"reference":"Observation/a"},
			"input":[{"type":{"text":"reading"},"valueReference":{"reference":"Observation/b"}},{"type":{"text":"reading"},"valueReference":{"reference":"Observation/c"}}]}`},
		{"further readings in the older extension", `{"status":"requested","focus":{"reference":"Observation/a"},
			"extension":[{"url":"` + ExtensionReading + `","valueReference":{"reference":"Observation/b"}},{"url":"urn:other","valueReference":{"reference":"Observation/x"}}],
			"input":[{"valueReference":{"reference":"Observation/c"}}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var own struct {
				Status string `json:"status"`
				TaskReadingRefs
			}
			if err := json.Unmarshal([]byte(c.task), &own); err != nil {
				t.Fatal(err)
			}
			want := []string{"Observation/a", "Observation/b", "Observation/c"}
			if got := own.Readings(); own.Status != "requested" || !slices.Equal(got, want) {
				t.Errorf("status %q, readings %v; want requested, %v", own.Status, got, want)
			}
			if got := TaskReadings([]byte(c.task)); !slices.Equal(got, want) {
				t.Errorf("TaskReadings: %v, want %v", got, want)
			}
		})
	}
}
