package devices

import "strings"

// Measure is one quantity the Observations of Vidda's readings carry, by
// the LOINC code it is written under: a reading type (in one of its units,
// where the code depends on the unit: glucose in mg/dL and in mmol/L are
// two measures), or a component of a panel (systolic pressure). It is the
// code table (Table) seen by what reads Observations rather than by what
// decodes payloads: the care rules and the pages take codes, units and
// names from here and add only their own limits and labels, keyed by Key.
type Measure struct {
	// Key names the measure: the reading type's Name ("spo2"), the field
	// name of a panel's component ("systolic"), or for a type's further
	// units the type's Name and the unit ("glucose-mmol-l").
	Key string
	// LOINC are the codes it is written under, the primary first (what
	// Observation.code, or the component's code, starts with).
	LOINC []Coding
	// Text is its name for people, in English (Observation.code.text, or
	// the component's LOINC display).
	Text string
	// Unit is the unit its values are written in (for a panel, the unit
	// its Parts share).
	Unit Unit
	// Parts are a panel's components that carry a LOINC code of their own
	// and stay in the panel (systolic, diastolic, mean; not the pulse,
	// which is stored apart as a heart rate); nil for a single value.
	Parts []Measure
	// Required is true for a part every reading has.
	Required bool
}

// Code is the measure's primary LOINC code.
func (m *Measure) Code() string { return m.LOINC[0].Code }

// Measures lists every measure of the code table, in its order; the
// components of a panel are its Parts (see MeasuresByCode for all).
// Each call builds a fresh copy: call it once and keep what it returns.
func Measures() []Measure {
	var out []Measure
	for _, t := range Table() {
		value, single := t.Field(ValueField)
		if len(t.LOINC) == 0 && single {
			// The code depends on the unit: one measure per unit.
			for i, u := range value.Units {
				key := t.Name
				if i > 0 {
					key += "-" + unitKey(u.UCUM)
				}
				out = append(out, Measure{Key: key, LOINC: u.LOINC, Text: t.Text, Unit: u})
			}
			continue
		}
		m := Measure{Key: t.Name, LOINC: t.LOINC, Text: t.Text}
		if single {
			m.Unit = value.Units[0]
		}
		for _, f := range t.Fields {
			if len(f.LOINC) == 0 || f.Split != "" {
				continue
			}
			m.Parts = append(m.Parts, Measure{
				Key: f.Name, LOINC: f.LOINC, Text: f.LOINC[0].Display, Unit: f.Units[0], Required: f.Required,
			})
		}
		if !single && len(m.Parts) > 0 {
			m.Unit = m.Parts[0].Unit
		}
		out = append(out, m)
	}
	return out
}

// MeasuresByCode indexes Measures by every LOINC code a measure, or a
// panel's part, is written under (its primary code and its others). It
// builds the table once per call: a caller that looks up many codes
// keeps the map (and does not change the measures in it; they share
// their slices).
func MeasuresByCode(measures []Measure) map[string]Measure {
	out := map[string]Measure{}
	add := func(m Measure) {
		for _, c := range m.LOINC {
			if _, ok := out[c.Code]; !ok { // the first in table order wins
				out[c.Code] = m
			}
		}
	}
	for _, m := range measures {
		add(m)
		for _, p := range m.Parts {
			add(p)
		}
	}
	return out
}

// unitKey turns a UCUM code into a key's suffix: "mmol/L" → "mmol-l".
func unitKey(ucum string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, ucum)
}
