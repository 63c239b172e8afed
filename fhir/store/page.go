package store

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// order is a search's sort (R4 search §3.1.1.5.6) as SQL: the sort keys,
// then id as the tiebreaker that makes every position unique, which keyset
// paging needs.
type order struct {
	keys      []sortKey
	signature string // what a cursor must have been made for
}

type sortKey struct {
	expr    string // SQL expression
	sqlType string // its type, to cast a cursor's text back
	desc    bool
	notNull bool
}

// sortOrder translates _sort. Without one, results come newest update
// first. Nulls sort as the greatest values (PostgreSQL's default), so an
// ascending sort ends with the resources that lack the value.
func sortOrder(keys []search.SortKey) order {
	if len(keys) == 0 {
		return order{keys: []sortKey{{expr: "last_updated", sqlType: "timestamptz", desc: true, notNull: true}}, signature: "-_lastUpdated"}
	}
	var o order
	var sig []string
	for _, k := range keys {
		sk := sortKey{desc: k.Desc}
		p := k.Param
		switch {
		case p.Column == "id":
			sk.expr, sk.sqlType, sk.notNull = "id", "text", true
		case p.Column == "last_updated":
			sk.expr, sk.sqlType, sk.notNull = "last_updated", "timestamptz", true
		case p.Column == "patient_id":
			sk.expr, sk.sqlType = "patient_id", "text"
		case p.Kind == search.Date:
			// The start, ascending and descending alike, so that one
			// index serves both directions.
			sk.expr, sk.sqlType = p.Column+"_start", "timestamptz"
		case p.Kind == search.Number || p.Kind == search.Quantity:
			sk.expr, sk.sqlType = p.Column, "numeric"
		case len(p.Order) > 0:
			sk.expr, sk.sqlType, sk.notNull = orderedCode(p), "integer", true
		default:
			// A list's first element: a token's first coding, a string's
			// first value, normalized.
			sk.expr, sk.sqlType = "("+p.Column+")[1]", "text"
		}
		o.keys = append(o.keys, sk)
		name := p.Name
		if k.Desc {
			name = "-" + name
		}
		sig = append(sig, name)
	}
	o.signature = strings.Join(sig, ",")
	return o
}

// idDesc: id follows the direction of the last key, so that an index on
// (..., key DESC, id DESC) serves the whole ORDER BY.
func (o order) idDesc() bool { return o.keys[len(o.keys)-1].desc }

func (o order) selectKeys() string {
	var b strings.Builder
	for i, k := range o.keys {
		b.WriteString(", (" + k.expr + ")::text AS sort_key_" + strconv.Itoa(i))
	}
	return b.String()
}

// orderBy is the ORDER BY clause, reversed to walk back to a previous page.
func (o order) orderBy(back bool) string {
	parts := make([]string, 0, len(o.keys)+1)
	dir := func(desc bool) string {
		if desc != back {
			return " DESC"
		}
		return " ASC"
	}
	for _, k := range o.keys {
		parts = append(parts, k.expr+dir(k.desc))
	}
	return strings.Join(append(parts, "id"+dir(o.idDesc())), ", ")
}

// after is the condition for the rows that follow cursor c in this order
// (or precede it, walking back): a keyset, so pages stay put while rows
// are inserted before them.
func (o order) after(w *where, c searchCursor, back bool) string {
	type key struct {
		sortKey
		val *string
	}
	keys := make([]key, 0, len(o.keys)+1)
	for i, k := range o.keys {
		keys = append(keys, key{k, c.keys[i]})
	}
	id := c.id
	keys = append(keys, key{sortKey{expr: "id", sqlType: "text", desc: o.idDesc(), notNull: true}, &id})
	// One key and id in the same direction, both set: a row comparison,
	// which PostgreSQL turns into an index range.
	if len(keys) == 2 && keys[0].val != nil && keys[0].desc == keys[1].desc {
		op := ">"
		if keys[0].desc != back {
			op = "<"
		}
		cond := "(" + keys[0].expr + ", id) " + op + " (" + w.arg(*keys[0].val) + "::" + keys[0].sqlType + ", " + w.arg(id) + ")"
		// Nulls are greatest: they follow every value ascending.
		if op == ">" && !keys[0].notNull {
			cond = "(" + cond + " OR " + keys[0].expr + " IS NULL)"
		}
		return cond
	}
	var ors []string
	var eqs []string
	for _, k := range keys {
		desc := k.desc != back
		v := ""
		if k.val != nil {
			v = w.arg(*k.val) + "::" + k.sqlType
		}
		var gt string
		switch {
		case k.val == nil && desc:
			gt = k.expr + " IS NOT NULL"
		case k.val == nil:
			gt = "false"
		case desc:
			gt = k.expr + " < " + v
		case k.notNull:
			gt = k.expr + " > " + v
		default:
			gt = "(" + k.expr + " > " + v + " OR " + k.expr + " IS NULL)"
		}
		ors = append(ors, "("+strings.Join(append(clone(eqs), gt), " AND ")+")")
		if k.val == nil {
			eqs = append(eqs, k.expr+" IS NULL")
		} else {
			eqs = append(eqs, k.expr+" = "+v)
		}
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

func clone(s []string) []string { return append([]string(nil), s...) }

// searchCursor is a keyset position: the sort keys and id of the last row
// of a page (or the first, to go back).
type searchCursor struct {
	sort string
	keys []*string
	id   string
	back bool
}

type cursorJSON struct {
	S string    `json:"s"`
	K []*string `json:"k"`
	I string    `json:"i"`
	B bool      `json:"b,omitempty"`
}

func (c searchCursor) encode() string {
	b, _ := json.Marshal(cursorJSON{S: c.sort, K: c.keys, I: c.id, B: c.back})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeSearchCursor reads a cursor, which must have been made for the
// same sort.
func decodeSearchCursor(s string, o order) (searchCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return searchCursor{}, invalidCursor()
	}
	var c cursorJSON
	if json.Unmarshal(b, &c) != nil || c.S != o.signature || len(c.K) != len(o.keys) || !fhir.ValidID(c.I) {
		return searchCursor{}, invalidCursor()
	}
	for i, k := range o.keys {
		if k.notNull && c.K[i] == nil {
			return searchCursor{}, invalidCursor()
		}
	}
	return searchCursor{sort: c.S, keys: c.K, id: c.I, back: c.B}, nil
}

// orderedCode is the position of a token column's first code in p.Order
// (1 = lowest), 0 for a missing or unlisted code: such a Task sorts below
// routine, last in a worklist sorted -priority. The codes are constants
// of the registry, never input.
func orderedCode(p *search.Param) string {
	quoted := make([]string, len(p.Order))
	for i, code := range p.Order {
		quoted[i] = "'" + strings.ReplaceAll(p.System+"|"+code, "'", "''") + "'"
	}
	return "coalesce(array_position(ARRAY[" + strings.Join(quoted, ",") + "], (" + p.Column + ")[1]), 0)"
}
