package search

import (
	"errors"
	"fmt"
	"sync"
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

// DateParser parses FHIR dates into ranges. Build it once; it is safe for
// concurrent use.
type DateParser struct {
	// Zone is used for values without a zone (dates and search values like
	// "2026-11-20T10:00" that omit it).
	Zone *time.Location
	// zones holds the fixed zones of the offsets seen, so that a reading
	// measured at +01:00 does not build a new *time.Location.
	zones sync.Map // int (seconds east of UTC) -> *time.Location
}

// NewDateParser returns a parser that reads zoneless values in zone (UTC when nil).
func NewDateParser(zone *time.Location) *DateParser {
	if zone == nil {
		zone = time.UTC
	}
	return &DateParser{Zone: zone}
}

// Parse returns the implicit range of a FHIR date, dateTime or instant:
// the R4 dateTime grammar (year, month, day, then a time with an optional
// fraction of up to 9 digits and an optional zone). It is hand-written,
// not a regular expression, because it runs for every stored reading and
// every date a search names; dates_test.go holds the regular expression
// it replaced and checks both agree.
func (p *DateParser) Parse(s string) (Range, error) {
	bad := func() (Range, error) { return Range{}, fmt.Errorf("%q: %w", s, ErrBadDate) }
	year, ok := digits(s, 0, 4)
	if !ok {
		return bad()
	}
	if len(s) == 4 {
		start := time.Date(year, 1, 1, 0, 0, 0, 0, p.Zone)
		return Range{start, start.AddDate(1, 0, 0)}, nil
	}
	month, ok := digits(s, 5, 2)
	if !ok || s[4] != '-' || month < 1 || month > 12 {
		return bad()
	}
	if len(s) == 7 {
		start := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, p.Zone)
		return Range{start, start.AddDate(0, 1, 0)}, nil
	}
	day, ok := digits(s, 8, 2)
	if !ok || s[7] != '-' {
		return bad()
	}
	if len(s) == 10 {
		start := time.Date(year, time.Month(month), day, 0, 0, 0, 0, p.Zone)
		if start.Day() != day {
			return bad()
		}
		return Range{start, start.AddDate(0, 0, 1)}, nil
	}
	hour, ok1 := digits(s, 11, 2)
	minute, ok2 := digits(s, 14, 2)
	if !ok1 || !ok2 || s[10] != 'T' || s[13] != ':' || hour > 23 || minute > 59 {
		return bad()
	}
	i, sec, unit, ns := 16, 0, time.Minute, 0
	if i < len(s) && s[i] == ':' {
		if sec, ok = digits(s, 17, 2); !ok || sec > 59 {
			return bad()
		}
		i, unit = 19, time.Second
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && j-i <= 9 && s[j] >= '0' && s[j] <= '9' {
				ns = ns*10 + int(s[j]-'0')
				unit /= 10
				j++
			}
			if j == i+1 {
				return bad()
			}
			for range 9 - (j - i - 1) {
				ns *= 10
			}
			i = j
		}
	}
	loc, ok := p.zone(s[i:])
	if !ok {
		return bad()
	}
	start := time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc)
	if start.Day() != day {
		return bad()
	}
	start = start.Add(time.Duration(ns))
	return Range{start, start.Add(unit)}, nil
}

// zone reads what follows a time: nothing (p.Zone), Z, or ±hh:mm.
func (p *DateParser) zone(z string) (*time.Location, bool) {
	switch {
	case z == "":
		return p.Zone, true
	case z == "Z":
		return time.UTC, true
	case len(z) != 6 || (z[0] != '+' && z[0] != '-') || z[3] != ':':
		return nil, false
	}
	hh, ok1 := digits(z, 1, 2)
	mm, ok2 := digits(z, 4, 2)
	if !ok1 || !ok2 || hh > 24 || mm > 60 { // what time.Parse("-07:00") accepts
		return nil, false
	}
	off := hh*3600 + mm*60
	if z[0] == '-' {
		off = -off
	}
	if l, ok := p.zones.Load(off); ok {
		return l.(*time.Location), true //nolint:forcetypeassert // only zone stores, and only locations
	}
	l, _ := p.zones.LoadOrStore(off, time.FixedZone("", off))
	return l.(*time.Location), true //nolint:forcetypeassert // as above
}

// digits reads the n decimal digits of s at i.
func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}
