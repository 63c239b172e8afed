package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vidda/vidda/fhir/search"
)

// Page is one page of search results.
type Page struct {
	Entries []Stored
	// Included are the resources _include and _revinclude added.
	Included []Stored
	// Total is the number of matches, or -1 when not counted: counted with
	// _total=accurate, and by default only when the first page holds them
	// all (a count over a million readings costs more than the page).
	Total int64
	// NextCursor and PrevCursor continue to the neighbouring pages; "" when
	// there is none.
	NextCursor, PrevCursor string
}

// Search runs q, restricted to the caller's compartment. Results are in
// q.Sort order (newest update first by default), paged with a keyset cursor
// so pages stay correct while new resources arrive.
func (s *Store) Search(ctx context.Context, q *search.Query, a Access) (*Page, error) {
	if _, err := s.definition(q.Type); err != nil {
		return nil, err
	}
	page, err := s.searchIn(ctx, s.pool, q, a)
	if err != nil {
		return nil, err
	}
	if len(page.Entries) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		if page.Included, err = s.includes(ctx, q, page.Entries, a); err != nil {
			return nil, err
		}
	}
	return page, nil
}

func (s *Store) searchIn(ctx context.Context, db querier, q *search.Query, a Access) (*Page, error) {
	w := s.searchWhere(q, a)
	page := &Page{Total: -1}
	if q.Total == "accurate" || q.Count == 0 {
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+table(q.Type)+w.sql(), w.args...).Scan(&page.Total); err != nil {
			return nil, fmt.Errorf("search %s: count: %w", q.Type, translate(err))
		}
	}
	if q.Count == 0 {
		return page, nil
	}
	pq, err := pageSQL(q, w)
	if err != nil {
		return nil, err
	}
	order, back := pq.order, pq.back
	rows, err := db.Query(ctx, pq.sql, pq.args...)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, translate(err))
	}
	defer rows.Close()
	var keys [][]*string
	// One row's columns are scanned into st, pid and k, then copied out.
	var st Stored
	var pid pgtype.Text
	k := make([]*string, len(order.keys))
	dest := []any{&st.ID, &st.VersionID, &st.LastUpdated, &pid, &st.Content}
	for i := range k {
		dest = append(dest, &k[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("search %s: %w", q.Type, err)
		}
		st.Type, st.PatientID = q.Type, pid.String
		if page.Entries == nil {
			page.Entries = make([]Stored, 0, min(q.Count+1, 128))
			keys = make([][]*string, 0, min(q.Count+1, 128))
		}
		page.Entries = append(page.Entries, st)
		keys = append(keys, slices.Clone(k))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %s: %w", q.Type, translate(err))
	}
	more := len(page.Entries) > q.Count
	if !more && q.Cursor == "" && q.Total == "" {
		// A first page that holds every match counts them for free.
		page.Total = int64(len(page.Entries))
	}
	if more {
		page.Entries, keys = page.Entries[:q.Count], keys[:q.Count]
	}
	if back {
		slices.Reverse(page.Entries)
		slices.Reverse(keys)
	}
	if n := len(page.Entries); n > 0 {
		first := searchCursor{sort: order.signature, keys: keys[0], id: page.Entries[0].ID, back: true}
		last := searchCursor{sort: order.signature, keys: keys[n-1], id: page.Entries[n-1].ID}
		// Going forward, a previous page exists if we came from one; going
		// back, a next page always does (we came from it).
		if (!back && more) || back {
			page.NextCursor = last.encode()
		}
		if (back && more) || (!back && q.Cursor != "") {
			page.PrevCursor = first.encode()
		}
	}
	return page, nil
}

// searchWhere is the condition of q's matches that a may see.
func (s *Store) searchWhere(q *search.Query, a Access) *where {
	w := &where{onePatient: onePatient(q, a)}
	w.add("NOT deleted")
	if a.PatientID != "" {
		w.add("patient_id = " + w.arg(a.PatientID))
	}
	s.confineCare(w, q.Type, a)
	for _, f := range q.Filters {
		w.add(filterSQL(w, f, a))
	}
	return w
}

// pageQuery reads one page of a search.
type pageQuery struct {
	sql   string
	args  []any
	order order
	back  bool // walking back from the cursor: the rows come last first
}

// pageSQL is the query for q's page among w's matches: after q's cursor
// (whose condition it adds to w), in q's order, one row more than the page
// to tell whether another follows.
func pageSQL(q *search.Query, w *where) (pageQuery, error) {
	pq := pageQuery{order: sortOrder(q.Sort)}
	if q.Cursor != "" {
		c, err := decodeSearchCursor(q.Cursor, pq.order)
		if err != nil {
			return pq, err
		}
		pq.back = c.back
		w.add(pq.order.after(w, c, pq.back))
	}
	pq.sql = "SELECT id, version_id, last_updated, patient_id, content" + pq.order.selectKeys() + " FROM " + table(q.Type) + w.sql() +
		" ORDER BY " + pq.order.orderBy(pq.back) + " LIMIT " + w.arg(q.Count+1)
	pq.args = w.args
	return pq, nil
}

// onePatient reports whether q stays inside one patient's
// compartment (a patient's access, or one patient named) on a table with
// a btree index led by patient_id, so that walking that patient's rows is
// always at hand and bounded by one patient's rows.
func onePatient(q *search.Query, a Access) bool {
	if !patientIndexed(q.Type) {
		return false
	}
	if a.PatientID != "" {
		return true
	}
	for _, f := range q.Filters {
		if f.Param.Column != "patient_id" || f.Chain != nil || f.Modifier == "missing" {
			continue
		}
		n := 0
		for _, v := range f.Values {
			n += len(v.Refs)
		}
		if n == 1 {
			return true
		}
	}
	return false
}

// patientIndexed reports whether typ's table has a btree index led by
// patient_id (migrations 00001, 00005 and 00007; TestPatientIndexedTables
// checks the list against the schema).
func patientIndexed(typ string) bool {
	switch typ {
	case "Observation", "Device", "CareTeam", "AuditEvent", "Appointment", "Encounter", "Task", "Goal", "CarePlan":
		return true
	}
	return false
}

// where collects AND-ed conditions and their arguments.
type where struct {
	conds []string
	args  []any
	// onePatient: the conditions keep to one patient (see onePatient),
	// so list conditions stay off the GIN indexes (see overlap).
	onePatient bool
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

// overlap is "col && vals": the row has one of the keys. Within one
// patient it calls the operator's function, arrayoverlap, instead, which
// no GIN index takes: the planner then walks that patient's (patient_id,
// date_start DESC, id DESC) index in order and filters, a cost bounded by
// one patient's rows, rather than intersect the patient's rows with the
// key's GIN posting list, which grows with the table (a common code's
// holds a fifth of all Observations). A prepared statement's generic plan,
// which knows neither patient nor key, took that intersection at 100,000
// readings: 24 ms for a page the walk reads in 0.2 ms. The planner guesses
// a third of the rows pass a function it cannot estimate, so it expects a
// page to fill early and keeps to the walk whenever the patient has more
// than three pages of rows.
func overlap(w *where, col string, vals []string) string {
	if w.onePatient {
		return "arrayoverlap(" + col + ", " + w.arg(vals) + "::text[])"
	}
	return col + " && " + w.arg(vals) + "::text[]"
}

// filterSQL is the condition for one parameter; its values are OR-ed.
func filterSQL(w *where, f search.Filter, a Access) string {
	p := f.Param
	if f.Chain != nil {
		return chainSQL(w, f, a)
	}
	if f.Modifier == "missing" {
		ors := make([]string, len(f.Values))
		for i, v := range f.Values {
			ors[i] = missingSQL(p, v.Missing)
		}
		return "(" + strings.Join(ors, " OR ") + ")"
	}
	switch p.Kind {
	case search.Date:
		start, end := p.Column+"_start", p.Column+"_end"
		if p.Column == "last_updated" {
			start, end = "last_updated", "(last_updated + interval '1 microsecond')"
		}
		return orEach(f.Values, func(v search.Value) string { return dateSQL(w, start, end, v) })
	case search.Number, search.Quantity:
		return orEach(f.Values, func(v search.Value) string { return numberSQL(w, p, v) })
	case search.String:
		return stringSQL(w, p, f)
	case search.URI:
		return uriSQL(w, p, f)
	case search.Reference:
		var refs []string
		for _, v := range f.Values {
			refs = append(refs, v.Refs...)
		}
		if p.Column == "patient_id" {
			// One patient (the usual case) as an equality, which lets the
			// planner walk the (patient_id, date_start DESC, id DESC)
			// index in order and stop at the page's end.
			if len(refs) == 1 {
				return "patient_id = " + w.arg(refs[0])
			}
			return "patient_id = ANY(" + w.arg(refs) + "::text[])"
		}
		return overlap(w, p.Column, refs)
	case search.Token:
	}
	vals := make([]string, len(f.Values))
	for i, v := range f.Values {
		vals[i] = v.Token
	}
	if p.Column == "id" {
		if f.Modifier == "not" {
			return "id <> ALL(" + w.arg(vals) + "::text[])"
		}
		return "id = ANY(" + w.arg(vals) + "::text[])"
	}
	if f.Modifier == "not" {
		return "NOT (" + p.Column + " && " + w.arg(vals) + "::text[])"
	}
	return overlap(w, p.Column, vals)
}

func orEach(vals []search.Value, cond func(search.Value) string) string {
	ors := make([]string, len(vals))
	for i, v := range vals {
		ors[i] = cond(v)
	}
	if len(ors) == 1 {
		return ors[0]
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// missingSQL implements :missing (R4 search §3.1.1.5.5.1).
func missingSQL(p *search.Param, missing bool) string {
	var isMissing string
	switch {
	case p.Column == "id" || p.Column == "last_updated":
		isMissing = "false"
	case p.Column == "patient_id":
		isMissing = "patient_id IS NULL"
	case p.Kind == search.Date:
		isMissing = p.Column + "_start IS NULL"
	case p.Kind == search.Number || p.Kind == search.Quantity:
		isMissing = p.Column + " IS NULL"
	default:
		isMissing = "cardinality(" + p.Column + ") = 0"
	}
	if missing {
		return isMissing
	}
	return "NOT (" + isMissing + ")"
}

// chainSQL: the reference must point at a resource that meets the chained
// condition (R4 search §3.1.1.4.13). A patient's token only ever matches
// resources in its own compartment, on both sides of the chain.
func chainSQL(w *where, f search.Filter, a Access) string {
	inner := &where{args: w.args, onePatient: a.PatientID != "" && f.Chain.Compartment && patientIndexed(f.Chain.Type)}
	inner.add("NOT deleted")
	switch {
	case a.PatientID == "" || !f.Chain.Compartment:
	case f.Chain.Type == "Patient":
		inner.add("id = " + inner.arg(a.PatientID))
	default:
		inner.add("patient_id = " + inner.arg(a.PatientID))
	}
	inner.add(filterSQL(inner, f.Chain.Filter, a))
	w.args = inner.args
	t := table(f.Chain.Type)
	if f.Param.Column == "patient_id" {
		return "patient_id IN (SELECT id FROM " + t + inner.sql() + ")"
	}
	return f.Param.Column + " && ARRAY(SELECT '" + f.Chain.Type + "/' || id FROM " + t + inner.sql() + ")"
}

// stringSQL: starts-with by default, :contains anywhere, both on the
// normalized values; :exact on the values as written (R4 search §3.1.1.4.7).
func stringSQL(w *where, p *search.Param, f search.Filter) string {
	vals := make([]string, len(f.Values))
	for i, v := range f.Values {
		vals[i] = v.String
	}
	if f.Modifier == "exact" {
		return overlap(w, p.Column+"_exact", vals)
	}
	for i, v := range vals {
		vals[i] = likeEscape(v) + "%"
		if f.Modifier == "contains" {
			vals[i] = "%" + vals[i]
		}
	}
	return "EXISTS (SELECT 1 FROM unnest(" + p.Column + ") v WHERE v LIKE ANY(" + w.arg(vals) + "::text[]))"
}

// uriSQL: exact by default; :below matches URIs under the value, :above
// URIs the value is under (R4 search §3.1.1.4.11).
func uriSQL(w *where, p *search.Param, f search.Filter) string {
	vals := make([]string, len(f.Values))
	for i, v := range f.Values {
		vals[i] = v.String
	}
	switch f.Modifier {
	case "below":
		for i, v := range vals {
			vals[i] = likeEscape(v) + "%"
		}
		return "EXISTS (SELECT 1 FROM unnest(" + p.Column + ") u WHERE u LIKE ANY(" + w.arg(vals) + "::text[]))"
	case "above":
		return "EXISTS (SELECT 1 FROM unnest(" + p.Column + ") u, unnest(" + w.arg(vals) + "::text[]) v WHERE v LIKE replace(replace(replace(u, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')"
	}
	return overlap(w, p.Column, vals)
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
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
		// R4 search §3.1.1.4.2: "ap" is within 10 % of the gap between the
		// value and now, and at least the value's own precision.
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

// numberSQL compares a number or quantity column with a search value (R4
// search §3.1.1.4.1): eq and ne use the value's implicit range, the other
// prefixes the value itself; a quantity's unit must match when given.
func numberSQL(w *where, p *search.Param, v search.Value) string {
	c, n := p.Column, v.Number
	num := func(s string) string { return w.arg(s) + "::numeric" }
	var cond string
	switch v.Prefix {
	case "ne":
		cond = fmt.Sprintf("NOT (%s >= %s AND %s < %s)", c, num(n.Lo), c, num(n.Hi))
	case "gt", "sa":
		cond = fmt.Sprintf("%s > %s", c, num(n.Value))
	case "lt", "eb":
		cond = fmt.Sprintf("%s < %s", c, num(n.Value))
	case "ge":
		cond = fmt.Sprintf("%s >= %s", c, num(n.Value))
	case "le":
		cond = fmt.Sprintf("%s <= %s", c, num(n.Value))
	case "ap":
		lo, hi := n.Approx()
		cond = fmt.Sprintf("%s BETWEEN %s AND %s", c, num(lo), num(hi))
	default:
		cond = fmt.Sprintf("(%s >= %s AND %s < %s)", c, num(n.Lo), c, num(n.Hi))
	}
	if v.Token != "" {
		cond = "(" + cond + " AND " + c + "_unit && " + w.arg([]string{v.Token}) + "::text[])"
	}
	return cond
}
