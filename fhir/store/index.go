package store

import (
	"fmt"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// indexColumns lists the search columns of a type's table in the order
// indexValues fills them. The compartment column is written separately.
func indexColumns(def *search.Definition) []string {
	var cols []string
	for _, p := range def.Params {
		switch {
		case p.Column == "patient_id":
		case p.Kind == search.Date:
			cols = append(cols, p.Column+"_start", p.Column+"_end")
		default:
			cols = append(cols, p.Column)
		}
	}
	return cols
}

// row is one resource version ready to insert into its type's table.
type row struct {
	id          string
	version     int64
	lastUpdated time.Time
	patientID   *string
	content     []byte
	index       []any // values for indexColumns, in order
}

// newRow prepares res, stored under id at version, for insertion: it sets
// id and meta in the client's JSON and extracts the search values.
func (s *Store) newRow(def *search.Definition, res *fhir.Resource, id string, version int64, at time.Time) (*row, error) {
	content, err := fhir.WithMeta(res.Raw, id, fmt.Sprint(version), at)
	if err != nil {
		return nil, fmt.Errorf("set meta: %w", err)
	}
	r := &row{id: id, version: version, lastUpdated: at, content: content}
	if def.Compartment != nil {
		if pid := def.Compartment(res.Model, id); pid != "" {
			r.patientID = &pid
		}
	}
	for _, p := range def.Params {
		if p.Column == "patient_id" {
			continue
		}
		v, err := p.Extract(res.Model, s.params.Dates())
		if err != nil {
			return nil, &fhir.ValidationError{Issues: []fhir.Issue{{
				Severity: "error", Code: "value",
				Diagnostics: err.Error(), Expression: []string{def.Type},
			}}}
		}
		switch p.Kind {
		case search.Date:
			var start, end *time.Time
			for _, rg := range v.Dates {
				if start == nil || rg.Start.Before(*start) {
					start = &rg.Start
				}
				if end == nil || rg.End.After(*end) {
					end = &rg.End
				}
			}
			r.index = append(r.index, start, end)
		case search.Reference:
			r.index = append(r.index, nonNil(v.Refs))
		case search.Token:
			r.index = append(r.index, nonNil(v.Tokens))
		}
	}
	return r, nil
}

// inCompartment reports whether a row may be written by a caller with a.
func (r *row) inCompartment(a Access) bool {
	return a.PatientID == "" || (r.patientID != nil && *r.patientID == a.PatientID)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
