package search_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

func TestDatesCoverTheirImplicitRange(t *testing.T) {
	oslo, err := time.LoadLocation("Europe/Oslo")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	p := search.NewDateParser(oslo)
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, in   string
		start, end time.Time
	}{
		{"a year is the whole year in the server's zone", "2026", utc("2025-12-31T23:00:00Z"), utc("2026-12-31T23:00:00Z")},
		{"a month is the whole month", "2026-02", utc("2026-01-31T23:00:00Z"), utc("2026-02-28T23:00:00Z")},
		{"a day across the DST change is 23 hours", "2026-03-29", utc("2026-03-28T23:00:00Z"), utc("2026-03-29T22:00:00Z")},
		{"seconds with a zone", "2026-11-20T07:31:00+01:00", utc("2026-11-20T06:31:00Z"), utc("2026-11-20T06:31:01Z")},
		{"minutes without a zone use the server's", "2026-11-20T07:31", utc("2026-11-20T06:31:00Z"), utc("2026-11-20T06:32:00Z")},
		{"milliseconds in UTC", "2026-11-20T07:31:00.250Z", utc("2026-11-20T07:31:00.25Z"), utc("2026-11-20T07:31:00.251Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := p.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Start.Equal(tt.start) || !r.End.Equal(tt.end) {
				t.Errorf("%s: [%s, %s), want [%s, %s)", tt.in, r.Start.UTC(), r.End.UTC(), tt.start, tt.end)
			}
		})
	}
	for _, bad := range []string{"", "yesterday", "2026-13", "2026-02-30", "2026-11-20T25:00:00Z", "2026-11-20T07:31:00+1", "20261120"} {
		if _, err := p.Parse(bad); !errors.Is(err, search.ErrBadDate) {
			t.Errorf("Parse(%q) = %v, want ErrBadDate", bad, err)
		}
	}
}

func parse(t *testing.T, typ, q string, strict bool) (*search.Query, error) {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return search.NewRegistry(time.UTC).Parse(typ, v, strict)
}

func TestQueriesParseIntoTypedFilters(t *testing.T) {
	tests := []struct {
		name, typ, query string
		want             []string // per filter, its values' keys
	}{
		{"a token with a system", "Observation", "code=http://loinc.org|85354-9", []string{"http://loinc.org|85354-9"}},
		{"a token in any system", "Observation", "code=85354-9", []string{"*|85354-9"}},
		{"a token with no system", "Observation", "code=|85354-9", []string{"|85354-9"}},
		{"any code of a system", "Patient", "identifier=urn:oid:1|", []string{"urn:oid:1|*"}},
		{"OR with a comma, with an escaped comma kept", "Patient", `identifier=a\,b,c`, []string{"*|a,b", "*|c"}},
		{"a patient reference by type and id", "Observation", "patient=Patient/p1", []string{"p1"}},
		{"a bare patient id", "Observation", "patient=p1", []string{"p1"}},
		{"a subject reference keeps its type", "Observation", "subject=Group/g1", []string{"Group/g1"}},
		{"a date with a prefix", "Observation", "date=ge2026-11-01", []string{"ge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parse(t, tt.typ, tt.query, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(q.Filters) != 1 {
				t.Fatalf("%d filters", len(q.Filters))
			}
			var got []string
			for _, v := range q.Filters[0].Values {
				switch {
				case v.Prefix != "":
					got = append(got, v.Prefix)
				case len(v.Refs) > 0:
					got = append(got, strings.Join(v.Refs, ","))
				default:
					got = append(got, v.Token)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("values %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("values %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestBadQueriesAreRejectedWithAReason(t *testing.T) {
	tests := []struct{ name, typ, query string }{
		{"a reference to a type the parameter cannot hold", "Observation", "patient=Device/d1"},
		{"a negative _count", "Patient", "_count=-1"},
		{"an unknown _total", "Patient", "_total=maybe"},
		{"an unknown _summary", "Patient", "_summary=short"},
		{"an unknown date prefix", "Observation", "date=zz2026"},
		{"an empty token", "Patient", "identifier="},
		{"an unknown parameter under strict handling", "Patient", "shoe-size=42"},
		{"an unsupported modifier under strict handling", "Patient", "identifier:above=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.typ, tt.query, true)
			var verr *fhir.ValidationError
			if !errors.As(err, &verr) || len(verr.Issues) == 0 || verr.Issues[0].Diagnostics == "" {
				t.Fatalf("err = %v, want a ValidationError with a reason", err)
			}
		})
	}
	if _, err := parse(t, "Spaceship", "", false); !errors.Is(err, fhir.ErrUnsupportedType) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestLenientHandlingListsIgnoredParameters(t *testing.T) {
	q, err := parse(t, "Patient", "shoe-size=42&identifier=x&_count=5000", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Ignored) != 1 || q.Ignored[0] != "shoe-size" {
		t.Errorf("ignored %v", q.Ignored)
	}
	if q.Count != search.MaxCount {
		t.Errorf("_count %d, want it capped at %d", q.Count, search.MaxCount)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"patient=p1&code=http://loinc.org|85354-9&date=ge2026-11-01&_count=50",
		`identifier=a\,b,|c,sys|`, "date=ap2026-11-20T07:31:00.123+01:00", "subject=http://x/fhir/Patient/1",
		"_summary=count&_total=none&_cursor=abc", "code:not=x",
	} {
		f.Add("Observation", s)
		f.Add("Patient", s)
	}
	reg := search.NewRegistry(time.UTC)
	f.Fuzz(func(t *testing.T, typ, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, strict := range []bool{true, false} {
			q, err := reg.Parse(typ, v, strict)
			if err != nil {
				continue
			}
			if q.Count < 0 || q.Count > search.MaxCount {
				t.Fatalf("count %d out of range", q.Count)
			}
			for _, f := range q.Filters {
				if len(f.Values) == 0 && f.Chain == nil {
					t.Fatalf("filter %s without values", f.Param.Name)
				}
			}
		}
	})
}
