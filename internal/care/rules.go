package care

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/fhir/search"
)

// defaultRules is the clinic-wide defaults vidda ships (rules.json): the
// limits of issue 6, used unless VIDDA_CARE_RULES names another file.
//
//go:embed rules.json
var defaultRules []byte

// DefaultRules returns the built-in rules (TestDefaultRulesAreValid holds
// them valid).
func DefaultRules() (*Rules, error) {
	r, err := ParseRules(defaultRules)
	if err != nil {
		return nil, fmt.Errorf("built-in rules.json: %w", err)
	}
	return r, nil
}

// Rules are the clinic-wide defaults: per measure, the limits that flag a
// reading (a patient's Goal replaces the normal range, see Limits), the
// trend rules, and the settings of late readings and missed measurements.
//
// The file is JSON:
//
//	{"late_after": "1h",
//	 "measures": [{"code": "59408-5",
//	               "low": {"below": 92, "priority": "urgent"},
//	               "critical_low": {"below": 88, "priority": "stat"},
//	               "high": {"at_or_above": 180, "priority": "urgent"}, "critical_high": {...}}],
//	 "trends": [{"name": "weight-gain", "code": "29463-7", "rise_above": 2, "within": "72h",
//	             "priority": "urgent", "care_plan_category": "http://snomed.info/sct|84114007"}],
//	 "missed": {"check_every": "1m", "grace": 1.5}}
//
// A measure devices send (devices.Measures) takes its other codes
// ("also"), name and unit from the code table; the file may add codes and
// another name, and a unit only if it is the table's. Other measures must
// give a name (and a unit for Goals in it to count).
//
// A band names exactly one comparison, so the file says which side of a
// limit is normal: "below" (value < x), "at_or_below" (<=), "above" (>),
// "at_or_above" (>=). Low bands compare downwards, high bands upwards.
type Rules struct {
	// LateAfter: a reading received this long after it was measured is
	// tagged late (it is judged by its measurement time either way).
	LateAfter time.Duration
	// Measures by their LOINC codes (Code and Also).
	Measures []Measure
	// Trends are rules over a patient's earlier readings.
	Trends []Trend
	// MissedEvery is how often the missed-measurement check runs.
	MissedEvery time.Duration
	// MissedGrace: a planned measure is missed when no reading came for
	// its interval (period / frequency) times MissedGrace.
	MissedGrace float64

	byCode map[string]*Measure
	// panelOf maps a panel part's measure (systolic) to its panel's
	// (blood pressure): devices send the part only inside the panel.
	panelOf map[*Measure]*Measure
	// dates reads the FHIR dates of plans (fhir/search's parser, the one
	// the store indexes dates with); zoneless values are UTC.
	dates *search.DateParser
}

// Measure is the default limits of one measure.
type Measure struct {
	// Code is the LOINC code Vidda writes first in Observation.code (the
	// code of device readings); Also lists other codes of the same measure
	// that Goals and CarePlans may use.
	Code string
	Also []string
	Name string
	// Unit is the UCUM unit the limits are in.
	Unit string
	// Limits flag the measure's values; zero for a measure without
	// limits of its own (a panel, judged by its components).
	Limits Limits
}

// Trend flags a reading A (abnormal) when it rose more than RiseAbove
// over the lowest reading of the same code within the Within before it.
type Trend struct {
	Name      string
	Code      string
	RiseAbove float64
	Within    time.Duration
	Priority  Priority
	// CarePlanCategory ("system|code"), when set, limits the rule to
	// patients with an active CarePlan of that category (heart failure).
	CarePlanCategory string
}

// Measure returns the measure of LOINC code (Code or one of Also).
func (r *Rules) Measure(code string) (*Measure, bool) {
	m, ok := r.byCode[code]
	return m, ok
}

// panelsOf maps the measures that devices send only as a panel's part to
// the panel's measure, both as the rules name them.
func panelsOf(dms []devices.Measure, byCode map[string]*Measure) map[*Measure]*Measure {
	out := map[*Measure]*Measure{}
	for _, dm := range dms {
		panel, ok := byCode[dm.Code()]
		if !ok {
			continue
		}
		for _, part := range dm.Parts {
			if m, ok := byCode[part.Code()]; ok && m != panel {
				out[m] = panel
			}
		}
	}
	return out
}

// trendsFor returns the trend rules of code.
func (r *Rules) trendsFor(code string) []*Trend {
	var out []*Trend
	for i := range r.Trends {
		if r.Trends[i].Code == code {
			out = append(out, &r.Trends[i])
		}
	}
	return out
}

// trend returns the trend rule named name.
func (r *Rules) trend(name string) (*Trend, bool) {
	for i := range r.Trends {
		if r.Trends[i].Name == name {
			return &r.Trends[i], true
		}
	}
	return nil, false
}

// The file's shapes.
type rulesFile struct {
	LateAfter string        `json:"late_after"`
	Measures  []measureFile `json:"measures"`
	Trends    []trendFile   `json:"trends"`
	Missed    *missedFile   `json:"missed"`
}

type measureFile struct {
	Code         string    `json:"code"`
	Also         []string  `json:"also"`
	Name         string    `json:"name"`
	Unit         string    `json:"unit"`
	Low          *bandFile `json:"low"`
	CriticalLow  *bandFile `json:"critical_low"`
	High         *bandFile `json:"high"`
	CriticalHigh *bandFile `json:"critical_high"`
}

type bandFile struct {
	Below     *float64 `json:"below"`
	AtOrBelow *float64 `json:"at_or_below"`
	Above     *float64 `json:"above"`
	AtOrAbove *float64 `json:"at_or_above"`
	Priority  string   `json:"priority"`
}

type trendFile struct {
	Name             string   `json:"name"`
	Code             string   `json:"code"`
	RiseAbove        *float64 `json:"rise_above"`
	Within           string   `json:"within"`
	Priority         string   `json:"priority"`
	CarePlanCategory string   `json:"care_plan_category"`
}

type missedFile struct {
	CheckEvery string   `json:"check_every"`
	Grace      *float64 `json:"grace"`
}

// maxRulesFile bounds the rules file; the built-in one is 3 KB.
const maxRulesFile = 1 << 20

// ParseRules decodes and checks a rules file. Every problem found is
// reported, each naming where it is (measures[2].low: ...).
func ParseRules(b []byte) (*Rules, error) {
	if len(b) > maxRulesFile {
		return nil, fmt.Errorf("care rules: file is %d bytes, more than %d", len(b), maxRulesFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f rulesFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("care rules: %w", err)
	}
	if dec.More() {
		return nil, errors.New("care rules: more than one JSON value")
	}
	var p problems
	r := &Rules{
		byCode: map[string]*Measure{}, dates: search.NewDateParser(time.UTC),
		MissedEvery: time.Minute, MissedGrace: 1.5, LateAfter: time.Hour,
	}
	if f.LateAfter != "" {
		r.LateAfter = p.duration("late_after", f.LateAfter)
	}
	r.Measures = make([]Measure, len(f.Measures))
	dms := devices.Measures()
	sent := devices.MeasuresByCode(dms)
	for i, mf := range f.Measures {
		r.Measures[i] = p.measure(fmt.Sprintf("measures[%d]", i), mf, sent)
	}
	for i := range r.Measures {
		m := &r.Measures[i]
		for _, c := range append([]string{m.Code}, m.Also...) {
			if c == "" {
				continue
			}
			if _, dup := r.byCode[c]; dup {
				p.add("measures[%d]: code %q is given to another measure too", i, c)
			}
			r.byCode[c] = m
		}
	}
	r.panelOf = panelsOf(dms, r.byCode)
	seen := map[string]bool{}
	for i, tf := range f.Trends {
		t := p.trend(fmt.Sprintf("trends[%d]", i), tf)
		if seen[t.Name] {
			p.add("trends[%d]: name %q is used twice", i, t.Name)
		}
		seen[t.Name] = true
		r.Trends = append(r.Trends, t)
	}
	if f.Missed != nil {
		if f.Missed.CheckEvery != "" {
			r.MissedEvery = p.duration("missed.check_every", f.Missed.CheckEvery)
		}
		if f.Missed.Grace != nil {
			r.MissedGrace = *f.Missed.Grace
		}
	}
	if r.MissedEvery <= 0 {
		p.add("missed.check_every must be positive")
	}
	if !(r.MissedGrace >= 1 && r.MissedGrace <= 100) {
		p.add("missed.grace must be between 1 and 100 (times the planned interval)")
	}
	if r.LateAfter <= 0 {
		p.add("late_after must be positive")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return r, nil
}

// problems collects what is wrong with a rules file.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("care rules: %s", strings.Join(p, "; "))
}

func (p *problems) duration(where, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		p.add("%s: %q is not a duration such as 90s, 1h or 72h", where, s)
	}
	return d
}

// measure checks one measure of the file; sent is the code table by
// LOINC code (devices.MeasuresByCode).
func (p *problems) measure(where string, f measureFile, sent map[string]devices.Measure) Measure {
	m := Measure{Code: f.Code, Also: f.Also, Name: f.Name, Unit: f.Unit}
	if !validCode(f.Code) {
		p.add("%s.code: %q is not a LOINC code", where, f.Code)
	}
	for j, c := range f.Also {
		if !validCode(c) {
			p.add("%s.also[%d]: %q is not a LOINC code", where, j, c)
		}
	}
	// A measure devices send takes its other codes, name and unit from
	// the code table (devices.Measures); the file gives only limits.
	if dm, ok := sent[f.Code]; ok {
		for _, c := range dm.LOINC {
			if c.Code != m.Code && !slices.Contains(m.Also, c.Code) {
				m.Also = append(m.Also, c.Code)
			}
		}
		m.Name = cmp.Or(m.Name, dm.Text)
		if m.Unit != "" && m.Unit != dm.Unit.UCUM {
			p.add("%s.unit: devices write %s in %s, not %s", where, f.Code, dm.Unit.UCUM, m.Unit)
		}
		m.Unit = dm.Unit.UCUM
	}
	if strings.TrimSpace(m.Name) == "" {
		p.add("%s.name is missing (%s is not a measure devices send)", where, f.Code)
	}
	m.Limits.Low = p.band(where+".low", f.Low, false)
	m.Limits.CriticalLow = p.band(where+".critical_low", f.CriticalLow, false)
	m.Limits.High = p.band(where+".high", f.High, true)
	m.Limits.CriticalHigh = p.band(where+".critical_high", f.CriticalHigh, true)
	l := m.Limits
	if l.Low.Set && l.CriticalLow.Set && l.CriticalLow.Value > l.Low.Value {
		p.add("%s: critical_low (%g) is above low (%g)", where, l.CriticalLow.Value, l.Low.Value)
	}
	if l.High.Set && l.CriticalHigh.Set && l.CriticalHigh.Value < l.High.Value {
		p.add("%s: critical_high (%g) is below high (%g)", where, l.CriticalHigh.Value, l.High.Value)
	}
	if lo, hi := l.Normal(); lo.Set && hi.Set && lo.Value > hi.Value {
		p.add("%s: the low limits (%g) are above the high ones (%g)", where, lo.Value, hi.Value)
	}
	return m
}

// band checks one band: exactly one comparison, in its direction, with a
// finite limit and a priority.
func (p *problems) band(where string, f *bandFile, high bool) Band {
	if f == nil {
		return Band{}
	}
	var b Band
	n := 0
	set := func(v *float64, cmp Comparison) {
		if v != nil {
			n++
			b.Value, b.Cmp = *v, cmp
		}
	}
	set(f.Below, Below)
	set(f.AtOrBelow, AtOrBelow)
	set(f.Above, Above)
	set(f.AtOrAbove, AtOrAbove)
	switch {
	case n != 1:
		p.add("%s: give exactly one of below, at_or_below, above, at_or_above", where)
		return Band{}
	case math.IsNaN(b.Value) || math.IsInf(b.Value, 0):
		p.add("%s: the limit must be a finite number", where)
	case high && (b.Cmp == Below || b.Cmp == AtOrBelow):
		p.add("%s: a high limit compares with above or at_or_above", where)
	case !high && (b.Cmp == Above || b.Cmp == AtOrAbove):
		p.add("%s: a low limit compares with below or at_or_below", where)
	}
	pr, ok := ParsePriority(f.Priority)
	if !ok {
		p.add("%s.priority: %q is not one of routine, urgent, asap, stat", where, f.Priority)
	}
	b.Priority, b.Set = pr, true
	return b
}

func (p *problems) trend(where string, f trendFile) Trend {
	t := Trend{Name: f.Name, Code: f.Code, CarePlanCategory: f.CarePlanCategory}
	if !validCode(f.Name) {
		p.add("%s.name: %q must be letters, digits and dashes", where, f.Name)
	}
	if !validCode(f.Code) {
		p.add("%s.code: %q is not a LOINC code", where, f.Code)
	}
	if f.RiseAbove == nil || !(*f.RiseAbove > 0) || math.IsInf(*f.RiseAbove, 0) {
		p.add("%s.rise_above must be a positive number", where)
	} else {
		t.RiseAbove = *f.RiseAbove
	}
	if t.Within = p.duration(where+".within", f.Within); f.Within != "" && t.Within <= 0 {
		p.add("%s.within must be positive", where)
	}
	pr, ok := ParsePriority(f.Priority)
	if !ok {
		p.add("%s.priority: %q is not one of routine, urgent, asap, stat", where, f.Priority)
	}
	t.Priority = pr
	if c := f.CarePlanCategory; c != "" {
		if sys, code, ok := strings.Cut(c, "|"); !ok || sys == "" || code == "" {
			p.add("%s.care_plan_category: %q must be system|code", where, c)
		}
	}
	return t
}

// validCode accepts what LOINC codes and rule names look like: 1 to 64
// letters, digits, dashes and dots.
func validCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
