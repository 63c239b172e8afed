package web

import (
	"cmp"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/internal/care"
)

// The measures the pages know how to show: the vital signs Vidda's
// devices send. Codes, parts and units come from the devices' code table
// (devices.Measures); the pages add only how to write and chart them
// (presentations) and their names in each language (the catalogs'
// measure.<Key>, keyed by the devices' measure key). A measure with parts
// (blood pressure) keeps its values in Observation.component, one per
// part, and its limits are set per part: Goals for systolic and diastolic
// pressure.

// loincSystem is the code system of every Observation.code the pages read.
const loincSystem = devices.SystemLOINC

// measure is one vital sign on the pages.
type measure struct {
	// Key names the measure in the catalogs (measure.<Key>, ...): the
	// devices' measure key.
	Key string
	// Code is the LOINC code of Observation.code; Alt are other codes
	// devices use for the same measure (SpO2 by pulse oximetry or not).
	Code string
	Alt  []string
	// Unit is the UCUM code of the values, as the Goal's quantities carry
	// it; Shown is how a reader sees it.
	Unit, Shown string
	// Decimals is how many digits follow the decimal sign.
	Decimals int
	// Parts are the components of a panel that every reading has
	// (systolic, diastolic); nil for a measure with one value.
	Parts []part
	// Lo and Hi are the smallest range a chart shows, so that a steady
	// series is not blown up into noise.
	Lo, Hi float64
}

// part is one component of a panel.
type part struct{ Key, Code string }

// presentation is how the pages write and chart a measure.
type presentation struct {
	Decimals int
	Lo, Hi   float64
	// Shown replaces the devices' unit display ("beats/minute", the
	// English valueQuantity.unit) where the pages write it shorter.
	Shown string
}

// presentations are by the devices' measure key.
func presentations() map[string]presentation {
	return map[string]presentation{
		"blood-pressure":   {Lo: 60, Hi: 160},
		"spo2":             {Lo: 85, Hi: 100},
		"heart-rate":       {Lo: 50, Hi: 110, Shown: "/min"},
		"weight":           {Decimals: 1, Lo: 60, Hi: 80},
		"temperature":      {Decimals: 1, Lo: 36, Hi: 38.5},
		"respiratory-rate": {Lo: 10, Hi: 25, Shown: "/min"},
		"glucose":          {Lo: 70, Hi: 180},
		"glucose-mmol-l":   {Decimals: 1, Lo: 4, Hi: 10},
	}
}

// measures lists the measures in the order the pages show them (the code
// table's): every devices measure that has a presentation.
func measures() []measure {
	pres := presentations()
	var out []measure
	for _, dm := range devices.Measures() {
		pr, ok := pres[dm.Key]
		if !ok {
			continue
		}
		m := measure{Key: dm.Key, Code: dm.Code(), Unit: dm.Unit.UCUM, Shown: cmp.Or(pr.Shown, dm.Unit.Display), Decimals: pr.Decimals, Lo: pr.Lo, Hi: pr.Hi}
		for _, c := range dm.LOINC[1:] {
			m.Alt = append(m.Alt, c.Code)
		}
		for _, p := range dm.Parts {
			if p.Required {
				m.Parts = append(m.Parts, part{p.Key, p.Code()})
			}
		}
		out = append(out, m)
	}
	return out
}

// measureTable finds measures by any of their codes.
type measureTable struct {
	list   []measure
	byCode map[string]*measure
}

func newMeasureTable() *measureTable {
	t := &measureTable{list: measures(), byCode: map[string]*measure{}}
	for i := range t.list {
		m := &t.list[i]
		t.byCode[m.Code] = m
		for _, c := range m.Alt {
			t.byCode[c] = m
		}
	}
	return t
}

func (t *measureTable) of(code string) *measure { return t.byCode[code] }

// goalCodes are the codes a limit is set for: each part of a panel, or
// the measure itself.
func (m *measure) goalCodes() []string {
	if len(m.Parts) == 0 {
		return []string{m.Code}
	}
	out := make([]string, len(m.Parts))
	for i, p := range m.Parts {
		out[i] = p.Code
	}
	return out
}

// goalTarget is one limit the Goal form edits: a measure, or one part of
// a panel.
type goalTarget struct {
	Key, Code string
	M         *measure
}

func (t *measureTable) goalTargets() []goalTarget {
	var out []goalTarget
	for i := range t.list {
		m := &t.list[i]
		if m.Key == "glucose-mmol-l" {
			continue // one glucose limit, in the unit most meters here use
		}
		if len(m.Parts) == 0 {
			out = append(out, goalTarget{Key: m.Key, Code: m.Code, M: m})
			continue
		}
		for _, p := range m.Parts {
			out = append(out, goalTarget{Key: p.Key, Code: p.Code, M: m})
		}
	}
	return out
}

// limit is what is in force for one value of a measure (the measure, or
// one part of a panel) for a patient: internal/care's answer
// (care.PatientLimits), the limits the engine flags readings by. Low and
// High are the ends of the normal range as a chart shades it (nil: open);
// whether a value on an end is normal is the rules' to say (within).
type limit struct {
	Low, High *float64
	// LowOut and HighOut are true where the end itself is flagged (a
	// clinic default "at or above 180"); a Goal's ends are normal.
	LowOut, HighOut bool
	// Default is true for the clinic's default, false where the patient's
	// own Goal sets the range.
	Default bool
	// Goal is the patient's own range, nil without one.
	Goal *care.Range
	// Defaults are the measure's default limits (the Goal form's
	// placeholders).
	Defaults care.Limits
	judge    care.Limits
}

// limitOf is the limit of what care says is in force.
func limitOf(f care.InForce) limit {
	l := limit{Default: f.Goal == nil, Goal: f.Goal, Defaults: f.Measure.Limits, judge: f.Limits}
	lo, hi := f.Limits.Normal()
	if lo.Set {
		l.Low, l.LowOut = &lo.Value, lo.Cmp == care.AtOrBelow
	}
	if hi.Set {
		l.High, l.HighOut = &hi.Value, hi.Cmp == care.AtOrAbove
	}
	return l
}

func (l limit) set() bool { return l.Low != nil || l.High != nil }

// within reports whether v is normal by the limits (care.Limits.Judge).
func (l limit) within(v float64) bool {
	f, _ := l.judge.Judge(v)
	return !f.Abnormal()
}

// limits are a patient's limits by the code they are set for.
type limits map[string]limit

// of returns the limit of each value of a reading of m, in order.
func (ls limits) of(m *measure) []limit {
	codes := m.goalCodes()
	out := make([]limit, len(codes))
	for i, c := range codes {
		out[i] = ls[c]
	}
	return out
}

// withinAll reports whether every value is within its limit.
func withinAll(vals []float64, lim []limit) bool {
	for i, v := range vals {
		if i < len(lim) && !lim[i].within(v) {
			return false
		}
	}
	return true
}
