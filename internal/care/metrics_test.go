package care

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/internal/db"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// flaggedReading is a low SpO2 as devices stores it: the outbox trigger
// queues it.
const flaggedReading = `{"resourceType":"Observation","status":"final","interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"L"}]}],
	"subject":{"reference":"Patient/p1"},"code":{"coding":[{"system":"http://loinc.org","code":"59408-5"}]},"valueQuantity":{"value":88,"code":"%"}}`

// TestTheOutboxLagCountsFromWhenAReadingWasQueued: the age of the oldest
// outbox row is how long it has waited since its reading was queued,
// whatever became of the reading since: deleted through the FHIR API (a
// new version, last_updated moved), updated and still flagged, or gone
// from the table. The backlog reports the queueing time itself, and the
// vidda_care_outbox_lag_seconds gauge at least the time since then.
func TestTheOutboxLagCountsFromWhenAReadingWasQueued(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	d := NewDB(pool)
	e := NewEngine(pool, nil, nil, newTestInterpreter(t, d), EngineConfig{}, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, since string
	}{
		{"a reading deleted through the API since", "UPDATE observation SET version_id = 2, last_updated = now(), deleted = true, content = NULL WHERE id = 'o1'"},
		{"a reading updated since and still flagged", "UPDATE observation SET version_id = 2, last_updated = now(), content = content || ' ' WHERE id = 'o1'"},
		{"a reading gone from the table", "DELETE FROM observation WHERE id = 'o1'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			if _, err := pool.Exec(ctx, "DELETE FROM care_outbox; DELETE FROM observation"); err != nil {
				t.Fatal(err)
			}
			// now() is the start of the inserting transaction: when the
			// outbox trigger queued the reading.
			var queued time.Time
			err := pool.QueryRow(ctx, `INSERT INTO observation (id, version_id, last_updated, patient_id, content)
				VALUES ('o1', 1, now(), 'p1', $1) RETURNING now()`, flaggedReading).Scan(&queued)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // what happens since happens later
			if _, err := pool.Exec(ctx, c.since); err != nil {
				t.Fatalf("%s: %v", c.since, err)
			}

			n, oldest, err := d.outboxBacklog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d rows in the outbox, want the one queued (the change since must not queue or drop it)", n)
			}
			if !oldest.Equal(queued) {
				t.Errorf("the oldest row reads as queued at %v, want %v", oldest, queued)
			}

			waited := time.Since(queued).Seconds()
			if lag := gaugeValue(t, reg, "vidda_care_outbox_lag_seconds"); lag < waited {
				t.Errorf("outbox lag %.3fs, want at least the %.3fs the reading has waited", lag, waited)
			}
		})
	}
}

// gaugeValue gathers reg and returns the value of the unlabelled gauge
// name; a gauge not gathered fails the test.
func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s gathered", name)
	return 0
}

// TestQueuedAtMigratesBothWays: migration 00017 gives the rows already
// waiting their reading's last_updated as queueing time (the best they
// tell), the rows queued after it the time of their own queueing, and its
// way down drops the column.
func TestQueuedAtMigratesBothWays(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	ctx := t.Context()
	if err := db.MigrateTo(ctx, pool, 16); err != nil {
		t.Fatal(err)
	}
	stored := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	if _, err := pool.Exec(ctx, `INSERT INTO observation (id, version_id, last_updated, patient_id, content)
		VALUES ('before', 1, $1, 'p1', $2)`, stored, flaggedReading); err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateTo(ctx, pool, 17); err != nil {
		t.Fatal(err)
	}
	var queued time.Time
	if err := pool.QueryRow(ctx, "SELECT queued_at FROM care_outbox WHERE observation_id = 'before'").Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if !queued.Equal(stored) {
		t.Errorf("a row waiting through the migration reads as queued at %v, want its reading's last_updated %v", queued, stored)
	}
	var now time.Time
	if err := pool.QueryRow(ctx, `INSERT INTO observation (id, version_id, last_updated, patient_id, content)
		VALUES ('after', 1, $1, 'p1', $2) RETURNING now()`, stored, flaggedReading).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT queued_at FROM care_outbox WHERE observation_id = 'after'").Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if !queued.Equal(now) {
		t.Errorf("a row queued after the migration reads as queued at %v, want its transaction's start %v (not its reading's last_updated)", queued, now)
	}

	if err := db.MigrateTo(ctx, pool, 16); err != nil {
		t.Fatal(err)
	}
	var columns int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_name = 'care_outbox' AND column_name = 'queued_at'`).Scan(&columns); err != nil || columns != 0 {
		t.Fatalf("after the way down care_outbox has %d queued_at columns (%v), want none", columns, err)
	}
	if err := db.MigrateTo(ctx, pool, 17); err != nil {
		t.Fatalf("up again after down: %v", err)
	}
}
