package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
)

func TestIngestStoresEachReadingOnceAndKeepsDeadLetters(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	reading := func(key, when string) store.IngestObservation {
		return store.IngestObservation{Key: key, Resource: f.parse(t, "Observation", obsJSON("p-home", "29463-7", when, "71.2"))}
	}
	first, err := f.st.Ingest(ctx, []store.IngestObservation{
		reading("dev1/r1", "2026-11-20T07:00:00Z"),
		reading("dev1/r2", "2026-11-20T08:00:00Z"),
		reading("dev1/r2", "2026-11-20T08:00:00Z"), // re-sent within the same batch
	}, []store.DeadLetter{{ReceivedAt: time.Now(), DeviceID: "dev1", Topic: "vidda/v1/devices/dev1/readings", Payload: []byte("{bad"), Reason: "malformed", Detail: "unexpected end of JSON"}})
	if err != nil {
		t.Fatal(err)
	}
	if first[0].Duplicate || first[1].Duplicate || !first[2].Duplicate || first[1].ID != first[2].ID {
		t.Fatalf("first batch results %+v", first)
	}
	again, err := f.st.Ingest(ctx, []store.IngestObservation{reading("dev1/r1", "2026-11-20T07:00:00Z"), reading("dev1/r3", "2026-11-20T09:00:00Z")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != first[0].ID || again[1].Duplicate {
		t.Fatalf("second batch results %+v, first %+v", again, first)
	}
	if got := f.search(t, "Observation", "patient=p-home", store.Access{}); got.Total != 3 {
		t.Fatalf("stored %d readings, want 3", got.Total)
	}
	if _, err := f.st.Read(ctx, "Observation", again[1].ID, store.Access{}); err != nil {
		t.Fatalf("read an ingested reading: %v", err)
	}
	dead, err := f.st.DeadLetters(ctx, "dev1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Reason != "malformed" || string(dead[0].Payload) != "{bad" {
		t.Fatalf("dead letters %+v", dead)
	}
}
