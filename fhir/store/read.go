package store

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vidda/vidda/fhir"
)

// querier is what reads need from a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Read returns the current version of id. A deleted resource is
// fhir.ErrDeleted; one outside the caller's compartment is fhir.ErrNotFound,
// exactly as if it did not exist.
func (s *Store) Read(ctx context.Context, typ, id string, a Access) (*Stored, error) {
	if _, err := s.definition(typ); err != nil {
		return nil, err
	}
	return s.readIn(ctx, s.pool, typ, id, a)
}

// readIn is Read on db: the pool, or the transaction of a Bundle.
func (s *Store) readIn(ctx context.Context, db querier, typ, id string, a Access) (*Stored, error) {
	st := &Stored{Type: typ, ID: id}
	var patientID *string
	err := db.QueryRow(ctx, "SELECT version_id, last_updated, deleted, patient_id, content FROM "+table(typ)+" WHERE id = $1", id).
		Scan(&st.VersionID, &st.LastUpdated, &st.Deleted, &patientID, &st.Content)
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", typ, id, translate(err))
	}
	if ok, err := s.mayReach(ctx, db, typ, a, patientID); err != nil || !ok {
		return nil, fmt.Errorf("read %s/%s: %w", typ, id, cmp.Or(err, fhir.ErrNotFound))
	}
	st.PatientID = patientOf(patientID)
	if st.Deleted {
		return st, fmt.Errorf("read %s/%s: %w", typ, id, fhir.ErrDeleted)
	}
	return st, nil
}

// VRead returns version vid of id, current or from history.
func (s *Store) VRead(ctx context.Context, typ, id string, vid int64, a Access) (*Stored, error) {
	if _, err := s.definition(typ); err != nil {
		return nil, err
	}
	t := table(typ)
	st := &Stored{Type: typ, ID: id, VersionID: vid}
	var patientID *string
	err := s.pool.QueryRow(ctx, "SELECT last_updated, deleted, patient_id, content FROM "+t+" WHERE id = $1 AND version_id = $2 "+
		"UNION ALL SELECT last_updated, deleted, patient_id, content FROM "+t+"_history WHERE id = $1 AND version_id = $2", id, vid).
		Scan(&st.LastUpdated, &st.Deleted, &patientID, &st.Content)
	if err != nil {
		return nil, fmt.Errorf("vread %s/%s/_history/%d: %w", typ, id, vid, translate(err))
	}
	if ok, err := s.mayReach(ctx, s.pool, typ, a, patientID); err != nil || !ok {
		return nil, fmt.Errorf("vread %s/%s: %w", typ, id, cmp.Or(err, fhir.ErrNotFound))
	}
	st.PatientID = patientOf(patientID)
	if st.Deleted {
		return st, fmt.Errorf("vread %s/%s/_history/%d: %w", typ, id, vid, fhir.ErrDeleted)
	}
	return st, nil
}

// HistoryOptions select a page of history.
type HistoryOptions struct {
	// Count is the page size.
	Count int
	// Since keeps versions changed at or after it (_since).
	Since time.Time
	// Cursor continues from a previous page.
	Cursor string
}

// HistoryPage is one page of versions, newest first.
type HistoryPage struct {
	Entries    []Stored
	NextCursor string
}

// History returns the versions of one resource (id set) or of every
// resource of the type (id ""), newest first.
func (s *Store) History(ctx context.Context, typ, id string, opts HistoryOptions, a Access) (*HistoryPage, error) {
	if _, err := s.definition(typ); err != nil {
		return nil, err
	}
	if opts.Count <= 0 {
		opts.Count = 50
	}
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if id != "" {
		where = append(where, "id = "+arg(id))
	}
	if a.PatientID != "" {
		where = append(where, "patient_id = "+arg(a.PatientID))
	}
	if a.CareOf != "" && s.inPatientCompartment(typ) {
		where = append(where, "patient_id IN (SELECT patient_id FROM care_access WHERE practitioner = "+arg(a.CareOf)+")")
	}
	if !opts.Since.IsZero() {
		where = append(where, "last_updated >= "+arg(opts.Since))
	}
	if opts.Cursor != "" {
		c, err := decodeCursor(opts.Cursor)
		if err != nil {
			return nil, err
		}
		where = append(where, fmt.Sprintf("(last_updated, id, version_id) < (%s, %s, %s)", arg(c.at), arg(c.id), arg(c.version)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	t := table(typ)
	sql := "SELECT id, version_id, last_updated, deleted, patient_id, content FROM (" +
		"SELECT id, version_id, last_updated, deleted, patient_id, content FROM " + t +
		" UNION ALL SELECT id, version_id, last_updated, deleted, patient_id, content FROM " + t + "_history) v" + cond +
		" ORDER BY last_updated DESC, id DESC, version_id DESC LIMIT " + arg(opts.Count+1)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", typ, translate(err))
	}
	page := &HistoryPage{}
	for rows.Next() {
		st := Stored{Type: typ}
		var pid pgtype.Text
		if err := rows.Scan(&st.ID, &st.VersionID, &st.LastUpdated, &st.Deleted, &pid, &st.Content); err != nil {
			return nil, fmt.Errorf("history %s: %w", typ, err)
		}
		st.PatientID = pid.String
		page.Entries = append(page.Entries, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history %s: %w", typ, translate(err))
	}
	if id != "" && len(page.Entries) == 0 && opts.Cursor == "" && opts.Since.IsZero() {
		return nil, fmt.Errorf("history %s/%s: %w", typ, id, fhir.ErrNotFound)
	}
	if len(page.Entries) > opts.Count {
		page.Entries = page.Entries[:opts.Count]
		last := page.Entries[len(page.Entries)-1]
		page.NextCursor = cursor{at: last.LastUpdated, id: last.ID, version: last.VersionID}.encode()
	}
	return page, nil
}

// cursor is a keyset position: the last row of the previous page.
type cursor struct {
	at      time.Time
	id      string
	version int64
}

// ErrBadCursor is returned for a cursor the server did not make.
var ErrBadCursor = errors.New("invalid paging cursor")

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at.UnixMicro(), 10) + "." + strconv.FormatInt(c.version, 10) + "." + c.id))
}

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, invalidCursor()
	}
	parts := strings.SplitN(string(b), ".", 3)
	if len(parts) != 3 {
		return cursor{}, invalidCursor()
	}
	us, err1 := strconv.ParseInt(parts[0], 10, 64)
	v, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || !fhir.ValidID(parts[2]) {
		return cursor{}, invalidCursor()
	}
	return cursor{at: time.UnixMicro(us).UTC(), id: parts[2], version: v}, nil
}

func invalidCursor() error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: "error", Code: "invalid",
		Diagnostics: ErrBadCursor.Error(), Expression: []string{"_cursor"},
	}}}
}
