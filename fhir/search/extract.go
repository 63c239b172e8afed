package search

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// coded is what golang-fhir-models generates for required code bindings
// (fm.ObservationStatus, fm.AdministrativeGender, ...).
type coded interface{ Code() string }

// collect adds what one value reached by p's expression indexes.
func (p *Param) collect(v *Values, leaf any, dp *DateParser) error {
	switch p.Kind {
	case Token:
		p.collectToken(v, leaf)
	case Reference:
		p.collectRef(v, leaf)
	case URI:
		if s, ok := leaf.(*string); ok && *s != "" {
			v.Tokens = append(v.Tokens, *s)
		}
	case String:
		collectString(v, leaf)
	case Date:
		return collectDate(v, leaf, dp)
	case Number:
		if n, ok := leaf.(*json.Number); ok {
			v.Numbers = append(v.Numbers, n.String())
		}
	case Quantity:
		if q, ok := leaf.(*fm.Quantity); ok && q.Value != nil {
			v.Numbers = append(v.Numbers, q.Value.String())
			v.Tokens = append(v.Tokens, unitKeys(deref(q.System), deref(q.Code), deref(q.Unit))...)
		}
	}
	return nil
}

func (p *Param) collectToken(v *Values, leaf any) {
	switch x := leaf.(type) {
	case *fm.CodeableConcept:
		for _, c := range x.Coding {
			v.Tokens = appendTokenKeys(v.Tokens, deref(c.System), deref(c.Code))
		}
	case *fm.Coding:
		v.Tokens = appendTokenKeys(v.Tokens, deref(x.System), deref(x.Code))
	case *fm.Identifier:
		v.Tokens = appendTokenKeys(v.Tokens, deref(x.System), deref(x.Value))
	case *fm.ContactPoint:
		v.Tokens = appendTokenKeys(v.Tokens, "", deref(x.Value))
	case *bool:
		v.Tokens = appendTokenKeys(v.Tokens, p.System, fmt.Sprint(*x))
	case *string:
		v.Tokens = appendTokenKeys(v.Tokens, p.System, *x)
	case coded:
		v.Tokens = appendTokenKeys(v.Tokens, p.System, x.Code())
	}
}

func (p *Param) collectRef(v *Values, leaf any) {
	r, ok := leaf.(*fm.Reference)
	if !ok || r.Reference == nil {
		return
	}
	for _, typ := range p.Targets {
		if id, ok := refID(*r.Reference, typ); ok {
			v.Refs = append(v.Refs, typ+"/"+id)
			return
		}
	}
}

func collectString(v *Values, leaf any) {
	switch x := leaf.(type) {
	case *string:
		v.Strings = append(v.Strings, *x)
	case *fm.HumanName:
		if x.Family != nil {
			v.Strings = append(v.Strings, *x.Family)
		}
		v.Strings = append(v.Strings, x.Given...)
		v.Strings = append(v.Strings, x.Prefix...)
		v.Strings = append(v.Strings, x.Suffix...)
		if x.Text != nil {
			v.Strings = append(v.Strings, *x.Text)
		}
	case *fm.Address:
		v.Strings = append(v.Strings, x.Line...)
		for _, s := range []*string{x.City, x.District, x.State, x.PostalCode, x.Country, x.Text} {
			if s != nil {
				v.Strings = append(v.Strings, *s)
			}
		}
	}
}

func collectDate(v *Values, leaf any, dp *DateParser) error {
	switch x := leaf.(type) {
	case *string:
		r, err := dp.Parse(*x)
		if err != nil {
			return err
		}
		v.Dates = append(v.Dates, r)
	case *fm.Period:
		r, err := periodRange(x, dp)
		if err != nil {
			return err
		}
		v.Dates = append(v.Dates, r)
	}
	return nil
}

// periodRange: an open end means "ongoing" (R4 search §3.1.1.4.2), indexed
// as open-ended.
func periodRange(p *fm.Period, dp *DateParser) (Range, error) {
	r := Range{Start: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}
	if p.Start != nil {
		s, err := dp.Parse(*p.Start)
		if err != nil {
			return Range{}, err
		}
		r.Start = s.Start
	}
	if p.End != nil {
		e, err := dp.Parse(*p.End)
		if err != nil {
			return Range{}, err
		}
		r.End = e.End
	}
	return r, nil
}

// unitKeys are the keys a quantity's unit is found by: "system|code",
// "*|code" and, for `number||unit` searches, "*|<human unit>".
func unitKeys(system, code, unit string) []string {
	keys := TokenKeys(system, code)
	if unit != "" && unit != code {
		keys = append(keys, "*|"+unit)
	}
	return keys
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// refID returns the id of a relative reference "Type/id" (or an absolute
// URL ending so).
func refID(ref, typ string) (string, bool) {
	ref = strings.TrimSpace(ref)
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) >= 2 && parts[len(parts)-2] == typ {
		return parts[len(parts)-1], true
	}
	return "", false
}
