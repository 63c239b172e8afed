package devices

import (
	"strconv"
	"strings"
	"time"

	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/vidda/vidda/fhir"
)

// MDC codes are partition × 2^16 + term code (ISO/IEEE 11073-10101).
// Partition 1 (object infrastructure) holds attributes of the device, such
// as the coincident time stamp MDC_ATTR_TIME_ABS (67975), not measurements
// of the patient; partition 2 (SCADA) holds the measurements.
const (
	mdcPartitionObject = 1 << 16
	mdcPartitionSCADA  = 2 << 16
)

// observationReading maps one FHIR Observation to a Reading. skip is true
// for an Observation about the device (see FHIRPayload.Skipped).
func observationReading(reg *fhir.Registry, table []ReadingType, raw []byte, index int) (r Reading, skip bool, rej *RejectError) {
	res, err := reg.Parse("Observation", raw)
	if err != nil {
		return r, false, &RejectError{Reason: ReasonMalformed, Index: index, Message: "Observation: " + err.Error(), Err: err}
	}
	obs, ok := res.Model.(*fhirmodels.Observation)
	if !ok {
		return r, false, reject(ReasonMalformed, index, "", "Observation: unexpected model %T", res.Model)
	}
	r = Reading{Index: index, ID: observationID(obs)}
	fail := func(reason Reason, format string, args ...any) (Reading, bool, *RejectError) {
		return Reading{}, false, reject(reason, index, r.ID, format, args...)
	}
	switch obs.Status {
	case fhirmodels.ObservationStatusFinal, fhirmodels.ObservationStatusAmended, fhirmodels.ObservationStatusCorrected:
	case fhirmodels.ObservationStatusRegistered, fhirmodels.ObservationStatusPreliminary,
		fhirmodels.ObservationStatusCancelled, fhirmodels.ObservationStatusEnteredInError,
		fhirmodels.ObservationStatusUnknown:
		return fail(ReasonUnsupported, "status must be final, amended or corrected, not %s", obs.Status.Code())
	}
	t, mdc, unit, rej := matchCode(table, obs.Code.Coding, index, r.ID)
	switch {
	case rej != nil:
		return Reading{}, false, rej
	case t == nil:
		return Reading{}, true, nil
	}
	r.Type, r.MDC = t.Name, mdc
	if r.At, rej = effective(obs, index, r.ID); rej != nil {
		return Reading{}, false, rej
	}
	if r.Values, rej = observationValues(t, obs, unit, index, r.ID); rej != nil {
		return Reading{}, false, rej
	}
	r.Subject, r.Device = ref(obs.Subject), ref(obs.Device)
	if rej := r.validate(t); rej != nil {
		return Reading{}, false, rej
	}
	return r, false, nil
}

// observationID is the first identifier value, or the resource id, when it
// can be a reading id.
func observationID(obs *fhirmodels.Observation) string {
	for _, id := range obs.Identifier {
		if id.Value != nil {
			if validReadingID(*id.Value) {
				return *id.Value
			}
			break
		}
	}
	if obs.Id != nil && validReadingID(*obs.Id) {
		return *obs.Id
	}
	return ""
}

// matchCode finds the table row a code.coding names. It returns the row,
// the MDC code used ("" when none), the UCUM unit a LOINC code implies
// ("" when it implies none), or nil row and no error for an Observation
// about the device: coded in MDC partition 1 and in nothing else LOINC or
// MDC.
func matchCode(table []ReadingType, codings []fhirmodels.Coding, index int, id string) (*ReadingType, string, string, *RejectError) {
	var found *ReadingType
	var mdc, unit string
	deviceCode, otherCode := false, false
	for _, c := range codings {
		if c.System == nil || c.Code == nil {
			continue
		}
		system, code := *c.System, *c.Code
		var t *ReadingType
		switch system {
		case SystemLOINC:
			t, unit = findLOINC(table, code, unit)
			otherCode = true
		case SystemMDC:
			if t = findMDC(table, code); t != nil {
				mdc = code
			}
			n, err := strconv.Atoi(code)
			inObject := err == nil && n >= mdcPartitionObject && n < mdcPartitionSCADA
			deviceCode = deviceCode || inObject
			otherCode = otherCode || !inObject
		}
		if t == nil {
			continue
		}
		if found != nil && found != t {
			return nil, "", "", reject(ReasonMalformed, index, id, "code.coding names both %s and %s", found.Name, t.Name)
		}
		found = t
	}
	switch {
	case found != nil:
		return found, mdc, unit, nil
	case deviceCode && !otherCode:
		return nil, "", "", nil
	}
	return nil, "", "", reject(ReasonUnknownType, index, id, "code.coding has no LOINC or MDC code of a reading type Vidda knows")
}

// findLOINC finds the row with LOINC code code; for a code that implies a
// unit it returns that unit, else unit unchanged.
func findLOINC(table []ReadingType, code, unit string) (*ReadingType, string) {
	for i := range table {
		t := &table[i]
		if hasCode(t.LOINC, code) {
			return t, unit
		}
		for _, f := range t.Fields {
			for _, u := range f.Units {
				if hasCode(u.LOINC, code) {
					return t, u.UCUM
				}
			}
		}
	}
	return nil, unit
}

// findMDC finds the row with MDC code code.
func findMDC(table []ReadingType, code string) *ReadingType {
	for i := range table {
		if hasCode(table[i].MDC, code) {
			return &table[i]
		}
	}
	return nil
}

// effective reads the measurement time.
func effective(obs *fhirmodels.Observation, index int, id string) (time.Time, *RejectError) {
	var s string
	switch {
	case obs.EffectiveDateTime != nil:
		s = *obs.EffectiveDateTime
	case obs.EffectiveInstant != nil:
		s = *obs.EffectiveInstant
	case obs.EffectivePeriod != nil && obs.EffectivePeriod.Start != nil:
		s = *obs.EffectivePeriod.Start
	default:
		return time.Time{}, reject(ReasonMissingTime, index, id,
			"the Observation needs effectiveDateTime, effectiveInstant or effectivePeriod.start")
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if !strings.Contains(s, "T") {
			return time.Time{}, reject(ReasonMissingTime, index, id, "the measurement time needs time of day and offset")
		}
		return time.Time{}, reject(ReasonMalformed, index, id, "the measurement time is not an RFC 3339 date-time")
	}
	return at, nil
}

// observationValues reads valueQuantity, or the components of a panel.
func observationValues(t *ReadingType, obs *fhirmodels.Observation, unit string, index int, id string) (map[string]Quantity, *RejectError) {
	values := make(map[string]Quantity, 4)
	if f, ok := t.Field(ValueField); ok {
		if len(obs.Component) > 0 {
			return nil, reject(ReasonMalformed, index, id, "a %s Observation has no components", t.Name)
		}
		if obs.ValueQuantity == nil {
			return nil, reject(ReasonMissingValue, index, id, "the Observation has no valueQuantity")
		}
		q, rej := quantity(f, obs.ValueQuantity, index, id)
		if rej != nil {
			return nil, rej
		}
		if unit != "" && q.Unit != unit {
			return nil, reject(ReasonWrongUnit, index, id, "the LOINC code asks for %s", unit)
		}
		values[ValueField] = q
		return values, nil
	}
	if obs.ValueQuantity != nil {
		return nil, reject(ReasonMalformed, index, id, "%s values go in components, not valueQuantity", t.Name)
	}
	for _, c := range obs.Component {
		f := componentField(t, c.Code.Coding)
		switch {
		case f == nil:
			return nil, reject(ReasonUnknownType, index, id, "a component code is not one of %s", t.Name)
		case c.ValueQuantity == nil:
			return nil, reject(ReasonMissingValue, index, id, "the %s component has no valueQuantity", f.Name)
		}
		if _, dup := values[f.Name]; dup {
			return nil, reject(ReasonMalformed, index, id, "two %s components", f.Name)
		}
		q, rej := quantity(f, c.ValueQuantity, index, id)
		if rej != nil {
			return nil, rej
		}
		values[f.Name] = q
	}
	return values, nil
}

// componentField finds the field a component's codings name.
func componentField(t *ReadingType, codings []fhirmodels.Coding) *Field {
	for _, c := range codings {
		if c.System == nil || c.Code == nil {
			continue
		}
		for i := range t.Fields {
			f := &t.Fields[i]
			if *c.System == SystemLOINC && hasCode(f.LOINC, *c.Code) || *c.System == SystemMDC && hasCode(f.MDC, *c.Code) {
				return f
			}
		}
	}
	return nil
}

// quantity reads a UCUM Quantity for field f.
func quantity(f *Field, q *fhirmodels.Quantity, index int, id string) (Quantity, *RejectError) {
	if q.Value == nil {
		return Quantity{}, reject(ReasonMissingValue, index, id, "%s has no value", f.Name)
	}
	if q.Comparator != nil {
		return Quantity{}, reject(ReasonUnsupported, index, id, "%s has a comparator (a value out of the meter's range)", f.Name)
	}
	v, err := strconv.ParseFloat(string(*q.Value), 64)
	if err != nil {
		return Quantity{}, reject(ReasonImpossibleValue, index, id, "%s is not a finite number", f.Name)
	}
	var unit string
	switch {
	case q.System != nil && *q.System != SystemUCUM:
		return Quantity{}, reject(ReasonWrongUnit, index, id, "%s must be in UCUM (%s)", f.Name, f.unitNames())
	case q.Code != nil:
		unit = *q.Code
	case q.Unit != nil:
		unit = *q.Unit
	}
	if u, ok := f.Unit(unit); ok {
		unit = u.UCUM
	}
	return Quantity{Value: v, Unit: unit}, nil
}

// ref copies a model Reference.
func ref(r *fhirmodels.Reference) Ref {
	if r == nil {
		return Ref{}
	}
	out := Ref{Identifier: identifier(r.Identifier)}
	if r.Reference != nil {
		out.Reference = *r.Reference
	}
	return out
}
