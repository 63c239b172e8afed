package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// The streams of FHIR Bulk Data $export. A claim's export reads every type
// from one snapshot (a read-only repeatable-read transaction), so the
// files of one export agree with each other: no Observation names a
// Patient the Patient file lacks because it arrived in between.
//
// Rows are streamed: pgx reads each from the connection as it is asked
// for and hands over the stored bytes without decoding them (RawValues),
// so memory stays flat however many rows there are. The query is a plain
// parameterized SELECT rather than COPY ... TO STDOUT: COPY takes no bind
// parameters, and the filters (_since, _typeFilter, compartments) would
// have to be spliced into its text; a streamed SELECT sends the same bytes
// per row (viddabench export measures it against COPY).

// ExportQuery selects the resources of one type an export writes.
type ExportQuery struct {
	Type string
	// Since keeps resources changed at or after it (_since); zero: all.
	Since time.Time
	// Filters are the type's _typeFilter searches, OR-ed; none: every
	// resource of the type.
	Filters []*search.Query
	// Patients, when not nil, keeps only resources in these patients'
	// compartments (a Group's members); a type outside the patient
	// compartment then has none.
	Patients []string
	// Compartment keeps only resources in some patient's compartment
	// (a Patient-level export).
	Compartment bool
}

// Begin opens the export's snapshot on the claim's connection and returns
// its time by the database's clock: every resource committed before it is
// in the snapshot.
func (c *ExportClaim) Begin(ctx context.Context) (time.Time, error) {
	if c.tx != nil {
		return time.Time{}, fmt.Errorf("export job %s: snapshot already open", c.Job.ID)
	}
	tx, err := c.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return time.Time{}, fmt.Errorf("export job %s: begin: %w", c.Job.ID, translate(err))
	}
	c.tx = tx
	var at time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("export job %s: begin: %w", c.Job.ID, translate(err))
	}
	return at.UTC(), nil
}

// End closes the snapshot.
func (c *ExportClaim) End(ctx context.Context) error {
	if c.tx == nil {
		return nil
	}
	err := c.tx.Commit(ctx)
	c.tx = nil
	if err != nil {
		return fmt.Errorf("export job %s: end: %w", c.Job.ID, translate(err))
	}
	return nil
}

// Export calls emit with the stored JSON of every resource q selects that
// a may see, and the id of the patient whose compartment it is in (nil:
// none), one at a time, in no particular order, and returns how many it
// emitted. The bytes are valid only during the call. Begin must have been
// called.
func (c *ExportClaim) Export(ctx context.Context, q ExportQuery, a Access, emit func(patientID, content []byte) error) (int64, error) {
	if c.tx == nil {
		return 0, fmt.Errorf("export job %s: no snapshot", c.Job.ID)
	}
	sql, args, err := c.s.exportSQL(q, a)
	if err != nil || sql == "" {
		return 0, err
	}
	rows, err := c.tx.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("export %s: %w", q.Type, translate(err))
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != 2 || raw[1] == nil {
			continue
		}
		if err := emit(raw[0], raw[1]); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export %s: %w", q.Type, translate(err))
	}
	return n, nil
}

// exportSQL is the query of q, or "" when q can match nothing.
func (s *Store) exportSQL(q ExportQuery, a Access) (string, []any, error) {
	if _, err := s.definition(q.Type); err != nil {
		return "", nil, err
	}
	inCompartment := s.inPatientCompartment(q.Type)
	if (q.Patients != nil || q.Compartment) && !inCompartment {
		return "", nil, nil
	}
	if q.Patients != nil && len(q.Patients) == 0 {
		return "", nil, nil
	}
	w := &where{}
	w.add("NOT deleted")
	if a.PatientID != "" {
		w.add("patient_id = " + w.arg(a.PatientID))
	}
	s.confineCare(w, q.Type, a)
	switch {
	case q.Patients != nil:
		w.add("patient_id = ANY(" + w.arg(q.Patients) + "::text[])")
	case q.Compartment:
		w.add("patient_id IS NOT NULL")
	}
	if !q.Since.IsZero() {
		w.add("last_updated >= " + w.arg(q.Since))
	}
	if len(q.Filters) > 0 {
		ors := make([]string, 0, len(q.Filters))
		for _, f := range q.Filters {
			if f.Type != q.Type {
				return "", nil, fmt.Errorf("export %s: a _typeFilter of %s: %w", q.Type, f.Type, fhir.ErrUnsupportedType)
			}
			if len(f.Filters) == 0 {
				ors = nil // one filter matching everything: no filter
				break
			}
			ands := make([]string, len(f.Filters))
			for i, flt := range f.Filters {
				ands[i] = filterSQL(w, flt, a)
			}
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		if len(ors) > 0 {
			w.add("(" + strings.Join(ors, " OR ") + ")")
		}
	}
	return "SELECT patient_id, content FROM " + table(q.Type) + w.sql(), w.args, nil
}

// GroupMembers returns, from the snapshot, the ids of the Patients Group
// id has as members (not inactive), in order, once each. A Group the
// caller a may not read, or none, is fhir.ErrNotFound; a deleted one
// fhir.ErrDeleted.
func (c *ExportClaim) GroupMembers(ctx context.Context, id string, a Access) ([]string, error) {
	if c.tx == nil {
		return nil, fmt.Errorf("export job %s: no snapshot", c.Job.ID)
	}
	var deleted bool
	var content []byte
	err := c.tx.QueryRow(ctx, "SELECT deleted, content FROM "+table("Group")+" WHERE id = $1", id).Scan(&deleted, &content)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", id, translate(err))
	}
	if a.PatientID != "" {
		// Groups are in no patient compartment.
		return nil, fmt.Errorf("group %s: %w", id, fhir.ErrNotFound)
	}
	if deleted {
		return nil, fmt.Errorf("group %s: %w", id, fhir.ErrDeleted)
	}
	return groupPatients(content)
}

// groupPatients reads the Patient members of a stored Group.
func groupPatients(content []byte) ([]string, error) {
	var g struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
			Inactive bool `json:"inactive"`
		} `json:"member"`
	}
	if err := json.Unmarshal(content, &g); err != nil {
		return nil, fmt.Errorf("group members: %w", err)
	}
	out := []string{}
	seen := map[string]bool{}
	for _, m := range g.Member {
		id, ok := patientRef(m.Entity.Reference)
		if m.Inactive || !ok || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}

// patientRef is the id of a reference to a Patient on this server:
// "Patient/x", or an absolute URL ending in it, with no version.
func patientRef(ref string) (string, bool) {
	ref, _, _ = strings.Cut(ref, "/_history/")
	i := strings.LastIndex(ref, "Patient/")
	if i < 0 || (i > 0 && ref[i-1] != '/') {
		return "", false
	}
	id := ref[i+len("Patient/"):]
	return id, fhir.ValidID(id)
}
