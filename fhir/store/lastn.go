package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vidda/vidda/fhir/search"
)

// LastN answers Observation/$lastn (R4 Observation §6.3.5.1): for each
// code (the first coding of Observation.code) among the Observations that
// meet q's filters, the max most recent by effective time, newest first.
// It walks the (patient_id, code[1], date_start DESC, id DESC) index: one
// probe per distinct code, then max rows per code; no JSON is read but the
// results'. Observations without an effective time are left out.
func (s *Store) LastN(ctx context.Context, q *search.Query, maxPerCode int, a Access) ([]Stored, error) {
	w := &where{onePatient: onePatient(q, a)}
	w.add("NOT deleted")
	w.add("date_start IS NOT NULL")
	if a.PatientID != "" {
		w.add("patient_id = " + w.arg(a.PatientID))
	}
	s.confineCare(w, "Observation", a)
	for _, f := range q.Filters {
		w.add(filterSQL(w, f, a))
	}
	cond := w.sql() // the same placeholders serve all three uses
	limit := w.arg(maxPerCode)
	sql := `WITH RECURSIVE codes(c) AS (
  (SELECT code[1] FROM observation` + cond + ` AND cardinality(code) > 0 ORDER BY code[1] LIMIT 1)
  UNION ALL
  SELECT (SELECT code[1] FROM observation` + cond + ` AND code[1] > codes.c ORDER BY code[1] LIMIT 1)
  FROM codes WHERE codes.c IS NOT NULL
)
SELECT o.id, o.version_id, o.last_updated, o.patient_id, o.content FROM codes CROSS JOIN LATERAL (
  SELECT id, version_id, last_updated, patient_id, content FROM observation` + cond + ` AND code[1] = codes.c
  ORDER BY date_start DESC, id DESC LIMIT ` + limit + `
) o WHERE codes.c IS NOT NULL`
	rows, err := s.pool.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("lastn: %w", translate(err))
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		st := Stored{Type: "Observation"}
		var pid pgtype.Text
		if err := rows.Scan(&st.ID, &st.VersionID, &st.LastUpdated, &pid, &st.Content); err != nil {
			return nil, fmt.Errorf("lastn: %w", err)
		}
		st.PatientID = pid.String
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lastn: %w", translate(err))
	}
	return out, nil
}
