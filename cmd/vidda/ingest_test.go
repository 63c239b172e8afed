package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidda/vidda/devices/ingest"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// outage is the real store's sink failing its first attempts, as while
// PostgreSQL restarts.
type outage struct {
	ingest.Sink
	failures atomic.Int32
	calls    atomic.Int32
}

func (o *outage) WriteBatch(ctx context.Context, rows []ingest.Row, dead []ingest.DeadLetter) ([]ingest.Stored, error) {
	o.calls.Add(1)
	if o.failures.Add(-1) >= 0 {
		return nil, errors.New("connection refused (simulated outage)")
	}
	return o.Sink.WriteBatch(ctx, rows, dead)
}

// lookupOutage is the real device lookup failing its first calls.
type lookupOutage struct {
	ingest.Bindings
	failures atomic.Int32
}

func (o *lookupOutage) DeviceBinding(ctx context.Context, id string) (ingest.Binding, error) {
	if o.failures.Add(-1) >= 0 {
		return ingest.Binding{}, errors.New("connection refused (simulated outage)")
	}
	return o.Bindings.DeviceBinding(ctx, id)
}

func TestADatabaseOutagePausesIngestionWithoutLosingOrAckingEarly(t *testing.T) {
	ctx := context.Background()
	vars := map[string]string{"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_LOG_LEVEL": "error"}
	if _, _, err := runCmd(t, ctx, vars, "seed"); err != nil {
		t.Fatal(err)
	}
	c := common{}
	c.db.URL = vars["VIDDA_DATABASE_URL"]
	_, pool, st, err := c.openStore(ctx, &env{getenv: envOf(vars), stdout: io.Discard, stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	base, err := newIngestSink(st)
	if err != nil {
		t.Fatal(err)
	}
	sink := &outage{Sink: base}
	sink.failures.Store(4)
	lookup := &lookupOutage{Bindings: ingestBindings{st}}
	lookup.failures.Store(3)
	cfg := ingest.DefaultConfig()
	cfg.Committers = 1 // outcomes in submission order, as the consumer acks them
	pipe := ingest.New(sink, lookup, fhir.NewRegistry(), cfg, nil, slog.New(slog.DiscardHandler))
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pipe.Run(pctx) }()

	const n = 50
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	wg.Add(n)
	at := time.Now().Add(-time.Hour)
	for i := range n {
		msg := ingest.Message{
			DeviceID: "demo-scale-1", Kind: "readings", Topic: "vidda/v1/devices/demo-scale-1/readings", Received: time.Now(),
			Payload: fmt.Appendf(nil, `{"id":"o-%d","t":%q,"type":"weight","value":72.5,"unit":"kg"}`, i, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339)),
		}
		err := pipe.Submit(ctx, msg, func(o ingest.Outcome) {
			defer wg.Done()
			if !o.Committed || o.Rejected {
				t.Errorf("message %d: outcome %+v", i, o)
			}
			// The ack may only come once the reading is in PostgreSQL.
			var there bool
			key := fmt.Sprintf("demo-scale-1/o-%d", i)
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM observation WHERE ingest_key = $1)`, key).Scan(&there); err != nil || !there {
				t.Errorf("message %d acknowledged before it was stored (%v)", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.calls.Load() < 5 {
		t.Fatalf("%d commit attempts: the outage was never hit", sink.calls.Load())
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("acks out of order: %v", order)
		}
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM observation WHERE ingest_key LIKE 'demo-scale-1/o-%'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != n {
		t.Fatalf("stored %d of %d readings after the outage", stored, n)
	}
}
