package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type fixture struct {
	st     *store.Store
	pool   *pgxpool.Pool
	types  *fhir.Registry
	params *search.Registry
}

// newStore returns a running store on a database of the test's own.
func newStore(t *testing.T) *fixture {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store run: %v", err)
		}
	})
	return &fixture{st: st, pool: pool, types: types, params: params}
}

func (f *fixture) parse(t *testing.T, typ, body string) *fhir.Resource {
	t.Helper()
	res, err := f.types.Parse(typ, []byte(body))
	if err != nil {
		t.Fatalf("parse %s: %v", typ, err)
	}
	return res
}

func (f *fixture) create(t *testing.T, typ, body string) *store.Stored {
	t.Helper()
	st, err := f.st.Create(context.Background(), f.parse(t, typ, body), store.Access{})
	if err != nil {
		t.Fatalf("create %s: %v", typ, err)
	}
	return st
}

func (f *fixture) search(t *testing.T, typ, query string, a store.Access) *store.Page {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, err := f.params.Parse(typ, v, true)
	if err != nil {
		t.Fatalf("parse %s?%s: %v", typ, query, err)
	}
	page, err := f.st.Search(context.Background(), q, a)
	if err != nil {
		t.Fatalf("search %s?%s: %v", typ, query, err)
	}
	return page
}

func patientJSON(ident string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:test","value":%q}],"birthDate":"1950-02-03","_birthDate":{"extension":[{"url":"http://example.org/accuracy","valueString":"year-only"}]}}`, ident)
}

func obsJSON(patient, code, when string, value string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"valueQuantity":{"value":%s,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
		code, patient, when, value)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytesReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func TestCreateStoresWhatTheClientSentWithServerIDAndMeta(t *testing.T) {
	f := newStore(t)
	got := f.create(t, "Observation", obsJSON("p1", "29463-7", "2026-11-20T07:31:00+01:00", "71.50"))
	if got.VersionID != 1 || !fhir.ValidID(got.ID) {
		t.Fatalf("stored %+v", got)
	}
	read, err := f.st.Read(context.Background(), "Observation", got.ID, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, read.Content)
	if m["id"] != got.ID {
		t.Errorf("id = %v, want %s", m["id"], got.ID)
	}
	meta := m["meta"].(map[string]any)
	if meta["versionId"] != "1" {
		t.Errorf("meta.versionId = %v", meta["versionId"])
	}
	v := m["valueQuantity"].(map[string]any)["value"].(json.Number)
	if v.String() != "71.50" {
		t.Errorf("value = %s, want the client's 71.50", v)
	}

	p := f.create(t, "Patient", patientJSON("A1"))
	pr, err := f.st.Read(context.Background(), "Patient", p.ID, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decode(t, pr.Content)["_birthDate"]; !ok {
		t.Error("the primitive extension _birthDate was lost")
	}
}

func TestUpdateVersionsAndHistory(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	p := f.create(t, "Patient", patientJSON("H1"))
	body := func(v string) *fhir.Resource {
		return f.parse(t, "Patient", fmt.Sprintf(`{"resourceType":"Patient","id":%q,"identifier":[{"system":"urn:test","value":%q}]}`, p.ID, v))
	}
	up, created, err := f.st.Update(ctx, body("H2"), p.ID, 1, store.Access{})
	if err != nil || created || up.VersionID != 2 {
		t.Fatalf("update: %+v created=%v err=%v", up, created, err)
	}
	if _, _, err := f.st.Update(ctx, body("H3"), p.ID, 1, store.Access{}); !errors.Is(err, fhir.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: err = %v, want ErrPreconditionFailed", err)
	}
	if _, err := f.st.Delete(ctx, "Patient", p.ID, store.Access{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Read(ctx, "Patient", p.ID, store.Access{}); !errors.Is(err, fhir.ErrDeleted) {
		t.Fatalf("read after delete: %v, want ErrDeleted", err)
	}
	v1, err := f.st.VRead(ctx, "Patient", p.ID, 1, store.Access{})
	if err != nil {
		t.Fatalf("vread 1: %v", err)
	}
	if decode(t, v1.Content)["identifier"].([]any)[0].(map[string]any)["value"] != "H1" {
		t.Errorf("version 1 content changed: %s", v1.Content)
	}
	if _, err := f.st.VRead(ctx, "Patient", p.ID, 3, store.Access{}); !errors.Is(err, fhir.ErrDeleted) {
		t.Errorf("vread of the deletion: %v, want ErrDeleted", err)
	}
	h, err := f.st.History(ctx, "Patient", p.ID, store.HistoryOptions{Count: 10}, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, e := range h.Entries {
		versions = append(versions, e.VersionID)
	}
	if fmt.Sprint(versions) != "[3 2 1]" {
		t.Errorf("history versions %v, want [3 2 1]", versions)
	}
	if got := f.search(t, "Patient", "identifier=H2", store.Access{}); got.Total != 0 {
		t.Errorf("a deleted patient is still found: total %d", got.Total)
	}
}

func TestConcurrentUpdatesWithTheSameVersionLetExactlyOneWin(t *testing.T) {
	f := newStore(t)
	p := f.create(t, "Patient", patientJSON("C1"))
	const writers = 8
	var wg sync.WaitGroup
	results := make(chan error, writers)
	for i := range writers {
		res := f.parse(t, "Patient", fmt.Sprintf(`{"resourceType":"Patient","id":%q,"identifier":[{"system":"urn:test","value":"C%d"}]}`, p.ID, i))
		wg.Go(func() {
			_, _, err := f.st.Update(context.Background(), res, p.ID, 1, store.Access{})
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok, conflicts := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, fhir.ErrPreconditionFailed):
			conflicts++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || conflicts != writers-1 {
		t.Fatalf("%d succeeded and %d got 412; want 1 and %d", ok, conflicts, writers-1)
	}
}

func TestACompartmentHidesOtherPatientsData(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	mine := f.create(t, "Observation", obsJSON("p-me", "29463-7", "2026-11-20T07:31:00Z", "70"))
	theirs := f.create(t, "Observation", obsJSON("p-other", "29463-7", "2026-11-20T07:31:00Z", "80"))
	me := store.Access{PatientID: "p-me"}
	if _, err := f.st.Read(ctx, "Observation", mine.ID, me); err != nil {
		t.Errorf("own observation: %v", err)
	}
	if _, err := f.st.Read(ctx, "Observation", theirs.ID, me); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("another patient's observation: err = %v, want ErrNotFound", err)
	}
	if got := f.search(t, "Observation", "code=29463-7", me); got.Total != 1 || got.Entries[0].ID != mine.ID {
		t.Errorf("search saw %d observations, want only the own one", got.Total)
	}
	_, err := f.st.Create(ctx, f.parse(t, "Observation", obsJSON("p-other", "29463-7", "2026-11-20T08:00:00Z", "1")), me)
	if !errors.Is(err, store.ErrOutsideCompartment) {
		t.Errorf("create for another patient: err = %v, want ErrOutsideCompartment", err)
	}
}

func TestSearchByPatientCodeAndDate(t *testing.T) {
	f := newStore(t)
	for i, when := range []string{"2026-11-01T08:00:00Z", "2026-11-10T08:00:00Z", "2026-11-20T08:00:00+01:00", "2026-11-20T23:30:00Z"} {
		f.create(t, "Observation", obsJSON("p1", "29463-7", when, fmt.Sprint(70+i)))
	}
	f.create(t, "Observation", obsJSON("p1", "8867-4", "2026-11-20T08:00:00Z", "60"))
	f.create(t, "Observation", obsJSON("p2", "29463-7", "2026-11-20T08:00:00Z", "90"))
	tests := []struct {
		name, query string
		want        int64
	}{
		{"a patient's readings of one code", "patient=p1&code=http://loinc.org|29463-7", 4},
		{"a code without its system", "patient=Patient/p1&code=29463-7", 4},
		{"a code in the wrong system", "patient=p1&code=http://snomed.info/sct|29463-7", 0},
		{"two codes are OR-ed", "patient=p1&code=29463-7,8867-4", 5},
		{"a day in UTC", "patient=p1&code=29463-7&date=2026-11-20", 2},
		{"from a date on", "patient=p1&date=ge2026-11-10", 4},
		{"before a date", "patient=p1&date=lt2026-11-10", 1},
		{"a range as two parameters (AND)", "patient=p1&date=ge2026-11-02&date=lt2026-11-20", 1},
		{"a month", "date=2026-11&code=29463-7", 5},
		{"not equal", "patient=p1&code=29463-7&date=ne2026-11-20", 2},
		{"the category token", "patient=p2&category=vital-signs", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.search(t, "Observation", tt.query, store.Access{}); got.Total != tt.want || int64(len(got.Entries)) != tt.want {
				t.Errorf("%s: total %d, %d entries; want %d", tt.query, got.Total, len(got.Entries), tt.want)
			}
		})
	}
}

func TestSearchByIdentifier(t *testing.T) {
	f := newStore(t)
	f.create(t, "Patient", patientJSON("ID-1"))
	f.create(t, "Patient", patientJSON("ID-2"))
	for _, tt := range []struct {
		query string
		want  int64
	}{
		{"identifier=ID-1", 1},
		{"identifier=urn:test|ID-2", 1},
		{"identifier=urn:other|ID-2", 0},
		{"identifier=urn:test|", 2},
		{"identifier=ID-1,ID-2", 2},
	} {
		if got := f.search(t, "Patient", tt.query, store.Access{}); got.Total != tt.want {
			t.Errorf("%s: total %d, want %d", tt.query, got.Total, tt.want)
		}
	}
}

func TestPagesStayCorrectWhileNewReadingsArrive(t *testing.T) {
	f := newStore(t)
	var all []string
	for i := range 25 {
		all = append(all, f.create(t, "Observation", obsJSON("p1", "29463-7", "2026-11-20T08:00:00Z", fmt.Sprint(i))).ID)
	}
	seen := map[string]bool{}
	q := "patient=p1&_count=10"
	for page := 0; ; page++ {
		got := f.search(t, "Observation", q, store.Access{})
		for _, e := range got.Entries {
			if seen[e.ID] {
				t.Fatalf("page %d repeats %s", page, e.ID)
			}
			seen[e.ID] = true
		}
		// New readings between pages must not shift or repeat later pages.
		f.create(t, "Observation", obsJSON("p1", "29463-7", "2026-11-21T08:00:00Z", "1"))
		if got.NextCursor == "" {
			break
		}
		q = "patient=p1&_count=10&_cursor=" + got.NextCursor
	}
	for _, id := range all {
		if !seen[id] {
			t.Errorf("paging skipped %s", id)
		}
	}
}

func TestConcurrentCreatesAreAllCommitted(t *testing.T) {
	f := newStore(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		res := f.parse(t, "Observation", obsJSON("p-flood", "8867-4", "2026-11-20T08:00:00Z", fmt.Sprint(i)))
		wg.Go(func() {
			_, err := f.st.Create(context.Background(), res, store.Access{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.search(t, "Observation", "patient=p-flood&_summary=count", store.Access{}); got.Total != n {
		t.Fatalf("stored %d, want %d", got.Total, n)
	}
}

func TestConditionalCreateMakesOneResource(t *testing.T) {
	f := newStore(t)
	cond := url.Values{"identifier": {"urn:test|COND-1"}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 6 {
		res := f.parse(t, "Patient", patientJSON("COND-1"))
		wg.Go(func() {
			_, c, err := f.st.CreateIfNoneExist(context.Background(), res, cond, store.Access{})
			if err != nil {
				t.Error(err)
			}
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d creates happened, want 1", created)
	}
	f.create(t, "Patient", patientJSON("COND-1"))
	if _, _, err := f.st.CreateIfNoneExist(context.Background(), f.parse(t, "Patient", patientJSON("COND-1")), cond, store.Access{}); !errors.Is(err, fhir.ErrPreconditionFailed) {
		t.Fatalf("two matches: err = %v, want ErrPreconditionFailed", err)
	}
}

func TestAPatientWithReadingsCannotBeDeleted(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	p := f.create(t, "Patient", patientJSON("DEL-1"))
	o := f.create(t, "Observation", obsJSON(p.ID, "29463-7", "2026-11-20T08:00:00Z", "70"))
	if _, err := f.st.Delete(ctx, "Patient", p.ID, store.Access{}); !errors.Is(err, store.ErrStillReferenced) {
		t.Fatalf("delete with readings: err = %v, want ErrStillReferenced", err)
	}
	if _, err := f.st.Delete(ctx, "Observation", o.ID, store.Access{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Delete(ctx, "Patient", p.ID, store.Access{}); err != nil {
		t.Fatalf("delete once the readings are gone: %v", err)
	}
}
