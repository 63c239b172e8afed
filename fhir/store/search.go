package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vidda/vidda/fhir/search"
)

// Page is one page of search results.
type Page struct {
	Entries []Stored
	// Total is the number of matches, or -1 when not counted (_total=none).
	Total int64
	// NextCursor continues to the next page; "" on the last page.
	NextCursor string
}

// Search runs q, restricted to the caller's compartment. Results are newest
// first by last update, paged with a keyset cursor so pages stay correct
// while new resources arrive.
func (s *Store) Search(ctx context.Context, q *search.Query, a Access) (*Page, error) {
	if _, err := s.definition(q.Type); err != nil {
		return nil, err
	}
	return searchIn(ctx, s.pool, q, a)
}

func searchIn(ctx context.Context, db querier, q *search.Query, a Access) (*Page, error) {
	w := &where{}
	w.add("NOT deleted")
	if a.PatientID != "" {
		w.add("patient_id = " + w.arg(a.PatientID))
	}
	for _, f := range q.Filters {
		w.add(filterSQL(w, f))
	}
	t := table(q.Type)
	page := &Page{Total: -1}
	if q.Total || q.Count == 0 {
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+t+w.sql(), w.args...).Scan(&page.Total); err != nil {
			return nil, fmt.Errorf("search %s: count: %w", q.Type, translate(err))
		}
	}
	if q.Count == 0 {
		return page, nil
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		w.add(fmt.Sprintf("(last_updated, id) < (%s, %s)", w.arg(c.at), w.arg(c.id)))
	}
	sql := "SELECT id, version_id, last_updated, content FROM " + t + w.sql() +
		" ORDER BY last_updated DESC, id DESC LIMIT " + w.arg(q.Count+1)
	rows, err := db.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, translate(err))
	}
	defer rows.Close()
	for rows.Next() {
		st := Stored{Type: q.Type}
		if err := rows.Scan(&st.ID, &st.VersionID, &st.LastUpdated, &st.Content); err != nil {
			return nil, fmt.Errorf("search %s: %w", q.Type, err)
		}
		page.Entries = append(page.Entries, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, translate(err))
	}
	if len(page.Entries) > q.Count {
		page.Entries = page.Entries[:q.Count]
		last := page.Entries[len(page.Entries)-1]
		page.NextCursor = cursor{at: last.LastUpdated, id: last.ID}.encode()
	}
	return page, nil
}

// where collects AND-ed conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// filterSQL is the condition for one parameter; its values are OR-ed.
func filterSQL(w *where, f search.Filter) string {
	p := f.Param
	switch p.Kind {
	case search.Date:
		start, end := p.Column+"_start", p.Column+"_end"
		if p.Column == "last_updated" {
			start, end = "last_updated", "(last_updated + interval '1 millisecond')"
		}
		ors := make([]string, len(f.Values))
		for i, v := range f.Values {
			ors[i] = dateSQL(w, start, end, v)
		}
		return "(" + strings.Join(ors, " OR ") + ")"
	case search.Reference:
		vals := make([]string, len(f.Values))
		for i, v := range f.Values {
			vals[i] = v.Ref
		}
		if p.Column == "patient_id" {
			return "patient_id = ANY(" + w.arg(vals) + ")"
		}
		return p.Column + " && " + w.arg(vals) + "::text[]"
	case search.Token:
		vals := make([]string, len(f.Values))
		for i, v := range f.Values {
			vals[i] = v.Token
		}
		if p.Column == "id" {
			return "id = ANY(" + w.arg(vals) + ")"
		}
		return p.Column + " && " + w.arg(vals) + "::text[]"
	}
	return "false"
}

// dateSQL compares the resource's range [start, end) with the search
// value's implicit range [lo, hi), as R4 search §3.1.1.4.2 defines each
// prefix.
func dateSQL(w *where, start, end string, v search.Value) string {
	lo, hi := v.Range.Start, v.Range.End
	switch v.Prefix {
	case "ne":
		return fmt.Sprintf("NOT (%s >= %s AND %s <= %s)", start, w.arg(lo), end, w.arg(hi))
	case "gt":
		return fmt.Sprintf("%s > %s", end, w.arg(hi))
	case "lt":
		return fmt.Sprintf("%s < %s", start, w.arg(lo))
	case "ge":
		return fmt.Sprintf("%s > %s", end, w.arg(lo))
	case "le":
		return fmt.Sprintf("%s < %s", start, w.arg(hi))
	case "sa":
		return fmt.Sprintf("%s >= %s", start, w.arg(hi))
	case "eb":
		return fmt.Sprintf("%s <= %s", end, w.arg(lo))
	case "ap":
		// "ap": within 10 % of the gap between the value and now, at least
		// the value's own precision.
		gap := time.Since(lo)
		if gap < 0 {
			gap = -gap
		}
		d := gap / 10
		return fmt.Sprintf("(%s < %s AND %s > %s)", start, w.arg(hi.Add(d)), end, w.arg(lo.Add(-d)))
	default: // eq
		return fmt.Sprintf("(%s >= %s AND %s <= %s)", start, w.arg(lo), end, w.arg(hi))
	}
}
