package audit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/search"
)

// BenchmarkPrepare is the writer's work per event before COPY: its row.
func BenchmarkPrepare(b *testing.B) {
	l, err := newLayout(search.NewRegistry(time.UTC), "vidda-bench")
	if err != nil {
		b.Fatal(err)
	}
	e := readEvent(1)
	e.Time = time.Now()
	e.Agent.TokenID, e.Agent.ClientID = "6f0c3a1e-8d2b-4f7e-9a55-0c1d2e3f4a5b", "ehr"
	rows := make([]row, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		rows, _ = l.rows(&e, rows[:0])
	}
}

// BenchmarkRecord is what a request pays: queueing one event.
func BenchmarkRecord(b *testing.B) {
	l := slog.New(slog.DiscardHandler)
	w := &Writer{cfg: DefaultConfig(), log: l, queue: make(chan *Event, 1<<20), metrics: newWriterMetrics(nil, nil), full: make(chan struct{}, 1), fullAt: 1 << 19}
	ctx := context.Background()
	e := readEvent(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Record(ctx, e)
			select {
			case <-w.queue:
			default:
			}
		}
	})
}
