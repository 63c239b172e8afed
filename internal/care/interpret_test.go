package care

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// fixedPatient is a Source with one patient's data, for pure tests of the
// Interpreter (the database path is tested in cmd/vidda's e2e tests).
type fixedPatient struct {
	goals      []GoalRow
	categories []string
	lowest     float64
	hasLowest  bool
	lookups    int
}

func (f *fixedPatient) PatientGoals(context.Context, string) ([]GoalRow, error) {
	f.lookups++
	return f.goals, nil
}

func (f *fixedPatient) PatientPlanCategories(context.Context, string) ([]string, error) {
	return f.categories, nil
}

func (f *fixedPatient) LowestSince(context.Context, string, string, time.Time, time.Time) (float64, bool, error) {
	return f.lowest, f.hasLowest, nil
}

func newTestInterpreter(tb testing.TB, src Source) *Interpreter {
	tb.Helper()
	return NewInterpreter(mustRules(tb), src, DefaultInterpreterConfig(), slog.New(slog.DiscardHandler))
}

func TestInterpret(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	hf := &fixedPatient{categories: []string{"http://snomed.info/sct|84114007"}, lowest: 71, hasLowest: true}
	t.Run("a panel takes the worst of its components", func(t *testing.T) {
		in := newTestInterpreter(t, &fixedPatient{})
		r := Reading{Patient: "p", Code: "85354-9", At: now, Received: now, Components: []Component{{Code: "8480-6", Value: 185}, {Code: "8462-4", Value: 80}}}
		in.Interpret(context.Background(), &r)
		if r.Flag != FlagHigh || r.Priority != PriorityUrgent || r.Components[0].Flag != FlagHigh || r.Components[1].Flag != FlagNormal {
			t.Errorf("%+v", r)
		}
	})
	t.Run("a weight gain over the trend limit is abnormal for a heart-failure patient", func(t *testing.T) {
		in := newTestInterpreter(t, hf)
		r := Reading{Patient: "p", Code: "29463-7", At: now, Value: 73.1}
		in.Interpret(context.Background(), &r)
		if r.Flag != FlagAbnormal || r.Trend != "weight-gain" || r.Priority != PriorityUrgent {
			t.Errorf("%+v", r)
		}
	})
	t.Run("a gain of exactly the limit is normal", func(t *testing.T) {
		in := newTestInterpreter(t, hf)
		r := Reading{Patient: "p", Code: "29463-7", At: now, Value: 73}
		in.Interpret(context.Background(), &r)
		if r.Flag != FlagNormal {
			t.Errorf("%+v", r)
		}
	})
	t.Run("the trend rule does not apply without a heart-failure care plan", func(t *testing.T) {
		in := newTestInterpreter(t, &fixedPatient{lowest: 71, hasLowest: true})
		r := Reading{Patient: "p", Code: "29463-7", At: now, Value: 80}
		in.Interpret(context.Background(), &r)
		if r.Flag != FlagNormal {
			t.Errorf("%+v", r)
		}
	})
	t.Run("a reading received more than an hour after it was measured is late", func(t *testing.T) {
		in := newTestInterpreter(t, &fixedPatient{})
		r := Reading{Patient: "p", Code: "59408-5", At: now.Add(-61 * time.Minute), Received: now, Value: 97}
		in.Interpret(context.Background(), &r)
		if !r.Late || r.Flag != FlagNormal {
			t.Errorf("%+v", r)
		}
		r = Reading{Patient: "p", Code: "59408-5", At: now.Add(-time.Hour), Received: now, Value: 97}
		if in.Interpret(context.Background(), &r); r.Late {
			t.Errorf("exactly an hour: %+v", r)
		}
	})
	t.Run("a late reading is judged by the goal in force when it was measured", func(t *testing.T) {
		src := &fixedPatient{goals: []GoalRow{{ID: "g", Version: 1, LastUpdated: now.Add(-time.Hour), Content: []byte(
			`{"lifecycleStatus":"active","target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"detailRange":{"high":{"value":37.5}}}]}`)}}}
		in := newTestInterpreter(t, src)
		before := Reading{Patient: "p", Code: "8310-5", At: now.Add(-3 * time.Hour), Received: now, Value: 37.8}
		after := Reading{Patient: "p", Code: "8310-5", At: now, Received: now, Value: 37.8}
		in.Interpret(context.Background(), &before)
		in.Interpret(context.Background(), &after)
		if before.Flag != FlagNormal || !before.Late || after.Flag != FlagHigh || after.Late {
			t.Errorf("measured before the goal: %+v; after: %+v", before, after)
		}
		if src.lookups != 1 {
			t.Errorf("%d lookups for one patient, want 1 (cached)", src.lookups)
		}
		in.Invalidate("p")
		in.Interpret(context.Background(), &after)
		if src.lookups != 2 {
			t.Errorf("%d lookups after Invalidate, want 2", src.lookups)
		}
	})
}

func TestReviewProblems(t *testing.T) {
	r := mustRules(t)
	for _, c := range []struct {
		name, content, key string
		prio               Priority
	}{
		{"a normal reading raises nothing", `{"code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"N"}]}]}`, "", PriorityNone},
		{"a reading without interpretation raises nothing", `{"code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]}}`, "", PriorityNone},
		{"critical SpO2 is stat", `{"code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"LL"}]}]}`, "reading|59408-5", PriorityStat},
		{"an alias code is the same problem", `{"code":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"L"}]}]}`, "reading|59408-5", PriorityUrgent},
		{"a panel's priority is its worst component's", `{"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"H"}]}],
			"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"H"}]}]},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"N"}]}]}]}`, "reading|85354-9", PriorityUrgent},
		{"an abnormal weight is the trend's problem", `{"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"A"}]}]}`, "trend|weight-gain", PriorityUrgent},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := r.reviewProblem("o1", "p1", []byte(c.content))
			switch {
			case err != nil:
				t.Fatal(err)
			case c.key == "" && p != nil:
				t.Errorf("problem %+v, want none", p)
			case c.key != "" && (p == nil || p.key != c.key || p.prio != c.prio || p.focus != "Observation/o1"):
				t.Errorf("problem %+v, want %s %s", p, c.key, c.prio)
			}
		})
	}
}

func TestPlannedMeasures(t *testing.T) {
	r := mustRules(t)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	plan := PlanRow{ID: "cp", Patient: "p", LastUpdated: at, Content: []byte(`{"period":{"start":"2026-11-01"},"activity":[
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"status":"in-progress","scheduledTiming":{"repeat":{"frequency":1,"period":1,"periodUnit":"d"}}}},
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"scheduledTiming":{"repeat":{"frequency":2,"period":1,"periodUnit":"d"}}}},
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"scheduledTiming":{"repeat":{"period":1,"periodUnit":"wk"}}}},
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"status":"stopped","scheduledTiming":{"repeat":{"period":1,"periodUnit":"d"}}}},
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},"scheduledTiming":{"repeat":{"period":1,"periodUnit":"fortnight"}}}},
		{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"0000-0"}]},"scheduledTiming":{"repeat":{"period":1,"periodUnit":"d"}}}}
	]}`)}
	got := r.plannedMeasures(plan)
	want := map[string]time.Duration{"29463-7": 24 * time.Hour, "85354-9": 12 * time.Hour, "59408-5": 7 * 24 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("planned %+v, want %v", got, want)
	}
	for _, p := range got {
		if want[p.Code] != p.Interval || !p.Since.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("%s: every %v since %v", p.Code, p.Interval, p.Since)
		}
	}
}

// A plan that names a blood-pressure part asks for blood-pressure
// readings: devices store systolic and diastolic only inside the panel,
// so the missed-measurement check must look for the panel, or it would
// open a Task while readings arrive.
func TestAPlanForAPanelPartAsksForThePanel(t *testing.T) {
	r := mustRules(t)
	for _, code := range []string{"8480-6", "8462-4", "85354-9"} {
		plan := PlanRow{ID: "cp", Patient: "p", LastUpdated: time.Now(), Content: []byte(`{"activity":[
			{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},"scheduledTiming":{"repeat":{"frequency":2,"period":1,"periodUnit":"d"}}}}]}`)}
		got := r.plannedMeasures(plan)
		if len(got) != 1 || got[0].Code != "85354-9" || got[0].Interval != 12*time.Hour {
			t.Errorf("a plan for %s: planned %+v, want blood pressure (85354-9) every 12h", code, got)
		}
	}
}

// BenchmarkInterpret is the cost the ingestion path pays per reading: a
// cached patient with a Goal, a single value and a blood-pressure panel.
func BenchmarkInterpret(b *testing.B) {
	now := time.Now()
	src := &fixedPatient{goals: []GoalRow{{ID: "g", Version: 1, LastUpdated: now.Add(-time.Hour), Content: []byte(
		`{"lifecycleStatus":"active","target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"detailRange":{"low":{"value":100},"high":{"value":160}}}]}`)}}}
	in := newTestInterpreter(b, src)
	ctx := context.Background()
	b.Run("spo2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := Reading{Patient: "p", Code: "59408-5", At: now, Received: now, Value: 91}
			in.Interpret(ctx, &r)
		}
	})
	b.Run("blood-pressure", func(b *testing.B) {
		b.ReportAllocs()
		var buf [2]Component
		for b.Loop() {
			buf[0], buf[1] = Component{Code: "8480-6", Value: 165}, Component{Code: "8462-4", Value: 90}
			r := Reading{Patient: "p", Code: "85354-9", At: now, Received: now, Components: buf[:]}
			in.Interpret(ctx, &r)
		}
	})
}
