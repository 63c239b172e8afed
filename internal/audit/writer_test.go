package audit

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func TestMain(m *testing.M) { dbtest.Main(m) }

// rig is a Writer over a database of the test's own.
type rig struct {
	pool   *pgxpool.Pool
	w      *Writer
	reg    *prometheus.Registry
	params *search.Registry
}

func newRig(t *testing.T, tune func(*Config)) *rig {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	cfg := DefaultConfig()
	cfg.Instance = "vidda-test"
	if tune != nil {
		tune(&cfg)
	}
	reg := prometheus.NewRegistry()
	params := search.NewRegistry(time.UTC)
	w, err := NewWriter(pool, params, cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{pool: pool, w: w, reg: reg, params: params}
}

// run starts Run; the returned stop cancels it and returns its error.
func (r *rig) run(t *testing.T) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func (r *rig) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := r.pool.QueryRow(context.Background(), "SELECT count(*) FROM auditevent").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func readEvent(i int) Event {
	return Event{
		Kind: KindRead, Outcome: OutcomeSuccess, ResourceType: "Observation", ResourceID: fmt.Sprintf("obs-%d", i),
		Patients: []string{fmt.Sprintf("pat-%d", i%7)}, RequestID: fmt.Sprintf("r-%d", i),
		Agent: Agent{Subject: "u-1", Role: "nurse", Reference: "Practitioner/p-1", Address: "127.0.0.1"},
	}
}

func TestConcurrentRecordsAreWrittenInBatches(t *testing.T) {
	r := newRig(t, nil)
	stop := r.run(t)
	const clients, each = 16, 500
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				r.w.Record(context.Background(), readEvent(c*each+i))
			}
		})
	}
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := r.count(t); n != clients*each {
		t.Fatalf("%d rows for %d events", n, clients*each)
	}
	var batches uint64
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vidda_audit_batch_rows" {
			batches = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Logf("%d events in %d COPYs", clients*each, batches)
	if batches == 0 || batches > clients*each/10 {
		t.Errorf("%d COPYs for %d events: not batched", batches, clients*each)
	}
	if got := value(t, r.w.metrics.written); got != clients*each {
		t.Errorf("written counter %v", got)
	}
}

func TestShutdownWritesEverythingQueued(t *testing.T) {
	// Nothing is flushed before the stop: every event waits in the queue.
	r := newRig(t, func(c *Config) { c.FlushEvery = time.Hour; c.MaxBatch = 100_000 })
	stop := r.run(t)
	const n = 3000
	for i := range n {
		r.w.Record(context.Background(), readEvent(i))
	}
	if got := r.count(t); got != 0 {
		t.Fatalf("%d rows before the stop; the test needs them queued", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.count(t); got != n {
		t.Fatalf("%d rows after a clean stop, want %d", got, n)
	}
	t.Run("and an event recorded after the stop is written at once", func(t *testing.T) {
		r.w.Record(context.Background(), readEvent(n))
		if got := r.count(t); got != n+1 {
			t.Fatalf("%d rows, want %d", got, n+1)
		}
	})
}

func TestAFailedBatchIsRetriedUntilItIsWritten(t *testing.T) {
	r := newRig(t, func(c *Config) { c.WriteTimeout = 150 * time.Millisecond; c.FlushEvery = 10 * time.Millisecond })
	ctx := context.Background()
	// Another session holds the table: every COPY waits past its timeout.
	lock, err := r.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "LOCK TABLE audit_record IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stop := r.run(t)
	const n = 200
	for i := range n {
		r.w.Record(ctx, readEvent(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for value(t, r.w.metrics.failures) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt while the table was locked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for r.count(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows after the lock was released", r.count(t), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.count(t); got != n {
		t.Fatalf("%d rows, want exactly %d", got, n)
	}
	if lost := value(t, r.w.metrics.lost); lost != 0 {
		t.Fatalf("%v events lost", lost)
	}
	t.Logf("%v failed attempts before the batch went in", value(t, r.w.metrics.failures))
}

func TestARetryLeavesOutRowsAnEarlierAttemptCommitted(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	events := []*Event{ptr(readEvent(1)), ptr(readEvent(2)), ptr(readEvent(3))}
	rows, err := r.w.prepare(events)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.w.copy(ctx, rows[:2]); err != nil {
		t.Fatal(err)
	}
	left, err := r.w.unwritten(ctx, rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0][0] != rows[2][0] {
		t.Fatalf("%d rows left, want only the third", len(left))
	}
}

func ptr[T any](v T) *T { return &v }

// value reads a counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

func TestARecordWaitingForRoomIsNeverDropped(t *testing.T) {
	// A queue of 4 and a writer that is not running: the fifth Record
	// waits; when its context ends it writes the event itself.
	r := newRig(t, func(c *Config) { c.QueueSize = 4 })
	for i := range 4 {
		r.w.Record(context.Background(), readEvent(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r.w.Record(ctx, readEvent(4))
	if got := r.count(t); got != 1 {
		t.Fatalf("%d rows; the impatient Record should have written its own event", got)
	}
	stop := r.run(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := r.count(t); got != 5 {
		t.Fatalf("%d rows, want 5", got)
	}
}

// TestWrittenEventsAreFoundBySearch searches the written rows through the
// store, as GET /fhir/AuditEvent does.
func TestWrittenEventsAreFoundBySearch(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	before := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	events := sampleEvents()
	for i := range events {
		events[i].Time = time.Time{}
	}
	if err := r.w.WriteNow(ctx, events...); err != nil {
		t.Fatal(err)
	}
	st := store.New(r.pool, fhir.NewRegistry(), r.params, store.DefaultConfig(), slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"patient=pat-1&date=ge" + before + "&agent=Practitioner/prac-1", 13},
		{"patient=pat-2", 4},
		{"agent=Patient/pat-1", 4},
		{"entity=Observation/obs-1", 6},
		{"type=110112&subtype=search-type", 4},
		{"action=C", 2},
		{"outcome=8", 1},
		{"outcome=0&type=http://dicom.nema.org/resources/ontology/DCM|110114", 2},
		{"subtype=" + url.QueryEscape(SystemVidda+"|device-credential-rotate"), 1},
		{"date=lt" + before, 0},
	} {
		t.Run(tt.query, func(t *testing.T) {
			raw, err := url.ParseQuery(tt.query + "&_total=accurate")
			if err != nil {
				t.Fatal(err)
			}
			q, err := r.params.Parse("AuditEvent", raw, true)
			if err != nil {
				t.Fatal(err)
			}
			page, err := st.Search(ctx, q, store.Access{})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != int64(tt.want) {
				t.Fatalf("%d AuditEvents, want %d", page.Total, tt.want)
			}
		})
	}
}
