package devices

// Code systems and identifier systems used in the Observations Vidda writes.
const (
	// SystemLOINC is LOINC, the code of every Observation Vidda writes.
	SystemLOINC = "http://loinc.org"
	// SystemMDC is ISO/IEEE 11073-10101 nomenclature (MDC), the codes
	// personal health devices speak; kept beside LOINC.
	SystemMDC = "urn:iso:std:iso:11073:10101"
	// SystemUCUM is UCUM, the system of every valueQuantity.
	SystemUCUM = "http://unitsofmeasure.org"
	// SystemObservationCategory holds the vital-signs category.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	// SystemReading is the identifier system of the idempotency key.
	SystemReading = "urn:vidda:reading"
)

// ValueField is the Values key of a reading that carries one value (every
// type but blood pressure).
const ValueField = "value"

// Coding is one FHIR Coding.
type Coding struct {
	System  string
	Code    string
	Display string
}

// Unit is a unit a field accepts, with the values that are physically
// plausible in it.
type Unit struct {
	// UCUM is the UCUM code written to valueQuantity.code, and the unit of
	// Quantity.Unit in decoded readings.
	UCUM string
	// Display is written to valueQuantity.unit.
	Display string
	// Accept lists other spellings devices may use (compact JSON's "mmHg",
	// SenML's "beat/min"); the UCUM code itself is always accepted.
	Accept []string
	// Min and Max bound the plausible values, inclusive. They reject what
	// cannot be a real measurement, not what is clinically alarming: an
	// alarming value that is real must reach the nurse.
	Min, Max float64
	// LOINC replaces the type's LOINC codings when the code depends on the
	// unit (glucose: mass vs. molar concentration); nil otherwise.
	LOINC []Coding
}

// Field is one value of a reading: "value", or the systolic, diastolic,
// mean and pulse of a blood pressure.
type Field struct {
	// Name is the Values key, the compact JSON member and (for blood
	// pressure) the SenML record name.
	Name string
	// Required fields must be present.
	Required bool
	// LOINC and MDC code the component this field becomes (first written,
	// all accepted); empty for "value", which is the Observation's own
	// valueQuantity and takes the type's codes.
	LOINC []Coding
	MDC   []Coding
	// Units lists the accepted units; the first is the default.
	Units []Unit
	// Split names the reading type of a separate Observation this field
	// becomes instead of a component. The blood-pressure pulse is a heart
	// rate: stored as its own Observation (LOINC 8867-4) it is found by
	// every heart-rate query, trend and $lastn, which a component of the
	// blood-pressure panel is not. It points back to the panel through
	// derivedFrom (the cuff derives the pulse from the same oscillations).
	Split string
}

// ReadingType is one row of the code table.
type ReadingType struct {
	// Name is the compact JSON "type" and the SenML record name.
	Name string
	// Text is Observation.code.text.
	Text string
	// LOINC are the Observation.code LOINC codings, all written, the first
	// being the primary code (Observation.Code, the idempotency key). Empty
	// when the code depends on the unit (see Unit.LOINC).
	LOINC []Coding
	// MDC are the MDC codes this type is recognised by in FHIR payloads;
	// the first is written beside LOINC unless the device used another.
	MDC []Coding
	// Fields are the values a reading of this type carries, in the order
	// components are written.
	Fields []Field
}

// Table is the code table: every reading type Vidda accepts, the single
// source for the decoders, the mapping to Observations and the tests.
// Each call returns a fresh copy, so callers cannot change it for others.
//
// Codes: LOINC (loinc.org, vital signs as in the FHIR R4 vital-signs
// profiles), MDC from ISO/IEEE 11073-10101 (code = partition × 2^16 + term;
// partition 2 is SCADA, the measurements of 11073-104xx device
// specializations), units from UCUM.
func Table() []ReadingType { return table("") }

// table builds the row named only, or every row when only is "". It is the
// declaration behind Table; the hot path (one compact reading decoded and
// mapped) builds just the row it needs rather than the whole table.
func table(only string) []ReadingType {
	want := func(name string) bool { return only == "" || only == name }
	// The rows share four backing arrays, one allocation each instead of
	// one per slice. (Slices stay correct when a capacity is short: append
	// then starts a new array.)
	// Capacities fit the whole table, or its largest row.
	nc, nu, nf, ns, nr := 28, 12, 10, 10, 7
	if only != "" {
		nc, nu, nf, ns, nr = 10, 4, 4, 4, 1
	}
	var (
		codingArr = make([]Coding, 0, nc)
		unitArr   = make([]Unit, 0, nu)
		fieldArr  = make([]Field, 0, nf)
		stringArr = make([]string, 0, ns)
		rows      = make([]ReadingType, 0, nr)
	)
	codings := func(cs ...Coding) []Coding {
		n := len(codingArr)
		codingArr = append(codingArr, cs...)
		return codingArr[n:len(codingArr):len(codingArr)]
	}
	units := func(us ...Unit) []Unit {
		n := len(unitArr)
		unitArr = append(unitArr, us...)
		return unitArr[n:len(unitArr):len(unitArr)]
	}
	fields := func(fs ...Field) []Field {
		n := len(fieldArr)
		fieldArr = append(fieldArr, fs...)
		return fieldArr[n:len(fieldArr):len(fieldArr)]
	}
	strs := func(ss ...string) []string {
		n := len(stringArr)
		stringArr = append(stringArr, ss...)
		return stringArr[n:len(stringArr):len(stringArr)]
	}
	loinc := func(code, display string) []Coding { return codings(Coding{SystemLOINC, code, display}) }
	mdc := func(code, display string) Coding { return Coding{SystemMDC, code, display} }
	mmHg := func(lo, hi float64) []Unit {
		return units(Unit{UCUM: "mm[Hg]", Display: "mmHg", Accept: strs("mmHg"), Min: lo, Max: hi})
	}
	perMin := func(display string, lo, hi float64) []Unit {
		// SenML registers beat/min and 1/min (RFC 8428 §12.1).
		return units(Unit{UCUM: "/min", Display: display, Accept: strs("beat/min", "1/min"), Min: lo, Max: hi})
	}
	value := func(us []Unit) []Field {
		return fields(Field{Name: ValueField, Required: true, Units: us})
	}
	heartRate := func() []Coding { return loinc("8867-4", "Heart rate") }
	if want("blood-pressure") {
		rows = append(rows, ReadingType{
			Name:  "blood-pressure",
			Text:  "Blood pressure",
			LOINC: loinc("85354-9", "Blood pressure panel with all children optional"),
			MDC:   codings(mdc("150020", "MDC_PRESS_BLD_NONINV")),
			Fields: fields(
				Field{
					Name: "systolic", Required: true,
					LOINC: loinc("8480-6", "Systolic blood pressure"),
					MDC:   codings(mdc("150021", "MDC_PRESS_BLD_NONINV_SYS")),
					Units: mmHg(40, 300),
				},
				Field{
					Name: "diastolic", Required: true,
					LOINC: loinc("8462-4", "Diastolic blood pressure"),
					MDC:   codings(mdc("150022", "MDC_PRESS_BLD_NONINV_DIA")),
					Units: mmHg(10, 250),
				},
				Field{
					Name:  "mean",
					LOINC: loinc("8478-0", "Mean blood pressure"),
					MDC:   codings(mdc("150023", "MDC_PRESS_BLD_NONINV_MEAN")),
					Units: mmHg(20, 300),
				},
				Field{
					Name:  "pulse",
					LOINC: heartRate(),
					MDC:   codings(mdc("149546", "MDC_PULS_RATE_NON_INV")),
					Units: perMin("beats/minute", 20, 300),
					Split: "heart-rate",
				},
			),
		})
	}
	if want("spo2") {
		rows = append(rows, ReadingType{
			Name: "spo2",
			Text: "Oxygen saturation",
			// US Core pulse oximetry asks for 59408-5, the R4 vital-signs
			// profile for 2708-6: both are written.
			LOINC: codings(
				Coding{SystemLOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"},
				Coding{SystemLOINC, "2708-6", "Oxygen saturation in Arterial blood"},
			),
			MDC:    codings(mdc("150456", "MDC_PULS_OXIM_SAT_O2")),
			Fields: value(units(Unit{UCUM: "%", Display: "%", Min: 0, Max: 100})),
		})
	}
	if want("heart-rate") {
		rows = append(rows, ReadingType{
			Name:  "heart-rate",
			Text:  "Heart rate",
			LOINC: heartRate(),
			// A PHD gateway codes a cuff's pulse as MDC_PULS_RATE_NON_INV
			// and an oximeter's as MDC_PULS_OXIM_PULS_RATE.
			MDC: codings(
				mdc("147842", "MDC_ECG_HEART_RATE"),
				mdc("149546", "MDC_PULS_RATE_NON_INV"),
				mdc("149530", "MDC_PULS_OXIM_PULS_RATE"),
			),
			Fields: value(perMin("beats/minute", 20, 300)),
		})
	}
	if want("weight") {
		rows = append(rows, ReadingType{
			Name:   "weight",
			Text:   "Body weight",
			LOINC:  loinc("29463-7", "Body weight"),
			MDC:    codings(mdc("188736", "MDC_MASS_BODY_ACTUAL")),
			Fields: value(units(Unit{UCUM: "kg", Display: "kg", Min: 0.2, Max: 650})),
		})
	}
	if want("temperature") {
		rows = append(rows, ReadingType{
			Name:   "temperature",
			Text:   "Body temperature",
			LOINC:  loinc("8310-5", "Body temperature"),
			MDC:    codings(mdc("150364", "MDC_TEMP_BODY")),
			Fields: value(units(Unit{UCUM: "Cel", Display: "°C", Min: 25, Max: 45})),
		})
	}
	if want("respiratory-rate") {
		rows = append(rows, ReadingType{
			Name:   "respiratory-rate",
			Text:   "Respiratory rate",
			LOINC:  loinc("9279-1", "Respiratory rate"),
			MDC:    codings(mdc("151562", "MDC_RESP_RATE")),
			Fields: value(perMin("breaths/minute", 1, 150)),
		})
	}
	if want("glucose") {
		rows = append(rows, ReadingType{
			Name: "glucose",
			Text: "Blood glucose",
			// A home glucose meter (IEEE 11073-10417) measures capillary
			// whole blood, or reports it as plasma-equivalent.
			MDC: codings(
				mdc("160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
				mdc("160188", "MDC_CONC_GLU_CAPILLARY_PLASMA"),
			),
			Fields: value(units(
				Unit{
					UCUM: "mg/dL", Display: "mg/dL", Min: 10, Max: 1000,
					LOINC: loinc("2339-0", "Glucose [Mass/volume] in Blood"),
				},
				Unit{
					UCUM: "mmol/L", Display: "mmol/L", Min: 0.5, Max: 55.5,
					LOINC: loinc("15074-8", "Glucose [Moles/volume] in Blood"),
				},
			)),
		})
	}
	return rows
}

// lookup builds the one row named name.
func lookup(name string) (*ReadingType, bool) {
	if name == "" {
		return nil, false
	}
	rows := table(name)
	if len(rows) == 0 {
		return nil, false
	}
	return &rows[0], true
}

// findType returns the table row named name.
func findType(table []ReadingType, name string) (*ReadingType, bool) {
	for i := range table {
		if table[i].Name == name {
			return &table[i], true
		}
	}
	return nil, false
}

// Field returns the field named name.
func (t *ReadingType) Field(name string) (*Field, bool) {
	for i := range t.Fields {
		if t.Fields[i].Name == name {
			return &t.Fields[i], true
		}
	}
	return nil, false
}

// LOINCFor returns the Observation.code LOINC codings of a reading of this
// type whose value is in unit ucum.
func (t *ReadingType) LOINCFor(ucum string) []Coding {
	if len(t.LOINC) > 0 {
		return t.LOINC
	}
	for _, f := range t.Fields {
		for _, u := range f.Units {
			if u.UCUM == ucum {
				return u.LOINC
			}
		}
	}
	return nil
}

// Unit returns the unit spelled s (its UCUM code or an accepted spelling).
func (f *Field) Unit(s string) (*Unit, bool) {
	for i := range f.Units {
		u := &f.Units[i]
		if u.UCUM == s {
			return u, true
		}
		for _, a := range u.Accept {
			if a == s {
				return u, true
			}
		}
	}
	return nil, false
}

// unitNames lists the accepted spellings, for messages.
func (f *Field) unitNames() string {
	s := ""
	for i, u := range f.Units {
		if i > 0 {
			s += " or "
		}
		s += u.UCUM
	}
	return s
}
