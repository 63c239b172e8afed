package search

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Range is a half-open time interval [Start, End): the implicit range a FHIR
// date, dateTime or instant covers at its precision (FHIR R4 search §3.1.1.4.2:
// "2026-11" means the whole month).
type Range struct {
	Start, End time.Time
}

// ErrBadDate reports a value that is not a FHIR date, dateTime or instant.
var ErrBadDate = errors.New("not a FHIR date, dateTime or instant")

// dateRe matches the R4 dateTime grammar: year, month, day, then a time with
// optional fraction that requires a zone.
func dateRe() *regexp.Regexp {
	return regexp.MustCompile(`^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)
}

// DateParser parses FHIR dates into ranges. Build it once; it is safe for
// concurrent use.
type DateParser struct {
	re *regexp.Regexp
	// Zone is used for values without a zone (dates and search values like
	// "2026-11-20T10:00" that omit it).
	Zone *time.Location
}

// NewDateParser returns a parser that reads zoneless values in zone (UTC when nil).
func NewDateParser(zone *time.Location) *DateParser {
	if zone == nil {
		zone = time.UTC
	}
	return &DateParser{re: dateRe(), Zone: zone}
}

// Parse returns the implicit range of a FHIR date, dateTime or instant.
func (p *DateParser) Parse(s string) (Range, error) {
	m := p.re.FindStringSubmatch(s)
	if m == nil {
		return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
	}
	loc := p.Zone
	if m[12] != "" {
		if m[12] == "Z" {
			loc = time.UTC
		} else {
			t, err := time.Parse("-07:00", m[12])
			if err != nil {
				return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
			}
			loc = t.Location()
		}
	}
	num := func(i int) int {
		n := 0
		for _, c := range m[i] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	year := num(1)
	switch {
	case m[3] == "":
		start := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
		return Range{start, start.AddDate(1, 0, 0)}, nil
	case m[5] == "":
		if num(3) < 1 || num(3) > 12 {
			return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
		}
		start := time.Date(year, time.Month(num(3)), 1, 0, 0, 0, 0, loc)
		return Range{start, start.AddDate(0, 1, 0)}, nil
	case m[7] == "":
		start := time.Date(year, time.Month(num(3)), num(5), 0, 0, 0, 0, loc)
		if start.Day() != num(5) || num(3) < 1 || num(3) > 12 {
			return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
		}
		return Range{start, start.AddDate(0, 0, 1)}, nil
	}
	if num(7) > 23 || num(8) > 59 || num(10) > 59 {
		return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
	}
	if m[3] == "" || num(3) < 1 || num(3) > 12 {
		return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
	}
	start := time.Date(year, time.Month(num(3)), num(5), num(7), num(8), num(10), 0, loc)
	if start.Day() != num(5) {
		return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate)
	}
	switch {
	case m[9] == "":
		return Range{start, start.Add(time.Minute)}, nil
	case m[11] == "":
		return Range{start, start.Add(time.Second)}, nil
	}
	frac := m[11][1:]
	ns := 0
	for i := range 9 {
		ns *= 10
		if i < len(frac) {
			ns += int(frac[i] - '0')
		}
	}
	unit := time.Duration(1)
	for range 9 - len(frac) {
		unit *= 10
	}
	start = start.Add(time.Duration(ns))
	return Range{start, start.Add(unit)}, nil
}
