package care

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// countingDB is the real DB, counting the per-patient lookups.
type countingDB struct {
	*DB
	goals atomic.Int32
}

func (c *countingDB) PatientGoals(ctx context.Context, patient string) ([]GoalRow, error) {
	c.goals.Add(1)
	return c.DB.PatientGoals(ctx, patient)
}

// seedLimits writes Goals (with history) and CarePlans the way the FHIR
// store lays them out: p1 has a SpO2 goal of 85 (an earlier version 90)
// and an active heart-failure plan, p2 a deleted goal, p3 only an ended
// plan, p4 nothing.
func seedLimits(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	goal := func(low string) string {
		return `{"resourceType":"Goal","lifecycleStatus":"active","subject":{"reference":"Patient/p1"},
			"target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"detailRange":{"low":{"value":` + low + `,"code":"%"}}}]}`
	}
	t0 := time.Now().Add(-48 * time.Hour)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO goal (id, version_id, last_updated, patient_id, content) VALUES ('g1', 2, $1, 'p1', $2)", []any{t0.Add(time.Hour), goal("85")}},
		{"INSERT INTO goal_history (id, version_id, last_updated, patient_id, content) VALUES ('g1', 1, $1, 'p1', $2)", []any{t0, goal("90")}},
		{"INSERT INTO goal (id, version_id, last_updated, deleted, patient_id, content) VALUES ('g2', 2, $1, true, 'p2', NULL)", []any{t0.Add(time.Hour)}},
		{"INSERT INTO goal_history (id, version_id, last_updated, patient_id, content) VALUES ('g2', 1, $1, 'p2', $2)", []any{t0, goal("70")}},
		{
			"INSERT INTO careplan (id, version_id, last_updated, patient_id, content, status, category) VALUES ('c1', 1, $1, 'p1', '{}', $2, $3)",
			[]any{t0, []string{"http://hl7.org/fhir/request-status|active", "*|active"}, []string{"http://snomed.info/sct|84114007", "*|84114007"}},
		},
		{
			"INSERT INTO careplan (id, version_id, last_updated, patient_id, content, status, category) VALUES ('c2', 1, $1, 'p3', '{}', $2, $3)",
			[]any{t0, []string{"http://hl7.org/fhir/request-status|completed", "*|completed"}, []string{"http://snomed.info/sct|84114007"}},
		},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
}

func TestPreloadReadsWhatTheOneByOneLookupsRead(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	seedLimits(t, pool)
	d := NewDB(pool)
	ctx := t.Context()
	goals, err := d.AllGoals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cats, err := d.AllPlanCategories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byVersion := func(a, b GoalRow) int { return int(a.Version - b.Version) }
	for _, p := range []string{"p1", "p2", "p3", "p4"} {
		one, err := d.PatientGoals(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		all := goals[p]
		slices.SortFunc(one, byVersion)
		slices.SortFunc(all, byVersion)
		if len(one) != len(all) {
			t.Fatalf("%s: %d goal rows preloaded, %d looked up", p, len(all), len(one))
		}
		for i := range one {
			if one[i].ID != all[i].ID || one[i].Version != all[i].Version || one[i].Deleted != all[i].Deleted ||
				string(one[i].Content) != string(all[i].Content) || !one[i].LastUpdated.Equal(all[i].LastUpdated) {
				t.Errorf("%s: preloaded %+v, looked up %+v", p, all[i], one[i])
			}
		}
		oneCats, err := d.PatientPlanCategories(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(oneCats)
		allCats := slices.Sorted(slices.Values(cats[p]))
		if !slices.Equal(oneCats, allCats) {
			t.Errorf("%s: categories preloaded %v, looked up %v", p, allCats, oneCats)
		}
	}
	if len(goals["p1"]) != 2 || len(cats["p1"]) == 0 || len(cats["p3"]) != 0 {
		t.Errorf("the seed is not what the test means: goals %v, categories %v", goals, cats)
	}
}

func TestAPreloadedInterpreterLooksUpOnlyWhoChanged(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	seedLimits(t, pool)
	src := &countingDB{DB: NewDB(pool)}
	in := NewInterpreter(mustRules(t), src, DefaultInterpreterConfig(), slog.New(slog.DiscardHandler))
	ctx := t.Context()
	if err := in.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	spo2 := func(patient string) Flag {
		r := Reading{Patient: patient, Code: "59408-5", At: time.Now(), Value: 87}
		in.Interpret(ctx, &r)
		return r.Flag
	}
	// 87 % is critically low by the defaults, normal under p1's goal of 85.
	if f := spo2("p1"); f != FlagNormal {
		t.Errorf("p1 with a goal of 85: %s, want N", f)
	}
	for _, p := range []string{"p2", "p3", "p4", "p-new"} {
		if f := spo2(p); f == FlagNormal {
			t.Errorf("%s without a goal: 87 %% judged normal", p)
		}
	}
	if n := src.goals.Load(); n != 0 {
		t.Fatalf("%d lookups after a preload, want 0", n)
	}
	// The trend rule asks for the heart-failure plan: Preload must have
	// read p1's active CarePlan categories, not only the Goals.
	in.mu.Lock()
	hf := in.cache["p1"] != nil && in.cache["p1"].categories["http://snomed.info/sct|84114007"]
	p3 := in.cache["p3"] != nil && len(in.cache["p3"].categories) > 0
	in.mu.Unlock()
	if !hf || p3 {
		t.Errorf("preloaded categories: p1 heart failure %v (want true), p3's ended plan %v (want false)", hf, p3)
	}
	in.Invalidate("p4")
	spo2("p4")
	spo2("p4")
	if n := src.goals.Load(); n != 1 {
		t.Fatalf("%d lookups after one invalidation, want 1", n)
	}
	in.InvalidateAll()
	spo2("p1")
	if n := src.goals.Load(); n != 2 {
		t.Fatalf("%d lookups after InvalidateAll, want 2", n)
	}
}

func TestAFailedLookupIsRetriedAfterFailedTTLNotForEveryReading(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	seedLimits(t, pool)
	src := &countingDB{DB: NewDB(pool)}
	cfg := DefaultInterpreterConfig()
	cfg.FailedTTL = 2 * time.Second // long enough for five readings on a loaded machine
	in := NewInterpreter(mustRules(t), src, cfg, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	spo2 := func() Flag {
		r := Reading{Patient: "p1", Code: "59408-5", At: time.Now(), Value: 87}
		in.Interpret(ctx, &r)
		return r.Flag
	}
	if f := spo2(); f != FlagNormal {
		t.Fatalf("p1 with a goal of 85: %s, want N", f)
	}
	in.Invalidate("p1")
	pool.Close() // the database is gone
	for range 5 {
		// What was known of p1 still judges: the goal of 85.
		if f := spo2(); f != FlagNormal {
			t.Errorf("with the database gone: %s, want N from what was known", f)
		}
	}
	if n := src.goals.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2: one to load, one failed, then none until FailedTTL", n)
	}
	time.Sleep(cfg.FailedTTL + 50*time.Millisecond)
	spo2()
	if n := src.goals.Load(); n != 3 {
		t.Fatalf("%d lookups after FailedTTL, want 3", n)
	}
}
