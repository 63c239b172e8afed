package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// indexColumns lists the search columns of a type's table in the order
// newRow fills them (see search.Param.Columns). The shared id,
// last_updated and compartment columns are written separately.
func indexColumns(def *search.Definition) []string {
	var cols []string
	for _, p := range def.Params {
		for _, c := range p.Columns() {
			cols = append(cols, c.Name)
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
		if p.Shared() {
			continue
		}
		v, err := p.Extract(res.Model, s.params.Dates())
		if err != nil {
			return nil, &fhir.ValidationError{Issues: []fhir.Issue{{
				Severity: "error", Code: "value",
				Diagnostics: err.Error(), Expression: []string{def.Type},
			}}}
		}
		cols, err := indexValues(p, v)
		if err != nil {
			return nil, err
		}
		r.index = append(r.index, cols...)
	}
	return r, nil
}

// inCompartment reports whether a row may be written by a caller with a.
func (r *row) inCompartment(a Access) bool {
	return a.PatientID == "" || (r.patientID != nil && *r.patientID == a.PatientID)
}

// indexValues are v in the layout of p.Columns.
func indexValues(p *search.Param, v search.Values) ([]any, error) {
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
		return []any{start, end}, nil
	case search.String:
		norm := make([]string, 0, len(v.Strings))
		for _, s := range v.Strings {
			if n := search.Normalize(s); !slices.Contains(norm, n) {
				norm = append(norm, n)
			}
		}
		return []any{norm, nonNil(v.Strings)}, nil
	case search.Number, search.Quantity:
		var num *pgtype.Numeric
		if len(v.Numbers) > 0 {
			num = new(pgtype.Numeric)
			if err := num.Scan(v.Numbers[0]); err != nil {
				return nil, fmt.Errorf("index %s: %q: %w", p.Name, v.Numbers[0], err)
			}
		}
		if p.Kind == search.Number {
			return []any{num}, nil
		}
		return []any{num, nonNil(v.Tokens)}, nil
	case search.Reference:
		return []any{nonNil(v.Refs)}, nil
	case search.Token, search.URI:
	}
	return []any{nonNil(v.Tokens)}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
