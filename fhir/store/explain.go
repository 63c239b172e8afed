package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir/search"
)

// Plans are PostgreSQL's plans for one query. pgx prepares every query it
// runs and PostgreSQL plans a prepared statement for its arguments five
// times, then settles on one generic plan, made without them, if that
// looks no dearer; so both plans serve traffic, and a search must be fast
// with either.
type Plans struct {
	// Generic is the plan made without the arguments.
	Generic string
	// Custom is the plan made for these arguments.
	Custom string
}

// ExplainSearch returns the plans of the query that reads the page Search
// returns for q (EXPLAIN; with analyze, EXPLAIN (ANALYZE, BUFFERS), which
// runs it). It is for benchmarks and tests that check the plans.
func (s *Store) ExplainSearch(ctx context.Context, q *search.Query, a Access, analyze bool) (Plans, error) {
	if _, err := s.definition(q.Type); err != nil {
		return Plans{}, err
	}
	if q.Count == 0 {
		return Plans{}, errors.New("explain search: _summary=count reads no page")
	}
	pq, err := pageSQL(q, s.searchWhere(q, a))
	if err != nil {
		return Plans{}, err
	}
	return s.explain(ctx, pq.sql, pq.args, analyze)
}

// explainStatement is the prepared statement explain makes and removes.
const explainStatement = "vidda_explain"

// explain prepares sql on one connection and explains its execution with
// args under plan_cache_mode force_generic_plan and force_custom_plan.
func (s *Store) explain(ctx context.Context, sql string, args []any, analyze bool) (plans Plans, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return Plans{}, fmt.Errorf("explain: %w", translate(err))
	}
	defer conn.Release()
	// PREPARE and DEALLOCATE are not transactional: the statement is
	// removed whatever happens, or the connection is not given back.
	if _, err := conn.Exec(ctx, "PREPARE "+explainStatement+" AS "+sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return Plans{}, fmt.Errorf("explain: prepare: %w", translate(err))
	}
	defer func() {
		cctx := context.WithoutCancel(ctx)
		if _, derr := conn.Exec(cctx, "DEALLOCATE "+explainStatement, pgx.QueryExecModeSimpleProtocol); derr != nil {
			_ = conn.Conn().Close(cctx)
			err = errors.Join(err, fmt.Errorf("explain: deallocate: %w", derr))
		}
	}()
	params := make([]string, len(args))
	for i := range args {
		params[i] = "$" + strconv.Itoa(i+1)
	}
	options := ""
	if analyze {
		options = "(ANALYZE, BUFFERS) "
	}
	stmt := "EXPLAIN " + options + "EXECUTE " + explainStatement + "(" + strings.Join(params, ", ") + ")"
	for _, p := range []struct {
		mode string
		dst  *string
	}{{"force_generic_plan", &plans.Generic}, {"force_custom_plan", &plans.Custom}} {
		if *p.dst, err = explainAs(ctx, conn.Conn(), p.mode, stmt, args); err != nil {
			return Plans{}, err
		}
	}
	return plans, nil
}

// explainAs runs stmt, an EXPLAIN, in a transaction with plan_cache_mode
// set to mode, and returns its lines.
func explainAs(ctx context.Context, conn *pgx.Conn, mode, stmt string, args []any) (string, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("explain: %w", translate(err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode, pgx.QueryExecModeSimpleProtocol); err != nil {
		return "", fmt.Errorf("explain: %w", translate(err))
	}
	// The simple protocol writes the arguments into the statement as
	// literals, which EXECUTE takes as the prepared statement's parameters.
	rows, err := tx.Query(ctx, stmt, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		return "", fmt.Errorf("explain: %w", translate(err))
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("explain: %w", translate(err))
	}
	return strings.Join(lines, "\n"), nil
}
