package bulk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// fixture is a running store on a database of the test's own, seeded with
// a small cohort: three patients, a device, readings, a practitioner and a
// Group of p1 and p2 (p3 an inactive member).
type fixture struct {
	pool   *pgxpool.Pool
	st     *store.Store
	types  *fhir.Registry
	params *search.Registry
	dir    string
	who    store.Requester
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	f := &fixture{
		pool: pool, types: fhir.NewRegistry(), params: search.NewRegistry(time.UTC),
		dir: t.TempDir(), who: store.Requester{Subject: "ehr-1", ClientID: "ehr"},
	}
	f.st = store.New(pool, f.types, f.params, store.DefaultConfig(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store: %v", err)
		}
	})
	for _, p := range []string{"p1", "p2", "p3"} {
		f.put(t, "Patient", p, `{"resourceType":"Patient","name":[{"family":"Berg"}]}`)
	}
	f.put(t, "Device", "d1", `{"resourceType":"Device","patient":{"reference":"Patient/p1"},"status":"active"}`)
	f.put(t, "Practitioner", "pr1", `{"resourceType":"Practitioner","name":[{"family":"Lund"}]}`)
	for i, p := range []string{"p1", "p1", "p1", "p2", "p2", "p3"} {
		f.put(t, "Observation", fmt.Sprintf("o%d", i), observationJSON(p, "29463-7", i))
	}
	f.put(t, "Observation", "hr1", observationJSON("p1", "8867-4", 9))
	f.put(t, "Group", "g1", `{"resourceType":"Group","type":"person","actual":true,"member":[`+
		`{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}},{"entity":{"reference":"Patient/p3"},"inactive":true}]}`)
	return f
}

func observationJSON(patient, code string, i int) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},`+
		`"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2026-11-%02dT08:00:00Z","valueQuantity":{"value":%d,"unit":"kg"}}`, code, patient, i+1, 70+i)
}

func (f *fixture) put(t *testing.T, typ, id, body string) {
	t.Helper()
	body = strings.Replace(body, `{"resourceType":"`+typ+`"`, `{"resourceType":"`+typ+`","id":"`+id+`"`, 1)
	res, err := f.types.Parse(typ, []byte(body))
	if err != nil {
		t.Fatalf("parse %s/%s: %v", typ, id, err)
	}
	if _, _, err := f.st.Update(context.Background(), res, id, 0, store.Access{}); err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

func (f *fixture) exporter(tune func(*Config)) *Exporter {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Poll, cfg.Report, cfg.Sweep, cfg.Owner = f.dir, 20*time.Millisecond, 20*time.Millisecond, time.Hour, "test-1"
	if tune != nil {
		tune(&cfg)
	}
	return New(f.st, f.types, f.params, cfg, slog.New(slog.DiscardHandler))
}

// run runs e until the returned stop is called.
func run(t *testing.T, e *Exporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("exporter: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// start kicks an export off with everything allowed.
func (f *fixture) start(t *testing.T, e *Exporter, kind Kind, group, query string) *store.ExportJob {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	req, err := e.Parse(kind, group, q, "respond-async")
	if err != nil {
		t.Fatalf("parse %q: %v", query, err)
	}
	plan, err := e.Plan(req, func(string) (store.Access, error) { return store.Access{}, nil })
	if err != nil {
		t.Fatalf("plan %q: %v", query, err)
	}
	j, err := e.Start(context.Background(), plan, f.who, "http://vidda.test/fhir/$export?"+query)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// wait polls until job id is finished.
func (f *fixture) wait(t *testing.T, e *Exporter, id string) *store.ExportJob {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		j, err := e.Status(context.Background(), id, f.who)
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if j.Status == store.ExportCompleted || j.Status == store.ExportFailed {
			return j
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("export %s did not finish", id)
	return nil
}

// read reads every file of a completed job: per type, the ids of its
// lines, each line checked to be one valid resource of that type.
func (f *fixture) read(t *testing.T, e *Exporter, j *store.ExportJob) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, file := range j.Output {
		fh, err := e.Open(context.Background(), j.ID, file.Name, f.who)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		var n int64
		for sc.Scan() {
			res, err := f.types.Parse(file.Type, sc.Bytes())
			if err != nil {
				t.Fatalf("%s line %d is not a valid %s: %v: %s", file.Name, n+1, file.Type, err, sc.Bytes())
			}
			out[file.Type] = append(out[file.Type], res.ID)
			n++
		}
		if err := errors.Join(sc.Err(), fh.Close()); err != nil {
			t.Fatal(err)
		}
		if n != file.Count {
			t.Errorf("%s has %d lines, the manifest says %d", file.Name, n, file.Count)
		}
	}
	for typ := range out {
		slices.Sort(out[typ])
	}
	return out
}

func (f *fixture) ids(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestASystemExportWritesEveryResourceOnceOneValidLineEach(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(func(c *Config) { c.MaxFileResources = 2 })
	run(t, e)
	j := f.wait(t, e, f.start(t, e, KindSystem, "", "").ID)
	if j.Status != store.ExportCompleted {
		t.Fatalf("status %s: %s", j.Status, j.Error)
	}
	got := f.read(t, e, j)
	for _, typ := range []string{"Patient", "Device", "Practitioner", "Observation", "Group"} {
		table := strings.ToLower(typ)
		if typ == "Group" {
			table = "fhir_group" // GROUP is a reserved word
		}
		want := f.ids(t, "SELECT id FROM "+table+" WHERE NOT deleted")
		if !slices.Equal(got[typ], want) {
			t.Errorf("%s: exported %v, the database holds %v", typ, got[typ], want)
		}
	}
	if _, ok := got["AuditEvent"]; ok {
		t.Error("AuditEvents were exported without being asked for")
	}
	for _, file := range j.Output {
		if file.Count > 2 {
			t.Errorf("%s holds %d resources, more than MaxFileResources", file.Name, file.Count)
		}
	}
	if j.TransactionTime.IsZero() || j.TransactionTime.After(time.Now()) || j.Expires.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("transactionTime %v, expires %v", j.TransactionTime, j.Expires)
	}
}

func TestTypeSinceAndTypeFilterSelectWhatIsExported(t *testing.T) {
	f := newFixture(t)
	time.Sleep(10 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	f.put(t, "Observation", "late", observationJSON("p2", "8867-4", 20))
	f.put(t, "Patient", "p4", `{"resourceType":"Patient"}`)
	e := f.exporter(nil)
	run(t, e)
	for _, tc := range []struct {
		name, query string
		want        map[string][]string
	}{
		{"_type keeps the types asked for", "_type=Observation,Patient", map[string][]string{
			"Observation": f.ids(t, "SELECT id FROM observation"), "Patient": {"p1", "p2", "p3", "p4"},
		}},
		{"_since keeps what changed since", "_type=Observation,Patient,Device&_since=" + since.Format(time.RFC3339Nano), map[string][]string{
			"Observation": {"late"}, "Patient": {"p4"},
		}},
		{"_typeFilter keeps the matches of any of its searches", "_type=Observation&_typeFilter=" + url.QueryEscape("Observation?code=8867-4") +
			"&_typeFilter=" + url.QueryEscape("Observation?patient=p3"), map[string][]string{"Observation": {"hr1", "late", "o5"}}},
		{"_typeFilter and _since together", "_type=Observation&_since=" + since.Format(time.RFC3339Nano) +
			"&_typeFilter=" + url.QueryEscape("Observation?code=http://loinc.org|8867-4"), map[string][]string{"Observation": {"late"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := f.wait(t, e, f.start(t, e, KindSystem, "", tc.query).ID)
			if got := f.read(t, e, j); !mapsEqual(got, tc.want) {
				t.Errorf("exported %v, want %v", got, tc.want)
			}
		})
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestAGroupExportHoldsTheCompartmentsOfItsActiveMembers(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(nil)
	run(t, e)
	j := f.wait(t, e, f.start(t, e, KindGroup, "g1", "").ID)
	got := f.read(t, e, j)
	want := map[string][]string{
		"Patient": {"p1", "p2"}, "Device": {"d1"},
		"Observation": f.ids(t, "SELECT id FROM observation WHERE patient_id IN ('p1', 'p2')"),
	}
	if !mapsEqual(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
	t.Run("a group that does not exist fails the job", func(t *testing.T) {
		j := f.wait(t, e, f.start(t, e, KindGroup, "nope", "").ID)
		if j.Status != store.ExportFailed || !strings.Contains(j.Error, "not found") {
			t.Errorf("status %s, error %q", j.Status, j.Error)
		}
	})
}

func TestAccessConfinesEachType(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(nil)
	run(t, e)
	req, err := e.Parse(KindPatient, "", url.Values{}, "respond-async")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := e.Plan(req, func(typ string) (store.Access, error) {
		if typ == "CareTeam" {
			return store.Access{}, errors.New("no")
		}
		return store.Access{PatientID: "p2"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.Start(context.Background(), plan, f.who, "x")
	if err != nil {
		t.Fatal(err)
	}
	got := f.read(t, e, f.wait(t, e, j.ID))
	want := map[string][]string{"Patient": {"p2"}, "Observation": {"o3", "o4"}}
	if !mapsEqual(got, want) {
		t.Errorf("exported %v, want %v", got, want)
	}
}

func TestARunCutShortIsRunAgainByTheNextRunner(t *testing.T) {
	f := newFixture(t)
	reached := make(chan struct{})
	first := f.exporter(func(c *Config) { c.Owner = "instance-a" })
	first.afterType = func(ctx context.Context, typ string) {
		close(reached)
		<-ctx.Done() // the instance stops mid-export
	}
	stopFirst := run(t, first)
	id := f.start(t, first, KindSystem, "", "_type=Patient,Observation").ID
	<-reached
	stopFirst()
	j, err := f.st.ExportJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != store.ExportRunning || j.Owner != "instance-a" {
		t.Fatalf("after the stop: status %s, owner %s", j.Status, j.Owner)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.dir, id)); len(entries) != 0 {
		t.Errorf("the interrupted run left files: %v", entries)
	}
	second := f.exporter(func(c *Config) { c.Owner = "instance-b" })
	run(t, second)
	j = f.wait(t, second, id)
	if j.Status != store.ExportCompleted || j.Attempts != 2 || j.Owner != "instance-b" {
		t.Fatalf("status %s after %d attempts by %s: %s", j.Status, j.Attempts, j.Owner, j.Error)
	}
	got := f.read(t, second, j)
	if want := f.ids(t, "SELECT id FROM observation"); !slices.Equal(got["Observation"], want) {
		t.Errorf("Observations %v, want %v", got["Observation"], want)
	}
}

func TestOneJobIsRunByOneRunnerAtATime(t *testing.T) {
	f := newFixture(t)
	reached, release := make(chan struct{}), make(chan struct{})
	a := f.exporter(func(c *Config) { c.Owner = "instance-a" })
	a.afterType = func(ctx context.Context, _ string) {
		select {
		case <-reached:
		default:
			close(reached)
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	run(t, a)
	id := f.start(t, a, KindSystem, "", "_type=Patient").ID
	<-reached
	b := f.exporter(func(c *Config) { c.Owner = "instance-b" })
	ran, err := b.runOne(context.Background())
	if err != nil || ran {
		t.Fatalf("a second runner claimed a job that is running: ran %v, %v", ran, err)
	}
	close(release)
	if j := f.wait(t, a, id); j.Status != store.ExportCompleted || j.Attempts != 1 || j.Owner != "instance-a" {
		t.Errorf("status %s, attempts %d, owner %s", j.Status, j.Attempts, j.Owner)
	}
}

func TestACancelledJobStopsItsRunnerElsewhereAndLeavesNoFiles(t *testing.T) {
	f := newFixture(t)
	reached := make(chan struct{})
	finished := make(chan Finished, 1)
	runner := f.exporter(func(c *Config) {
		c.Owner = "instance-a"
		c.Finished = func(_ context.Context, fin Finished) { finished <- fin }
	})
	runner.afterType = func(ctx context.Context, _ string) {
		close(reached)
		<-ctx.Done()
	}
	run(t, runner)
	id := f.start(t, runner, KindSystem, "", "_type=Patient,Observation").ID
	<-reached
	// Another instance takes the DELETE: it has no cancel func to call, so
	// the runner must notice at its next progress report.
	other := f.exporter(func(c *Config) { c.Owner = "instance-b" })
	if err := other.Cancel(context.Background(), id, f.who); err != nil {
		t.Fatal(err)
	}
	select {
	case fin := <-finished:
		if fin.Outcome != OutcomeCancelled {
			t.Errorf("outcome %s", fin.Outcome)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the runner did not notice the cancellation")
	}
	if _, err := os.Stat(filepath.Join(f.dir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the job's directory is still there: %v", err)
	}
	if _, err := other.Status(context.Background(), id, f.who); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("status of a cancelled job: %v", err)
	}
}

func TestOnlyTheRequesterSeesAJob(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(nil)
	run(t, e)
	j := f.wait(t, e, f.start(t, e, KindSystem, "", "_type=Patient").ID)
	for _, who := range []store.Requester{
		{Subject: "ehr-1", ClientID: "other"},
		{Subject: "ehr-2", ClientID: "ehr"},
		{Subject: "ehr-1", ClientID: "ehr", Issuer: "https://idp.example"},
	} {
		if _, err := e.Status(context.Background(), j.ID, who); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("%+v sees the job: %v", who, err)
		}
		if _, err := e.Open(context.Background(), j.ID, j.Output[0].Name, who); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("%+v opens its file: %v", who, err)
		}
		if err := e.Cancel(context.Background(), j.ID, who); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("%+v cancels it: %v", who, err)
		}
	}
	for _, name := range []string{"../" + j.ID + "/" + j.Output[0].Name, "Patient-1-9.ndjson", ".."} {
		if _, err := e.Open(context.Background(), j.ID, name, f.who); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("file %q: %v", name, err)
		}
	}
}

func TestFinishedJobsExpireWithTheirFiles(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(func(c *Config) { c.TTL, c.Sweep = time.Second, 50*time.Millisecond })
	// A directory that belongs to no job (its job cancelled on another
	// instance) goes too; anything else in the directory stays.
	orphan := filepath.Join(f.dir, "0193c2a0-0000-7000-8000-000000000000")
	other := filepath.Join(f.dir, "notes")
	for _, d := range []string{orphan, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	run(t, e)
	j := f.wait(t, e, f.start(t, e, KindSystem, "", "_type=Patient").ID)
	if _, err := os.Stat(filepath.Join(f.dir, j.ID, j.Output[0].Name)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.Status(context.Background(), j.ID, f.who)
		if errors.Is(err, fhir.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still there after its TTL: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the sweep removes the files after the row
	for _, gone := range []string{filepath.Join(f.dir, j.ID), orphan} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", gone, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the sweep removed a directory that is not a job's: %v", err)
	}
}

func TestAJobThatKeepsKillingItsRunnerFails(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(func(c *Config) { c.MaxAttempts = 2 })
	j := f.start(t, e, KindSystem, "", "_type=Patient")
	if _, err := f.pool.Exec(context.Background(), "UPDATE export_job SET status = 'running', attempts = 2 WHERE id = $1", j.ID); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	j = f.wait(t, e, j.ID)
	if j.Status != store.ExportFailed || !strings.Contains(j.Error, "gave up after 2 attempts") {
		t.Errorf("status %s, error %q", j.Status, j.Error)
	}
}

func TestStoredContentWithLineBreaksStillMakesOneLine(t *testing.T) {
	f := newFixture(t)
	pretty := "{\n  \"resourceType\": \"Practitioner\",\n  \"id\": \"pr2\",\n  \"name\": [{\"family\": \"Ek\\nström\"}]\r\n}"
	if _, err := f.pool.Exec(context.Background(), "INSERT INTO practitioner (id, version_id, last_updated, content) VALUES ('pr2', 1, now(), $1)", pretty); err != nil {
		t.Fatal(err)
	}
	e := f.exporter(nil)
	run(t, e)
	j := f.wait(t, e, f.start(t, e, KindSystem, "", "_type=Practitioner").ID)
	if got := f.read(t, e, j)["Practitioner"]; !slices.Equal(got, []string{"pr1", "pr2"}) {
		t.Errorf("Practitioners %v", got)
	}
}

func TestKickOffParametersAreChecked(t *testing.T) {
	f := &fixture{types: fhir.NewRegistry(), params: search.NewRegistry(time.UTC)}
	e := New(nil, f.types, f.params, DefaultConfig(), slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name, query, prefer, wantErr string
	}{
		{"respond-async is required", "", "", "respond-async"},
		{"ndjson is the only output format", "_outputFormat=text/csv", "respond-async", "_outputFormat"},
		{"an unknown _type is refused", "_type=Patient,Banana", "respond-async", "Banana"},
		{"_since must be an instant", "_since=2026-11-23", "respond-async", "_since"},
		{"a _typeFilter must be Type?search", "_typeFilter=code=x", "respond-async", "_typeFilter"},
		{"a _typeFilter's parameters must exist", "_typeFilter=" + url.QueryEscape("Observation?colour=red"), "respond-async", "colour"},
		{"a _typeFilter is not a page", "_typeFilter=" + url.QueryEscape("Observation?_count=5"), "respond-async", "_count"},
		{"a _typeFilter of a type _type leaves out", "_type=Patient&_typeFilter=" + url.QueryEscape("Observation?code=x"), "respond-async", "does not ask for"},
		{"parameters not implemented are refused", "includeAssociatedData=LatestProvenanceResources", "respond-async", "not supported"},
		{"or ignored when lenient", "includeAssociatedData=x&_type=Patient", "respond-async, handling=lenient", ""},
		{"every correct parameter together", "_outputFormat=application/fhir%2Bndjson&_type=Observation&_since=2026-11-23T10:00:00%2B01:00&_typeFilter=" +
			url.QueryEscape("Observation?code=http://loinc.org|8867-4&date=ge2026-01-01"), "respond-async", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Parse(KindSystem, "", q, tc.prefer)
			var verr *fhir.ValidationError
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.wantErr != "" && (!errors.As(err, &verr) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want a ValidationError naming %q", err, tc.wantErr)
			}
		})
	}
	t.Run("a Patient export refuses types outside the compartment", func(t *testing.T) {
		req, err := e.Parse(KindPatient, "", url.Values{"_type": {"Practitioner"}}, "respond-async")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Plan(req, func(string) (store.Access, error) { return store.Access{}, nil }); err == nil || !strings.Contains(err.Error(), "compartment") {
			t.Errorf("plan: %v", err)
		}
	})
	t.Run("a type _type names that the caller may not read is refused, a default one left out", func(t *testing.T) {
		deny := func(typ string) (store.Access, error) {
			if typ == "Practitioner" {
				return store.Access{}, errors.New("forbidden")
			}
			return store.Access{}, nil
		}
		req, _ := e.Parse(KindSystem, "", url.Values{"_type": {"Patient,Practitioner"}}, "respond-async")
		if _, err := e.Plan(req, deny); !errors.Is(err, ErrTypeNotAllowed) {
			t.Errorf("named: %v", err)
		}
		req, _ = e.Parse(KindSystem, "", url.Values{}, "respond-async")
		p, err := e.Plan(req, deny)
		if err != nil || slices.Contains(p.Types, "Practitioner") || !slices.Contains(p.Types, "Patient") {
			t.Errorf("default: %v, %v", p, err)
		}
	})
}

func TestAJobWhoseRunnerDiedIsTakenOver(t *testing.T) {
	f := newFixture(t)
	e := f.exporter(func(c *Config) { c.Owner = "instance-b" })
	id := f.start(t, e, KindSystem, "", "_type=Patient").ID
	// Instance A claims the job and dies without a word: its session ends
	// on the server as a kill -9 would end it, and the lock goes with it.
	claim, err := f.st.ClaimExportJob(context.Background(), "instance-a", 3, time.Hour)
	if err != nil || claim == nil || claim.Job.ID != id {
		t.Fatalf("claim: %v, %v", claim, err)
	}
	if _, err := f.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND classid::bigint = $1 AND granted AND pid <> pg_backend_pid()`, 0x76646178); err != nil {
		t.Fatal(err)
	}
	// The claim is never released: only the dead session let the job go.
	defer claim.Release(context.Background())
	run(t, e)
	j := f.wait(t, e, id)
	if j.Status != store.ExportCompleted || j.Attempts != 2 || j.Owner != "instance-b" {
		t.Errorf("status %s after %d attempts by %s: %s", j.Status, j.Attempts, j.Owner, j.Error)
	}
}
