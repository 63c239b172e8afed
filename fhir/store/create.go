package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// createReq is one create waiting for a group commit.
type createReq struct {
	def  *search.Definition
	row  *row
	done chan error
}

// Create stores res as a new resource with a server-assigned id. It returns
// only after the row is committed: concurrent creates share one commit
// (group commit), so each still is durable before its caller answers 201.
func (s *Store) Create(ctx context.Context, res *fhir.Resource, a Access) (*Stored, error) {
	def, err := s.definition(res.Type)
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	r, err := s.createRow(ctx, s.pool, def, res, id, now(), a)
	if err != nil {
		return nil, err
	}
	req := &createReq{def: def, row: r, done: make(chan error, 1)}
	select {
	case s.creates <- req:
	case <-s.done:
		return nil, fmt.Errorf("create %s: %w", res.Type, ErrStopped)
	case <-ctx.Done():
		return nil, fmt.Errorf("create %s: %w", res.Type, ctx.Err())
	}
	// Wait for the commit even if ctx ends: the row may be committing, and
	// the caller must not be told it failed when it did not.
	select {
	case err = <-req.done:
	case <-s.done:
		select {
		case err = <-req.done:
		default:
			err = ErrStopped
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", res.Type, err)
	}
	return r.stored(res.Type), nil
}

// createRow prepares res as version 1 of id, refusing it when it would
// land outside the caller's compartment. Every create goes through it: the
// group commit above, update as create, conditional create and the creates
// of a transaction.
func (s *Store) createRow(ctx context.Context, db querier, def *search.Definition, res *fhir.Resource, id string, at time.Time, a Access) (*row, error) {
	r, err := s.newRow(def, res, id, 1, at)
	if err != nil {
		return nil, err
	}
	if err := s.mayWrite(ctx, db, res.Type, r, a); err != nil {
		return nil, fmt.Errorf("create %s: %w", res.Type, err)
	}
	return r, nil
}

// Run runs the group-commit writers until ctx ends, then commits what is
// already queued and returns. Start it before serving requests; stop it
// after the HTTP server has drained.
func (s *Store) Run(ctx context.Context) error {
	//nolint:contextcheck // the final drain must run after ctx has ended.
	var wg sync.WaitGroup
	for range s.cfg.Writers {
		wg.Go(func() { s.writer(ctx) })
	}
	wg.Wait()
	// Answer whatever was queued while the writers stopped.
	for {
		select {
		case r := <-s.creates:
			s.flush(ctx, []*createReq{r})
		default:
			close(s.done)
			return nil
		}
	}
}

func (s *Store) writer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-s.creates:
			batch := []*createReq{first}
		fill:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case r := <-s.creates:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			s.flush(ctx, batch)
		}
	}
}

// flush commits a batch in one transaction. If that fails, each create is
// retried on its own so one bad row cannot fail its neighbours.
func (s *Store) flush(ctx context.Context, batch []*createReq) {
	// Not cancelled with the server: a batch that started commits even
	// while shutting down, bounded by its own deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := s.insertBatch(ctx, batch)
	if err != nil && len(batch) > 1 {
		s.log.WarnContext(ctx, "group commit failed, retrying one by one", "rows", len(batch), "err", err)
		for _, r := range batch {
			r.done <- s.insertBatch(ctx, []*createReq{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- err
	}
}

func (s *Store) insertBatch(ctx context.Context, batch []*createReq) error {
	byType := map[*search.Definition][]*row{}
	var order []*search.Definition
	for _, r := range batch {
		if _, ok := byType[r.def]; !ok {
			order = append(order, r.def)
		}
		byType[r.def] = append(byType[r.def], r.row)
	}
	if len(order) == 1 {
		// One statement is its own transaction: one round trip, one commit.
		return insertRows(ctx, s.pool, order[0], byType[order[0]])
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, def := range order {
		if err := insertRows(ctx, tx, def, byType[def]); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return translate(err)
	}
	return nil
}

// insertRows inserts rows into def's table in one statement.
func insertRows(ctx context.Context, tx querier, def *search.Definition, rows []*row) error {
	cols := append([]string{"id", "version_id", "last_updated", "patient_id", "content"}, indexColumns(def)...)
	var sql strings.Builder
	sql.WriteString("INSERT INTO " + table(def.Type) + " (" + strings.Join(cols, ", ") + ") VALUES ")
	args := make([]any, 0, len(rows)*len(cols))
	for i, r := range rows {
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteByte('(')
		for j := range cols {
			if j > 0 {
				sql.WriteString(", ")
			}
			sql.WriteString("$" + strconv.Itoa(len(args)+j+1))
		}
		sql.WriteByte(')')
		args = append(args, r.id, r.version, r.lastUpdated, r.patientID, r.content)
		args = append(args, r.index...)
	}
	tag, err := tx.Exec(ctx, sql.String(), args...)
	if err != nil {
		return fmt.Errorf("insert %s: %w", def.Type, translate(err))
	}
	if int(tag.RowsAffected()) != len(rows) {
		return fmt.Errorf("insert %s: %w", def.Type, fhir.ErrVersionConflict)
	}
	return nil
}

func (r *row) stored(typ string) *Stored {
	return &Stored{Type: typ, ID: r.id, VersionID: r.version, LastUpdated: r.lastUpdated, Content: r.content, PatientID: patientOf(r.patientID)}
}

// translate maps pgx errors to the store's meaning. Only this package sees
// pgx errors.
func translate(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fhir.ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%w: %s", fhir.ErrVersionConflict, pgErr.ConstraintName)
	case errors.As(err, &pgErr) && pgErr.Code == "40001": // serialization_failure
		return fmt.Errorf("%w: concurrent update", fhir.ErrVersionConflict)
	}
	return err
}
