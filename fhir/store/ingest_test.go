package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
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

func TestIngesterCopiesNewReadingsAndFindsResentOnes(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	in, err := f.st.NewIngester()
	if err != nil {
		t.Fatal(err)
	}
	prepare := func(keys ...string) []store.PreparedReading {
		t.Helper()
		out := make([]store.PreparedReading, len(keys))
		for i, key := range keys {
			res := f.parse(t, "Observation", obsJSON("p-home", "29463-7", "2026-11-20T07:00:00Z", "71.2"))
			if out[i], err = in.Prepare(store.IngestObservation{Key: key, Resource: res}); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	write := func(batch []store.PreparedReading, dead ...store.DeadLetter) []store.IngestResult {
		t.Helper()
		res, err := in.Write(ctx, batch, dead)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	letter := store.DeadLetter{ReceivedAt: time.Now(), DeviceID: "dev2", Topic: "vidda/v1/devices/dev2/readings", Payload: []byte("[]"), Reason: "malformed"}

	batch := prepare("dev2/a", "dev2/b")
	time.Sleep(20 * time.Millisecond)
	committing := time.Now().Add(-time.Millisecond)
	first := write(batch, letter)
	t.Run("new readings are stored under the ids Prepare gave them", func(t *testing.T) {
		for i, r := range first {
			if r.Duplicate || r.ID != batch[i].ID {
				t.Errorf("result %+v for prepared %s", r, batch[i].ID)
			}
		}
	})
	stampedAtCommit := func(t *testing.T, id string, committing time.Time) {
		t.Helper()
		got, err := f.st.Read(ctx, "Observation", id, store.Access{})
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := decode(t, got.Content)["meta"].(map[string]any)
		stamped, err := time.Parse(time.RFC3339Nano, fmt.Sprint(meta["lastUpdated"]))
		if err != nil || !stamped.Equal(got.LastUpdated) || stamped.Before(committing.Truncate(time.Millisecond)) {
			t.Errorf("meta.lastUpdated %v (%v), column %v, commit began %v", meta["lastUpdated"], err, got.LastUpdated, committing)
		}
	}
	t.Run("a stored reading says it was stored at the commit, not when it was prepared", func(t *testing.T) {
		stampedAtCommit(t, first[0].ID, committing)
		// Now that the Ingester knows the column types, readings are
		// encoded for COPY when prepared; the commit stamps them too.
		later := prepare("dev2/f")
		time.Sleep(20 * time.Millisecond)
		committing := time.Now().Add(-time.Millisecond)
		stampedAtCommit(t, write(later)[0].ID, committing)
	})
	t.Run("re-sent readings get the earlier ids and new ones beside them are stored", func(t *testing.T) {
		again := write(prepare("dev2/b", "dev2/c"))
		if !again[0].Duplicate || again[0].ID != first[1].ID || again[1].Duplicate {
			t.Fatalf("results %+v, first %+v", again, first)
		}
		// Within the resend window: through the staging table.
		more := write(prepare("dev2/d", "dev2/a"))
		if more[0].Duplicate || !more[1].Duplicate || more[1].ID != first[0].ID {
			t.Fatalf("results %+v", more)
		}
	})
	t.Run("a batch written again, as after a commit whose outcome was lost, finds its readings", func(t *testing.T) {
		retried := prepare("dev2/e")
		once := write(retried)
		in2, err := f.st.NewIngester() // outside the resend window: COPY first
		if err != nil {
			t.Fatal(err)
		}
		twice, err := in2.Write(ctx, retried, nil)
		if err != nil || !twice[0].Duplicate || twice[0].ID != once[0].ID {
			t.Fatalf("results %+v then %+v, %v", once, twice, err)
		}
	})
	t.Run("each key is stored once and the dead letter with the first batch", func(t *testing.T) {
		if got := f.search(t, "Observation", "patient=p-home", store.Access{}); got.Total != 6 {
			t.Errorf("stored %d readings, want 6", got.Total)
		}
		if dead, err := f.st.DeadLetters(ctx, "dev2", 10); err != nil || len(dead) != 1 {
			t.Errorf("dead letters %+v, %v", dead, err)
		}
	})
}

func TestIngesterWritesWhatPgxCopyFromWrites(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	in, err := st.NewIngester()
	if err != nil {
		t.Fatal(err)
	}
	reading := func(key string) store.IngestObservation {
		res, err := types.Parse("Observation", []byte(obsJSON("p-home", "29463-7", "2026-11-20T07:00:00+01:00", "71.2")))
		if err != nil {
			t.Fatal(err)
		}
		return store.IngestObservation{Key: key, Resource: res}
	}
	write := func(keys ...string) {
		t.Helper()
		batch := make([]store.PreparedReading, len(keys))
		for i, k := range keys {
			if batch[i], err = in.Prepare(reading(k)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Millisecond) // so that the commit time is another
		if _, err := in.Write(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	write("dev/rows")    // prepared before the column types are known: rows
	write("dev/encoded") // encoded when prepared
	cols, rows, _, err := st.IngestRows([]store.IngestObservation{reading("dev/pgx")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"observation"}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	// Everything but what differs by design: id, key, time stored.
	var same []string
	for _, c := range cols {
		switch c {
		case "id", "ingest_key", "last_updated", "content":
		default:
			same = append(same, c+"::text")
		}
	}
	query := "SELECT ingest_key, concat_ws(' ; ', " + strings.Join(same, ", ") + "), " +
		"content::jsonb - 'id' - 'meta', content::jsonb->'meta'->>'lastUpdated' = to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') " +
		"FROM observation ORDER BY ingest_key"
	got, err := pool.Query(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	type stored struct {
		key, columns, content string
		stamped               bool
	}
	all, err := pgx.CollectRows(got, func(r pgx.CollectableRow) (stored, error) {
		var s stored
		err := r.Scan(&s.key, &s.columns, &s.content, &s.stamped)
		return s, err
	})
	if err != nil || len(all) != 3 || all[1].key != "dev/pgx" {
		t.Fatalf("stored %+v, %v", all, err)
	}
	pgxRow := all[1]
	for _, s := range []stored{all[0], all[2]} {
		if s.columns != pgxRow.columns || s.content != pgxRow.content {
			t.Errorf("%s: columns and content\n%s\n%s\nwith pgx\n%s\n%s", s.key, s.columns, s.content, pgxRow.columns, pgxRow.content)
		}
		if !s.stamped {
			t.Errorf("%s: meta.lastUpdated is not last_updated", s.key)
		}
	}
}

// benchReadings are n distinct readings of about the size devices write.
func benchReadings(b *testing.B, types *fhir.Registry, prefix string, n int) []store.IngestObservation {
	b.Helper()
	out := make([]store.IngestObservation, n)
	for i := range out {
		when := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		res, err := types.Parse("Observation", []byte(obsJSON("p-home", "29463-7", when, "71.2")))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = store.IngestObservation{Key: fmt.Sprintf("bench-dev/%s-%d", prefix, i), Resource: res}
	}
	return out
}

// BenchmarkIngestBatch is one commit of 500 new readings (prepared
// before the clock runs): as Ingester.Write COPYs them while no reading
// was re-sent, as it writes them through the staging table after one, and
// with a plain COPY into observation as the yardstick of the same run.
func BenchmarkIngestBatch(b *testing.B) {
	const batch = 500
	pool := dbtest.PoolFor(b, dbtest.NewDatabase(b))
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	round := 0
	prepare := func(b *testing.B, in *store.Ingester) []store.PreparedReading {
		b.Helper()
		b.StopTimer()
		defer b.StartTimer()
		round++
		obs := benchReadings(b, types, fmt.Sprint("r", round), batch)
		out := make([]store.PreparedReading, len(obs))
		for i, o := range obs {
			var err error
			if out[i], err = in.Prepare(o); err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	write := func(b *testing.B, in *store.Ingester) {
		b.Helper()
		for b.Loop() {
			if _, err := in.Write(ctx, prepare(b, in), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
	}
	b.Run("Write, COPY", func(b *testing.B) {
		in, err := st.NewIngester()
		if err != nil {
			b.Fatal(err)
		}
		write(b, in)
	})
	b.Run("Write, staging table after a re-sent reading", func(b *testing.B) {
		in, err := st.NewIngester()
		if err != nil {
			b.Fatal(err)
		}
		resent := prepare(b, in)[:1]
		for range 2 { // the second time it is a re-sent reading
			if _, err := in.Write(ctx, []store.PreparedReading{resent[0]}, nil); err != nil {
				b.Fatal(err)
			}
		}
		write(b, in) // within the resend window: keep -benchtime short
	})
	b.Run("plain COPY", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			round++
			cols, rows, _, err := st.IngestRows(benchReadings(b, types, fmt.Sprint("r", round), batch), time.Now())
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{"observation"}, cols, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
	})
}

// BenchmarkIngesterPrepare is the store's share of a reading's CPU before
// its commit: id, meta, search values, and once the Ingester knows the
// column types, the COPY encoding.
func BenchmarkIngesterPrepare(b *testing.B) {
	pool := dbtest.PoolFor(b, dbtest.NewDatabase(b))
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	obs := benchReadings(b, types, "p", 1)[0]
	for _, known := range []bool{false, true} {
		in, err := st.NewIngester()
		if err != nil {
			b.Fatal(err)
		}
		name := "as a row"
		if known {
			name = "encoded for COPY"
			if _, err := in.Write(context.Background(), nil, nil); err != nil { // learns the column types
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.Prepare(obs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1000/float64(b.N), "µs/reading")
		})
	}
}
