package ingest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/loadgen"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// storeSink prepares rows with the real store, as cmd/vidda does; it
// never writes (there is no database).
type storeSink struct{ in *store.Ingester }

func (s storeSink) Prepare(r *Row) error {
	p, err := s.in.Prepare(store.IngestObservation{Key: r.Key, Resource: r.Resource})
	r.Prepared = p
	return err
}

func (s storeSink) WriteBatch(context.Context, []Row, []DeadLetter) ([]Stored, error) {
	panic("storeSink does not write")
}

// BenchmarkPrepareReading is the CPU vidda spends on one reading before
// its commit: a compact JSON message of the flood benchmark's (five types
// in turn, one Observation each) decoded, checked, mapped to an
// Observation and its model, and prepared as the row the store writes
// (id, meta, search values). The flood runs this on every publisher's
// goroutine; at 25,000 readings/s over two cores it has about 80 µs a
// reading for everything, the commit and the broker included.
func BenchmarkPrepareReading(b *testing.B) {
	st := store.New(nil, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	in, err := st.NewIngester()
	if err != nil {
		b.Fatal(err)
	}
	p := New(storeSink{in}, nil, fhir.NewRegistry(), DefaultConfig(), nil, slog.New(slog.DiscardHandler))
	now := time.Now()
	var payloads [][]byte
	for i := range 5 {
		payloads = append(payloads, loadgen.AppendReading(nil, "f-", i, now.Add(-time.Hour)))
	}
	bind := Binding{PatientID: "bench-home-0007", Active: true}
	const topic = "vidda/v1/devices/bench-dev-0007/readings"
	b.ReportAllocs()
	readings := 0
	for i := 0; b.Loop(); i++ {
		m := Message{DeviceID: "bench-dev-0007", Kind: devices.KindReadings, Topic: topic, Payload: payloads[i%len(payloads)], Received: now}
		j := p.prepare(m, bind, nil)
		if j.dead != nil || len(j.rows) != 1 {
			b.Fatalf("%d rows, dead letter %+v", len(j.rows), j.dead)
		}
		readings += len(j.rows)
	}
	b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1000/float64(readings), "µs/reading")
}
