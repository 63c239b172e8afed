package search

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"
)

// dateRE is the replaced parser's expression, compiled once: the fuzz
// target runs the oracle for every input.
//
//nolint:gochecknoglobals // the oracle's compiled expression, built once per test binary
var dateRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)
})

// regexpParse is the parser Parse replaced, kept as its oracle: the R4
// dateTime grammar as a regular expression.
func regexpParse(s string, zone *time.Location) (Range, error) {
	m := dateRE().FindStringSubmatch(s)
	bad := fmt.Errorf("%q: %w", s, ErrBadDate)
	if m == nil {
		return Range{}, bad
	}
	loc := zone
	if m[12] == "Z" {
		loc = time.UTC
	} else if m[12] != "" {
		t, err := time.Parse("-07:00", m[12])
		if err != nil {
			return Range{}, bad
		}
		loc = t.Location()
	}
	num := func(i int) int {
		n := 0
		for _, c := range m[i] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(1), num(3), num(5)
	switch {
	case m[3] == "":
		start := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
		return Range{start, start.AddDate(1, 0, 0)}, nil
	case month < 1 || month > 12:
		return Range{}, bad
	case m[5] == "":
		start := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, loc)
		return Range{start, start.AddDate(0, 1, 0)}, nil
	}
	if m[7] == "" {
		start := time.Date(year, time.Month(month), day, 0, 0, 0, 0, loc)
		if start.Day() != day {
			return Range{}, bad
		}
		return Range{start, start.AddDate(0, 0, 1)}, nil
	}
	if num(7) > 23 || num(8) > 59 || num(10) > 59 {
		return Range{}, bad
	}
	start := time.Date(year, time.Month(month), day, num(7), num(8), num(10), 0, loc)
	if start.Day() != day {
		return Range{}, bad
	}
	switch {
	case m[9] == "":
		return Range{start, start.Add(time.Minute)}, nil
	case m[11] == "":
		return Range{start, start.Add(time.Second)}, nil
	}
	frac := m[11][1:]
	ns, unit := 0, time.Duration(1)
	for i := range 9 {
		ns *= 10
		if i < len(frac) {
			ns += int(frac[i] - '0')
		} else {
			unit *= 10
		}
	}
	start = start.Add(time.Duration(ns))
	return Range{start, start.Add(unit)}, nil
}

func checkAgainstRegexp(t *testing.T, p *DateParser, s string) {
	t.Helper()
	got, err := p.Parse(s)
	want, wantErr := regexpParse(s, p.Zone)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("Parse(%q): error %v, the regular expression says %v", s, err, wantErr)
	}
	if err != nil {
		if !errors.Is(err, ErrBadDate) {
			t.Fatalf("Parse(%q): %v is not ErrBadDate", s, err)
		}
		return
	}
	if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
		t.Fatalf("Parse(%q) = [%v, %v), the regular expression says [%v, %v)", s, got.Start, got.End, want.Start, want.End)
	}
}

var dateCases = []string{
	"2026", "2026-11", "2026-11-20", "2026-11-20T07:31", "2026-11-20T07:31Z", "2026-11-20T07:31:00",
	"2026-11-20T07:31:00+01:00", "2026-11-20T07:31:00.5-05:30", "2026-11-20T07:31:00.123456789Z",
	"2026-11-20T07:31:00.1234567890Z", "2026-02-29", "2024-02-29", "2026-13", "2026-00", "2026-11-31",
	"2026-11-00", "2026-11-20T24:00", "2026-11-20T23:60", "2026-11-20T23:59:60", "2026-11-20T23:59:59.",
	"2026-11-20T10", "2026-11-20T10:00:00+25:00", "2026-11-20T10:00:00+24:00", "2026-11-20T10:00:00-00:60",
	"2026-11-20T10:00:00-00:61", "2026-11-20T10:00:00+0100", "2026-11-20 10:00", "26-11-20", "", "2026-1",
	"2026-11-2", "２０２６", "2026-11-20T10:00:00ZZ", "2026-11-20T10:00:00.5+01:00x", "0001-01-01", "9999-12-31T23:59:59.999999999Z",
}

func TestParseAgreesWithTheRegexp(t *testing.T) {
	for _, zone := range []*time.Location{time.UTC, time.FixedZone("clinic", 3600)} {
		p := NewDateParser(zone)
		for _, s := range dateCases {
			checkAgainstRegexp(t, p, s)
		}
	}
}

func FuzzDateParse(f *testing.F) {
	for _, s := range dateCases {
		f.Add(s)
	}
	p := NewDateParser(time.FixedZone("clinic", 3600))
	f.Fuzz(func(t *testing.T, s string) { checkAgainstRegexp(t, p, s) })
}

func BenchmarkDateParse(b *testing.B) {
	p := NewDateParser(time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("2026-11-20T07:31:00+01:00"); err != nil {
			b.Fatal(err)
		}
	}
}
