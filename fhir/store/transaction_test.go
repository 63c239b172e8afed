package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestRewriteReferencesKeepsEveryOtherByte(t *testing.T) {
	to := map[string]string{"urn:uuid:p": "Patient/new", "urn:uuid:o": "Observation/o1"}
	resolve := func(ref string) (string, error) {
		if v, ok := to[ref]; ok {
			return v, nil
		}
		return ref, nil
	}
	tests := []struct{ name, in, want string }{
		{
			"a reference to a fullUrl becomes Type/id and the spacing and numbers stay",
			`{"resourceType":"Observation", "subject" : { "reference" :  "urn:uuid:p", "display":"urn:uuid:p" }, "valueQuantity":{"value":71.50}}`,
			`{"resourceType":"Observation", "subject" : { "reference" :  "Patient/new", "display":"urn:uuid:p" }, "valueQuantity":{"value":71.50}}`,
		},
		{
			"references in contained resources, arrays and extensions are rewritten too",
			`{"contained":[{"resourceType":"Observation","subject":{"reference":"urn:uuid:p"}}],"derivedFrom":[{"reference":"urn:uuid:o"},{"reference":"Observation/x"}],"extension":[{"url":"u","valueReference":{"reference":"urn:uuid:p"}}]}`,
			`{"contained":[{"resourceType":"Observation","subject":{"reference":"Patient/new"}}],"derivedFrom":[{"reference":"Observation/o1"},{"reference":"Observation/x"}],"extension":[{"url":"u","valueReference":{"reference":"Patient/new"}}]}`,
		},
		{
			"a member name spelled with escapes is still a reference",
			`{"subject":{"refer\u0065nce":"urn:uuid:p"},"note":[{"text":"caf\u00e9"}]}`,
			`{"subject":{"refer\u0065nce":"Patient/new"},"note":[{"text":"caf\u00e9"}]}`,
		},
		{
			"a value spelled with escapes is recognised",
			`{"subject":{"reference":"urn:uuid:\u0070"}}`,
			`{"subject":{"reference":"Patient/new"}}`,
		},
		{
			"what only looks like a reference stays",
			`{"reference":["urn:uuid:p"],"x":{"reference":{"reference":1}},"text":{"div":"reference urn:uuid:p"},"y":"reference"}`,
			`{"reference":["urn:uuid:p"],"x":{"reference":{"reference":1}},"text":{"div":"reference urn:uuid:p"},"y":"reference"}`,
		},
		{
			"a resource without references is the same bytes",
			`{"resourceType":"Patient","birthDate":"1950","_birthDate":{"extension":[]}}`,
			`{"resourceType":"Patient","birthDate":"1950","_birthDate":{"extension":[]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := rewriteReferences([]byte(tt.in), resolve)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if changed != (tt.in != tt.want) {
				t.Errorf("changed = %v", changed)
			}
		})
	}
}

func TestRewriteReferencesStopsAtTheFirstUnresolvableReference(t *testing.T) {
	bad := errors.New("unresolvable")
	_, _, err := rewriteReferences([]byte(`{"a":{"reference":"urn:uuid:x"}}`), func(string) (string, error) { return "", bad })
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v, want the resolver's error", err)
	}
}

// FuzzRewriteReferences: on any JSON, the rewrite is valid JSON that
// decodes to the input with exactly the reference values replaced.
func FuzzRewriteReferences(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"reference":"urn:uuid:p"}}`,
		`{"a":[{"reference":"x"},{"b":{"reference":"y","reference2":"z"}}],"reference":"top"}`,
		`{"refer\u0065nce" : "a\"b", "c":[1,2.50,true,null]}`,
		`[{"reference":"x"}]`, `"reference"`, `{}`,
	} {
		f.Add([]byte(s))
	}
	const target = "Patient/fuzz"
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		out, changed, err := rewriteReferences(in, func(string) (string, error) { return target, nil })
		if err != nil {
			t.Fatalf("valid JSON %q: %v", in, err)
		}
		if !json.Valid(out) {
			t.Fatalf("rewrite of %q is not JSON: %q", in, out)
		}
		var before, after any
		if json.Unmarshal(in, &before) != nil || json.Unmarshal(out, &after) != nil {
			return // duplicate names and the like decode differently; validity is what matters
		}
		if want := replaceReferences(before, target); !reflect.DeepEqual(want, after) {
			t.Fatalf("rewrite of %q is %q", in, out)
		}
		if !changed && string(out) != string(in) {
			t.Fatalf("unchanged but different bytes")
		}
	})
}

func replaceReferences(v any, to string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if _, isString := x.(string); isString && k == "reference" {
				v[k] = to
			} else {
				v[k] = replaceReferences(x, to)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = replaceReferences(x, to)
		}
	}
	return v
}

// txFixture is a running store on a database of the test's own.
type txFixture struct {
	st   *Store
	pool *pgxpool.Pool
}

func newTxFixture(t *testing.T) *txFixture {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	st := New(pool, fhir.NewRegistry(), search.NewRegistry(time.UTC), DefaultConfig(), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store run: %v", err)
		}
	})
	return &txFixture{st: st, pool: pool}
}

// entry builds a Bundle entry as the HTTP edge would decode it.
func (f *txFixture) entry(t *testing.T, op Op, typ, id, fullURL, body string) Entry {
	t.Helper()
	e := Entry{Op: op, Type: typ, ID: id, FullURL: fullURL, Method: op.String(), URL: typ + "/" + id}
	if body != "" {
		res, err := f.st.types.Parse(typ, []byte(body))
		if err != nil {
			t.Fatalf("parse %s: %v", body, err)
		}
		e.Resource = res
	}
	return e
}

// rows counts every row of the resource and history tables.
func (f *txFixture) rows(t *testing.T) string {
	t.Helper()
	var out []string
	for _, tbl := range []string{"patient", "patient_history", "observation", "observation_history"} {
		var n int
		if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", tbl, n))
	}
	return strings.Join(out, " ")
}

const (
	txPatient = `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":%q}]}`
	txObs     = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":%q},"valueQuantity":{"value":71.50,"unit":"kg"}}`
)

func TestATransactionThatFailsHalfWayLeavesNoRowBehind(t *testing.T) {
	f := newTxFixture(t)
	ctx := context.Background()
	existing, err := f.st.Create(ctx, f.entry(t, OpCreate, "Patient", "", "", fmt.Sprintf(txPatient, "OLD")).Resource, Access{})
	if err != nil {
		t.Fatal(err)
	}
	withReading := f.entry(t, OpCreate, "Observation", "", "", fmt.Sprintf(txObs, "Patient/"+existing.ID))
	if _, err := f.st.Create(ctx, withReading.Resource, Access{}); err != nil {
		t.Fatal(err)
	}
	update := func(ifMatch int64) Entry {
		e := f.entry(t, OpUpdate, "Patient", existing.ID, "",
			fmt.Sprintf(`{"resourceType":"Patient","id":%q,"identifier":[{"system":"urn:test","value":"NEW"}]}`, existing.ID))
		e.IfMatch = ifMatch
		return e
	}
	readExisting := f.entry(t, OpRead, "Patient", existing.ID, "", "")
	// The failing entry is the third of four; the fourth is a write that
	// runs before it where the processing order allows.
	failures := []struct {
		name          string
		third, fourth Entry
		wantErr       error
	}{
		{"a read of a resource that does not exist", f.entry(t, OpRead, "Patient", "nobody", "", ""), update(0), fhir.ErrNotFound},
		{"an update with a stale ifMatch", update(7), readExisting, fhir.ErrPreconditionFailed},
		{"deleting a patient who still has readings", f.entry(t, OpDelete, "Patient", existing.ID, "", ""), readExisting, ErrStillReferenced},
		{"a reference to no entry of the bundle", f.entry(t, OpCreate, "Observation", "", "", fmt.Sprintf(txObs, "urn:uuid:0c9f3c1e-0000-4000-8000-000000000009")), update(0), nil},
	}
	before := f.rows(t)
	for _, tt := range failures {
		t.Run(tt.name+" undoes the entries before it", func(t *testing.T) {
			entries := []Entry{
				f.entry(t, OpCreate, "Patient", "", "urn:uuid:0c9f3c1e-0000-4000-8000-000000000001", fmt.Sprintf(txPatient, "HALF")),
				f.entry(t, OpCreate, "Observation", "", "", fmt.Sprintf(txObs, "urn:uuid:0c9f3c1e-0000-4000-8000-000000000001")),
				tt.third,
				tt.fourth,
			}
			for i := range entries {
				entries[i].Index = i
			}
			_, err := f.st.Transaction(ctx, entries)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Index != 2 {
				t.Fatalf("err = %v, want the failure of entry 2", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if after := f.rows(t); after != before {
				t.Errorf("rows before: %s\nrows after:  %s", before, after)
			}
		})
	}
}

func TestTheSameConditionalCreateTwiceInATransactionIsOneResource(t *testing.T) {
	f := newTxFixture(t)
	cond := url.Values{"identifier": {"urn:test|TWICE"}}
	a := f.entry(t, OpCreate, "Patient", "", "urn:uuid:0c9f3c1e-0000-4000-8000-00000000000a", fmt.Sprintf(txPatient, "TWICE"))
	b := f.entry(t, OpCreate, "Patient", "", "urn:uuid:0c9f3c1e-0000-4000-8000-00000000000b", fmt.Sprintf(txPatient, "TWICE"))
	a.Condition, b.Condition = cond, cond
	o := f.entry(t, OpCreate, "Observation", "", "", fmt.Sprintf(txObs, "urn:uuid:0c9f3c1e-0000-4000-8000-00000000000b"))
	results, err := f.st.Transaction(context.Background(), []Entry{a, b, o})
	if err != nil {
		t.Fatal(err)
	}
	if !results[0].Created || results[1].Created || results[1].Stored.ID != results[0].Stored.ID {
		t.Fatalf("results %+v %+v: want one created patient that both entries name", results[0], results[1])
	}
	if want := `"Patient/` + results[0].Stored.ID + `"`; !strings.Contains(string(results[2].Stored.Content), want) {
		t.Errorf("the observation refers to %s, want %s", results[2].Stored.Content, want)
	}
}

func TestATransactionChangesEachResourceOnlyOnce(t *testing.T) {
	f := newTxFixture(t)
	body := `{"resourceType":"Patient","id":"twice"}`
	entries := []Entry{f.entry(t, OpUpdate, "Patient", "twice", "", body), f.entry(t, OpDelete, "Patient", "twice", "", "")}
	entries[1].Index = 1
	_, err := f.st.Transaction(context.Background(), entries)
	var verr *fhir.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "only once") {
		t.Fatalf("err = %v, want a 400 saying a resource may change only once", err)
	}
}
