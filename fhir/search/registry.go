package search

import (
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// NewRegistry declares every search parameter Vidda serves. Adding a
// parameter is one entry here plus its column in a migration.
func NewRegistry(zone *time.Location) *Registry {
	identifier := func(doc string, get func(any) []fm.Identifier) *Param {
		return &Param{
			Name: "identifier", Kind: Token, Column: "identifier", Doc: doc,
			extract: func(m any, _ *DateParser) (Values, error) { return identifierTokens(get(m)), nil },
		}
	}
	defs := []*Definition{
		{
			Type: "Patient",
			Params: []*Param{
				identifier("A patient identifier", func(m any) []fm.Identifier { return m.(*fm.Patient).Identifier }),
			},
			Compartment: func(_ any, id string) string { return id },
		},
		{
			Type: "Practitioner",
			Params: []*Param{
				identifier("A practitioner's identifier", func(m any) []fm.Identifier { return m.(*fm.Practitioner).Identifier }),
			},
		},
		{
			Type: "Organization",
			Params: []*Param{
				identifier("Any identifier for the organization", func(m any) []fm.Identifier { return m.(*fm.Organization).Identifier }),
			},
		},
		{
			Type: "Device",
			Params: []*Param{
				identifier("Instance id from manufacturer, owner, and others", func(m any) []fm.Identifier { return m.(*fm.Device).Identifier }),
				{Name: "patient", Kind: Reference, Column: "patient_id", Targets: []string{"Patient"}, Doc: "Patient information, if the resource is affixed to a person"},
				{
					Name: "status", Kind: Token, Column: "status", Doc: "active | inactive | entered-in-error | unknown",
					extract: func(m any, _ *DateParser) (Values, error) {
						if s := m.(*fm.Device).Status; s != nil {
							return Values{Tokens: TokenKeys("http://hl7.org/fhir/device-status", s.Code())}, nil
						}
						return Values{}, nil
					},
				},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Device).Patient) },
		},
		{
			Type: "Observation",
			Params: []*Param{
				{Name: "patient", Kind: Reference, Column: "patient_id", Targets: []string{"Patient"}, Doc: "The subject that the observation is about (if patient)"},
				{
					Name: "subject", Kind: Reference, Column: "subject", Targets: []string{"Patient", "Group", "Device", "Location"}, Doc: "The subject that the observation is about",
					extract: func(m any, _ *DateParser) (Values, error) { return refValues(m.(*fm.Observation).Subject), nil },
				},
				{
					Name: "code", Kind: Token, Column: "code", Doc: "The code of the observation type",
					extract: func(m any, _ *DateParser) (Values, error) { return conceptTokens(m.(*fm.Observation).Code), nil },
				},
				{
					Name: "category", Kind: Token, Column: "category", Doc: "The classification of the type of observation",
					extract: func(m any, _ *DateParser) (Values, error) {
						return conceptTokens(m.(*fm.Observation).Category...), nil
					},
				},
				{
					Name: "status", Kind: Token, Column: "status", Doc: "The status of the observation",
					extract: func(m any, _ *DateParser) (Values, error) {
						return Values{Tokens: TokenKeys("http://hl7.org/fhir/observation-status", m.(*fm.Observation).Status.Code())}, nil
					},
				},
				{
					Name: "device", Kind: Reference, Column: "device", Targets: []string{"Device", "DeviceMetric"}, Doc: "The Device that generated the observation data.",
					extract: func(m any, _ *DateParser) (Values, error) { return refValues(m.(*fm.Observation).Device), nil },
				},
				{
					Name: "identifier", Kind: Token, Column: "identifier", Doc: "The unique id for a particular observation",
					extract: func(m any, _ *DateParser) (Values, error) {
						return identifierTokens(m.(*fm.Observation).Identifier), nil
					},
				},
				{
					Name: "date", Kind: Date, Column: "date", Doc: "Obtained date/time. If the obtained element is a period, a date that falls in the period",
					extract: func(m any, dp *DateParser) (Values, error) { return observationDate(m.(*fm.Observation), dp) },
				},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Observation).Subject) },
		},
	}
	r := &Registry{defs: map[string]*Definition{}, dates: NewDateParser(zone)}
	for _, d := range defs {
		r.defs[d.Type] = d
	}
	return r
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func refPatient(r *fm.Reference) string {
	if r == nil || r.Reference == nil {
		return ""
	}
	id, _ := refID(*r.Reference, "Patient")
	return id
}

func refValues(refs ...*fm.Reference) Values {
	var v Values
	for _, r := range refs {
		if r == nil || r.Reference == nil {
			continue
		}
		ref := *r.Reference
		for _, typ := range []string{"Patient", "Group", "Device", "DeviceMetric", "Location", "Practitioner", "Organization", "Encounter"} {
			if id, ok := refID(ref, typ); ok {
				v.Refs = append(v.Refs, typ+"/"+id)
				break
			}
		}
	}
	return v
}

func identifierTokens(ids []fm.Identifier) Values {
	var v Values
	for _, id := range ids {
		v.Tokens = append(v.Tokens, TokenKeys(deref(id.System), deref(id.Value))...)
	}
	return v
}

func conceptTokens(ccs ...fm.CodeableConcept) Values {
	var v Values
	for _, cc := range ccs {
		for _, c := range cc.Coding {
			v.Tokens = append(v.Tokens, TokenKeys(deref(c.System), deref(c.Code))...)
		}
	}
	return v
}

func observationDate(o *fm.Observation, dp *DateParser) (Values, error) {
	var s string
	switch {
	case o.EffectiveDateTime != nil:
		s = *o.EffectiveDateTime
	case o.EffectiveInstant != nil:
		s = *o.EffectiveInstant
	case o.EffectivePeriod != nil:
		return periodRange(o.EffectivePeriod, dp)
	default:
		return Values{}, nil
	}
	r, err := dp.Parse(s)
	if err != nil {
		return Values{}, err
	}
	return Values{Dates: []Range{r}}, nil
}

// periodRange: an open end means "ongoing" (R4 §2.24.0.6), indexed as
// open-ended.
func periodRange(p *fm.Period, dp *DateParser) (Values, error) {
	r := Range{Start: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}
	if p.Start != nil {
		s, err := dp.Parse(*p.Start)
		if err != nil {
			return Values{}, err
		}
		r.Start = s.Start
	}
	if p.End != nil {
		e, err := dp.Parse(*p.End)
		if err != nil {
			return Values{}, err
		}
		r.End = e.End
	}
	return Values{Dates: []Range{r}}, nil
}
