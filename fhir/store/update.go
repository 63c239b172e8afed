package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// The writes below each have two halves: an exported method that opens and
// commits one transaction, and an ...In function that does the work inside
// a transaction it is given. Transaction and Batch (transaction.go) call
// the same ...In functions, so a resource written through a Bundle follows
// exactly the rules of one written on its own.

// inTx runs fn in one transaction and commits it when fn succeeds; op
// prefixes the errors of begin and commit.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, translate(err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: commit: %w", op, translate(err))
	}
	return nil
}

// current is the current-version row of a resource, locked for update.
type current struct {
	version   int64
	deleted   bool
	patientID *string
}

func lockCurrent(ctx context.Context, tx pgx.Tx, typ, id string) (*current, error) {
	var c current
	err := tx.QueryRow(ctx, "SELECT version_id, deleted, patient_id FROM "+table(typ)+" WHERE id = $1 FOR UPDATE", id).
		Scan(&c.version, &c.deleted, &c.patientID)
	if err != nil {
		return nil, translate(err)
	}
	return &c, nil
}

// Update stores res as the new version of id (FHIR update). ifMatch, when
// not zero, is the version the client last saw (If-Match): a different
// current version fails with fhir.ErrPreconditionFailed. Updating an id that
// does not exist creates it (update as create); created reports that.
func (s *Store) Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, a Access) (st *Stored, created bool, err error) {
	def, err := s.definition(res.Type)
	if err != nil {
		return nil, false, err
	}
	err = s.inTx(ctx, "update "+res.Type+"/"+id, func(tx pgx.Tx) error {
		st, created, err = s.updateIn(ctx, tx, def, res, id, ifMatch, now(), a)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return st, created, nil
}

// updateIn is Update inside tx, stamping the new version with at.
func (s *Store) updateIn(ctx context.Context, tx pgx.Tx, def *search.Definition, res *fhir.Resource, id string, ifMatch int64, at time.Time, a Access) (*Stored, bool, error) {
	cur, err := lockCurrent(ctx, tx, res.Type, id)
	switch {
	case errors.Is(err, fhir.ErrNotFound):
		if ifMatch != 0 {
			return nil, false, fmt.Errorf("update %s/%s: If-Match on a resource that does not exist: %w", res.Type, id, fhir.ErrPreconditionFailed)
		}
		r, err := s.createRow(ctx, tx, def, res, id, at, a)
		if err != nil {
			return nil, false, err
		}
		if err := insertRows(ctx, tx, def, []*row{r}); err != nil {
			return nil, false, err
		}
		return r.stored(res.Type), true, nil
	case err != nil:
		return nil, false, fmt.Errorf("update %s/%s: %w", res.Type, id, err)
	}
	if ok, err := s.mayReach(ctx, tx, res.Type, a, cur.patientID); err != nil || !ok {
		return nil, false, fmt.Errorf("update %s/%s: %w", res.Type, id, cmp.Or(err, fhir.ErrNotFound))
	}
	if ifMatch != 0 && ifMatch != cur.version {
		return nil, false, fmt.Errorf("update %s/%s: version %d is current, not %d: %w", res.Type, id, cur.version, ifMatch, fhir.ErrPreconditionFailed)
	}
	r, err := s.newRow(def, res, id, cur.version+1, at)
	if err != nil {
		return nil, false, err
	}
	if err := s.mayWrite(ctx, tx, res.Type, r, a); err != nil {
		return nil, false, fmt.Errorf("update %s/%s: %w", res.Type, id, err)
	}
	if err := archive(ctx, tx, res.Type, id); err != nil {
		return nil, false, err
	}
	cols := append([]string{"version_id", "last_updated", "deleted", "patient_id", "content"}, indexColumns(def)...)
	args := append([]any{r.version, r.lastUpdated, false, r.patientID, r.content}, r.index...)
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = fmt.Sprintf("%s = $%d", c, i+1)
	}
	args = append(args, id)
	if _, err := tx.Exec(ctx, "UPDATE "+table(res.Type)+" SET "+strings.Join(set, ", ")+fmt.Sprintf(" WHERE id = $%d", len(args)), args...); err != nil {
		return nil, false, fmt.Errorf("update %s/%s: %w", res.Type, id, translate(err))
	}
	return r.stored(res.Type), cur.deleted, nil
}

// archive copies the current version of id into the history table.
func archive(ctx context.Context, tx pgx.Tx, typ, id string) error {
	t := table(typ)
	_, err := tx.Exec(ctx, "INSERT INTO "+t+"_history (id, version_id, last_updated, deleted, patient_id, content) "+
		"SELECT id, version_id, last_updated, deleted, patient_id, content FROM "+t+" WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("archive %s/%s: %w", typ, id, translate(err))
	}
	return nil
}

// Delete marks id deleted (a new version without content). Deleting a
// resource that is already deleted changes nothing and is not an error;
// one that never existed is fhir.ErrNotFound.
func (s *Store) Delete(ctx context.Context, typ, id string, a Access) (st *Stored, err error) {
	if _, err := s.definition(typ); err != nil {
		return nil, err
	}
	err = s.inTx(ctx, "delete "+typ+"/"+id, func(tx pgx.Tx) error {
		st, err = s.deleteIn(ctx, tx, typ, id, now(), a)
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// deleteIn is Delete inside tx, stamping the deletion with at.
func (s *Store) deleteIn(ctx context.Context, tx pgx.Tx, typ, id string, at time.Time, a Access) (*Stored, error) {
	cur, err := lockCurrent(ctx, tx, typ, id)
	if err != nil {
		return nil, fmt.Errorf("delete %s/%s: %w", typ, id, err)
	}
	if ok, err := s.mayReach(ctx, tx, typ, a, cur.patientID); err != nil || !ok {
		return nil, fmt.Errorf("delete %s/%s: %w", typ, id, cmp.Or(err, fhir.ErrNotFound))
	}
	if cur.deleted {
		return &Stored{Type: typ, ID: id, VersionID: cur.version, Deleted: true, PatientID: patientOf(cur.patientID)}, nil
	}
	if typ == "Patient" {
		if err := s.checkCompartmentEmpty(ctx, tx, id); err != nil {
			return nil, err
		}
	}
	if err := archive(ctx, tx, typ, id); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "UPDATE "+table(typ)+" SET version_id = $1, last_updated = $2, deleted = true, content = NULL WHERE id = $3",
		cur.version+1, at, id); err != nil {
		return nil, fmt.Errorf("delete %s/%s: %w", typ, id, translate(err))
	}
	return &Stored{Type: typ, ID: id, VersionID: cur.version + 1, LastUpdated: at, Deleted: true, PatientID: patientOf(cur.patientID)}, nil
}

// CreateIfNoneExist is FHIR conditional create: when the search in
// condition (an If-None-Exist query) matches one resource it is returned
// with created false; none: res is created; more than one:
// fhir.ErrPreconditionFailed. An advisory lock on the condition makes two
// concurrent identical requests create one resource, not two.
func (s *Store) CreateIfNoneExist(ctx context.Context, res *fhir.Resource, condition url.Values, a Access) (st *Stored, created bool, err error) {
	def, err := s.definition(res.Type)
	if err != nil {
		return nil, false, err
	}
	err = s.inTx(ctx, "conditional create", func(tx pgx.Tx) error {
		st, created, err = s.createIfNoneExistIn(ctx, tx, def, res, condition, now(), a)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return st, created, nil
}

// createIfNoneExistIn is CreateIfNoneExist inside tx.
func (s *Store) createIfNoneExistIn(ctx context.Context, tx pgx.Tx, def *search.Definition, res *fhir.Resource, condition url.Values, at time.Time, a Access) (*Stored, bool, error) {
	matches, err := s.matchCondition(ctx, tx, res.Type, condition, a)
	if err != nil {
		return nil, false, err
	}
	switch len(matches) {
	case 0:
	case 1:
		return &matches[0], false, nil
	default:
		return nil, false, fmt.Errorf("conditional create: If-None-Exist matched more than one %s: %w", res.Type, fhir.ErrPreconditionFailed)
	}
	id, err := newID()
	if err != nil {
		return nil, false, err
	}
	r, err := s.createRow(ctx, tx, def, res, id, at, a)
	if err != nil {
		return nil, false, err
	}
	if err := insertRows(ctx, tx, def, []*row{r}); err != nil {
		return nil, false, err
	}
	return r.stored(res.Type), true, nil
}

// matchCondition runs the search of a conditional interaction (conditional
// create or update) inside tx and returns at most two matches: enough to
// tell none, one and several apart. It first takes a transaction-scoped
// advisory lock on the condition, so that two concurrent requests with the
// same condition run one after the other and the second sees what the
// first wrote.
func (s *Store) matchCondition(ctx context.Context, tx pgx.Tx, typ string, condition url.Values, a Access) ([]Stored, error) {
	q, err := s.params.Parse(typ, condition, true)
	if err != nil {
		return nil, err
	}
	if len(q.Filters) == 0 {
		return nil, &fhir.ValidationError{Issues: []fhir.Issue{{
			Severity: "error", Code: "invalid",
			Diagnostics: "the condition of a conditional create or update (If-None-Exist, PUT Type?search) needs at least one search parameter",
		}}}
	}
	q.Count, q.Cursor, q.Total = 2, "", "none"
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", typ+"?"+condition.Encode()); err != nil {
		return nil, fmt.Errorf("conditional %s: %w", typ, translate(err))
	}
	page, err := s.searchIn(ctx, tx, q, a)
	if err != nil {
		return nil, err
	}
	return page.Entries, nil
}

// checkCompartmentEmpty refuses to delete a Patient whose compartment still
// holds live resources: readings must not lose the person they are about.
func (s *Store) checkCompartmentEmpty(ctx context.Context, tx pgx.Tx, patientID string) error {
	for _, typ := range s.params.Types() {
		def := s.params.Definition(typ)
		// The audit trail names the patient for good; it never keeps the
		// record from being deleted (the deletion is audited too).
		if typ == "Patient" || typ == "AuditEvent" || !def.InPatientCompartment() {
			continue
		}
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+table(typ)+" WHERE patient_id = $1 AND NOT deleted LIMIT 1) x", patientID).Scan(&n)
		if err != nil {
			return fmt.Errorf("delete Patient/%s: %w", patientID, translate(err))
		}
		if n > 0 {
			return fmt.Errorf("delete Patient/%s: %s resources still refer to it; delete them first: %w", patientID, typ, ErrStillReferenced)
		}
	}
	return nil
}
