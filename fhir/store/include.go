package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vidda/vidda/fhir/search"
)

// includes fetches what _include and _revinclude add to a page (R4 search
// §3.1.1.5.4), at most search.MaxIncludes resources, none twice and none
// that is already a match. With a patient's access, only resources of that
// patient's compartment are added: a patient never reaches another's data
// through a reference.
func (s *Store) includes(ctx context.Context, q *search.Query, matches []Stored, a Access) ([]Stored, error) {
	seen := map[string]bool{}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = m.ID
		seen[m.Type+"/"+m.ID] = true
	}
	var out []Stored
	add := func(found []Stored) {
		for _, st := range found {
			if k := st.Type + "/" + st.ID; !seen[k] && len(out) < search.MaxIncludes {
				seen[k] = true
				out = append(out, st)
			}
		}
	}
	for _, inc := range q.Include {
		byType, err := s.referenced(ctx, q.Type, inc, ids)
		if err != nil {
			return nil, err
		}
		for typ, refIDs := range byType {
			w := &where{}
			w.add("id = ANY(" + w.arg(refIDs) + "::text[])")
			found, err := s.fetch(ctx, typ, w, a, search.MaxIncludes)
			if err != nil {
				return nil, err
			}
			add(found)
		}
	}
	for _, rev := range q.RevInclude {
		w := &where{}
		if rev.Param.Column == "patient_id" {
			w.add("patient_id = ANY(" + w.arg(ids) + "::text[])")
		} else {
			keys := make([]string, len(ids))
			for i, id := range ids {
				keys[i] = q.Type + "/" + id
			}
			w.add(rev.Param.Column + " && " + w.arg(keys) + "::text[]")
		}
		found, err := s.fetch(ctx, rev.Source, w, a, search.MaxIncludes)
		if err != nil {
			return nil, err
		}
		add(found)
	}
	return out, nil
}

// referenced returns the ids, by type, that inc's parameter of the matched
// resources refers to.
func (s *Store) referenced(ctx context.Context, typ string, inc search.Include, ids []string) (map[string][]string, error) {
	col := "unnest(" + inc.Param.Column + ")"
	if inc.Param.Column == "patient_id" {
		col = "'Patient/' || patient_id"
	}
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT "+col+" FROM "+table(typ)+" WHERE id = ANY($1::text[])", ids)
	if err != nil {
		return nil, fmt.Errorf("include %s:%s: %w", typ, inc.Param.Name, translate(err))
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var ref *string
		if err := rows.Scan(&ref); err != nil {
			return nil, fmt.Errorf("include %s:%s: %w", typ, inc.Param.Name, err)
		}
		if ref == nil {
			continue
		}
		t, id, ok := strings.Cut(*ref, "/")
		if !ok || (inc.Target != "" && t != inc.Target) || s.params.Definition(t) == nil {
			continue
		}
		out[t] = append(out[t], id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("include %s:%s: %w", typ, inc.Param.Name, translate(err))
	}
	return out, nil
}

// fetch returns the current, undeleted resources of typ that meet w and
// that a may see.
func (s *Store) fetch(ctx context.Context, typ string, w *where, a Access, limit int) ([]Stored, error) {
	if a.PatientID != "" {
		def := s.params.Definition(typ)
		switch {
		case def == nil || !def.InPatientCompartment():
			return nil, nil
		case typ == "Patient":
			w.add("id = " + w.arg(a.PatientID))
		default:
			w.add("patient_id = " + w.arg(a.PatientID))
		}
	}
	s.confineCare(w, typ, a)
	w.add("NOT deleted")
	rows, err := s.pool.Query(ctx, "SELECT id, version_id, last_updated, patient_id, content FROM "+table(typ)+w.sql()+
		" ORDER BY id LIMIT "+w.arg(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", typ, translate(err))
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		st := Stored{Type: typ}
		var pid pgtype.Text
		if err := rows.Scan(&st.ID, &st.VersionID, &st.LastUpdated, &pid, &st.Content); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", typ, err)
		}
		st.PatientID = pid.String
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", typ, translate(err))
	}
	return out, nil
}
