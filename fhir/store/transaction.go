package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// FHIR transactions and batches (R4 http §3.1.0.11). The HTTP edge
// decodes a Bundle into Entries and authorizes each exactly as it would
// the interaction on its own; Transaction runs them all in one PostgreSQL
// transaction, Batch runs each on its own. Both write through the same
// ...In functions as the single-resource methods (update.go, create.go).

// Op is the interaction a Bundle entry asks for.
type Op uint8

// The interactions of a Bundle entry.
const (
	OpRead   Op = iota + 1 // GET Type/id
	OpSearch               // GET Type?query
	OpCreate               // POST Type, with ifNoneExist a conditional create
	OpUpdate               // PUT Type/id, or PUT Type?query (conditional update)
	OpDelete               // DELETE Type/id
)

// String names the interaction as FHIR does.
func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpSearch:
		return "search"
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Entry is one request of a Bundle.
type Entry struct {
	// Index is the entry's position in the Bundle, from 0.
	Index int
	// Method and URL are request.method and request.url as sent.
	Method, URL string
	Op          Op
	Type        string
	// ID is the target of read, update and delete; "" for a conditional
	// update.
	ID string
	// FullURL is the entry's fullUrl; a urn:uuid: or urn:oid: one names
	// the resource for references elsewhere in the Bundle.
	FullURL string
	// Resource is the body of a create or update.
	Resource *fhir.Resource
	// Condition is the search of a conditional create (ifNoneExist) or
	// conditional update (PUT Type?query).
	Condition url.Values
	// Query is the search of OpSearch.
	Query *search.Query
	// IfMatch is the version request.ifMatch names; 0 when absent.
	IfMatch int64
	// Access restricts the entry; the caller sets it after authorizing the
	// entry exactly as it would the interaction on its own.
	Access Access
	// Err, when set, is why this entry cannot be processed (an invalid
	// resource, an unsupported type, a refused authorization): it fails a
	// transaction and answers this entry of a batch.
	Err error
}

// Result is the outcome of one entry.
type Result struct {
	// Stored is the version written, read or matched by a conditional
	// create; for a delete, the deletion.
	Stored *Stored
	// Created is true when a create or update made a new resource.
	Created bool
	// Page is the result of a search.
	Page *Page
	// Err is why a batch entry failed (an *EntryError); nil in the results
	// of a transaction, which fails as a whole.
	Err error
}

// EntryError is the failure of one Bundle entry.
type EntryError struct {
	Index       int
	Method, URL string
	Err         error
}

// Error names the entry the way a FHIRPath expression would.
func (e *EntryError) Error() string {
	return fmt.Sprintf("Bundle.entry[%d] (%s %s): %v", e.Index, e.Method, e.URL, e.Err)
}

// Unwrap returns the entry's own error.
func (e *EntryError) Unwrap() error { return e.Err }

func (e *Entry) fail(err error) error {
	var ee *EntryError
	if errors.As(err, &ee) {
		return err
	}
	return &EntryError{Index: e.Index, Method: e.Method, URL: e.URL, Err: err}
}

// Transaction processes entries as one FHIR transaction: all of them in one
// PostgreSQL transaction, so that either every entry applies or none does.
// Following the processing rules of R4 http §3.1.0.11.2 it first gives ids
// to creates and resolves conditional creates and updates, so that every
// urn:uuid:/urn:oid: fullUrl stands for a Type/id; then it runs the
// deletes, creates, updates and reads, in that order. Before a resource is
// stored, every "reference" in it that names an entry's fullUrl is
// rewritten to that Type/id, and every conditional reference
// (Type?query) to the one resource it matches, on the client's own JSON
// bytes. The conditions run after the deletes and before the creates, so
// they do not see what the bundle itself creates (a bundle that creates a
// resource and conditionally updates it changes it twice, which the rules
// forbid anyway).
//
// The first entry that fails stops it: the error is an *EntryError
// wrapping the cause (fhir.ErrNotFound, fhir.ErrPreconditionFailed,
// *fhir.ValidationError, ErrOutsideCompartment, ...). Results are in the
// order of entries.
func (s *Store) Transaction(ctx context.Context, entries []Entry) ([]Result, error) {
	for i := range entries {
		if e := &entries[i]; e.Err != nil {
			return nil, e.fail(e.Err)
		}
	}
	t := newTxn(s, entries, nil)
	if err := s.inTx(ctx, "transaction", func(tx pgx.Tx) error { return t.run(ctx, tx) }); err != nil {
		return nil, err
	}
	return t.results, nil
}

// Batch processes each entry on its own, in its own database transaction
// and with the same rules as a transaction of that one entry, so one
// failing entry leaves the others applied. Entries of a batch may not refer
// to each other's fullUrl (R4 http §3.1.0.11.1: no interdependencies).
// Each failed entry's Result has Err set.
func (s *Store) Batch(ctx context.Context, entries []Entry) []Result {
	others := make(map[string]int)
	for i := range entries {
		if u := entries[i].FullURL; u != "" {
			others[u] = entries[i].Index
		}
	}
	results := make([]Result, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Err != nil {
			results[i].Err = e.fail(e.Err)
			continue
		}
		t := newTxn(s, entries[i:i+1], others)
		err := s.inTx(ctx, "batch entry", func(tx pgx.Tx) error { return t.run(ctx, tx) })
		if err != nil {
			results[i].Err = e.fail(err)
			continue
		}
		results[i] = t.results[0]
	}
	return results
}

// txn is the state of one transaction while it runs.
type txn struct {
	s       *Store
	tx      pgx.Tx
	entries []Entry
	results []Result
	// ids are the ids the entries' writes target ("" for reads).
	ids []string
	// matched marks conditional creates that found their resource; alias
	// is the earlier entry with the same conditional create, or -1.
	matched []bool
	alias   []int
	// urns maps the fullUrls of the entries to Type/id.
	urns map[string]string
	// claimed maps Type/id to the entry that writes it: two writes of one
	// resource in a transaction are an error (R4 http §3.1.0.11.2).
	claimed map[string]int
	// others are the fullUrls of a batch's other entries, to explain why a
	// reference to one of them cannot be resolved.
	others map[string]int
	at     time.Time
}

func newTxn(s *Store, entries []Entry, others map[string]int) *txn {
	t := &txn{
		s: s, entries: entries, others: others, at: now(),
		results: make([]Result, len(entries)),
		ids:     make([]string, len(entries)),
		matched: make([]bool, len(entries)),
		alias:   make([]int, len(entries)),
		urns:    make(map[string]string),
		claimed: make(map[string]int),
	}
	for i := range t.alias {
		t.alias[i] = -1
	}
	return t
}

func (t *txn) run(ctx context.Context, tx pgx.Tx) error {
	t.tx = tx
	if err := t.assignIDs(); err != nil {
		return err
	}
	steps := []func(context.Context) error{t.deletes, t.resolveConditions, t.creates, t.updates, t.reads}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// assignIDs gives plain creates new ids and records the targets of updates
// and deletes, so that their fullUrls resolve before anything is written.
func (t *txn) assignIDs() error {
	for i := range t.entries {
		e := &t.entries[i]
		switch {
		case e.Op == OpCreate && e.Condition == nil:
			id, err := newID()
			if err != nil {
				return e.fail(err)
			}
			t.ids[i] = id
		case (e.Op == OpUpdate && e.Condition == nil) || e.Op == OpDelete:
			t.ids[i] = e.ID
			if err := t.claim(i); err != nil {
				return err
			}
		default:
			continue
		}
		t.mapURN(i)
	}
	return nil
}

func (t *txn) mapURN(i int) {
	if u := t.entries[i].FullURL; isURN(u) {
		t.urns[u] = t.entries[i].Type + "/" + t.ids[i]
	}
}

// isURN reports whether s is a urn:uuid: or urn:oid: fullUrl, which a
// Bundle uses for resources that have no id yet.
func isURN(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}

func (t *txn) claim(i int) error {
	e := &t.entries[i]
	key := e.Type + "/" + t.ids[i]
	if j, ok := t.claimed[key]; ok {
		return e.fail(invalid(fmt.Sprintf("Bundle.entry[%d]", e.Index),
			"%s is also changed by Bundle.entry[%d]: a transaction may change each resource only once", key, t.entries[j].Index))
	}
	t.claimed[key] = i
	return nil
}

func (t *txn) deletes(ctx context.Context) error {
	for i := range t.entries {
		if e := &t.entries[i]; e.Op == OpDelete {
			st, err := t.s.deleteIn(ctx, t.tx, e.Type, e.ID, t.at, e.Access)
			if err != nil {
				return e.fail(err)
			}
			t.results[i] = Result{Stored: st}
		}
	}
	return nil
}

// resolveConditions runs the searches of conditional creates and updates,
// after the deletes as the processing rules order them, and fixes the id
// each will write.
func (t *txn) resolveConditions(ctx context.Context) error {
	creates := make(map[string]int) // condition → first conditional create
	for i := range t.entries {
		e := &t.entries[i]
		if e.Condition == nil || (e.Op != OpCreate && e.Op != OpUpdate) {
			continue
		}
		cond := t.substitute(e.Condition)
		if e.Op == OpCreate {
			key := e.Type + "?" + cond.Encode()
			if j, ok := creates[key]; ok {
				// The same conditional create twice stands for one resource.
				t.alias[i], t.matched[i], t.ids[i] = j, true, t.ids[j]
				t.mapURN(i)
				continue
			}
			creates[key] = i
		}
		matches, err := t.s.matchCondition(ctx, t.tx, e.Type, cond, e.Access)
		if err != nil {
			return e.fail(err)
		}
		if len(matches) > 1 {
			return e.fail(fmt.Errorf("the condition %s?%s matches more than one resource: %w", e.Type, cond.Encode(), fhir.ErrPreconditionFailed))
		}
		switch {
		case len(matches) == 1 && e.Op == OpCreate:
			t.matched[i], t.ids[i] = true, matches[0].ID
			t.results[i] = Result{Stored: &matches[0]}
		case len(matches) == 1:
			if e.Resource.ID != "" && e.Resource.ID != matches[0].ID {
				return e.fail(invalid(fmt.Sprintf("Bundle.entry[%d].resource.id", e.Index),
					"the resource's id %q is not the id of the resource the condition matches", e.Resource.ID))
			}
			t.ids[i] = matches[0].ID
		case e.Op == OpUpdate && e.Resource.ID != "":
			t.ids[i] = e.Resource.ID // no match, id given: update as create
		default:
			if t.ids[i], err = newID(); err != nil {
				return e.fail(err)
			}
		}
		if e.Op == OpUpdate {
			if err := t.claim(i); err != nil {
				return err
			}
		}
		t.mapURN(i)
	}
	return nil
}

// substitute replaces fullUrls that stand for resources of this bundle in
// the values of a condition (ifNoneExist=subject=urn:uuid:...).
func (t *txn) substitute(cond url.Values) url.Values {
	out := make(url.Values, len(cond))
	for k, vs := range cond {
		out[k] = make([]string, len(vs))
		for j, v := range vs {
			if to, ok := t.urns[v]; ok {
				v = to
			}
			out[k][j] = v
		}
	}
	return out
}

// creates inserts the new resources inside the transaction: one
// multi-row INSERT per type (and chunk), as the group commit does.
func (t *txn) creates(ctx context.Context) error {
	type pending struct {
		entry int
		row   *row
	}
	byType := map[*search.Definition][]pending{}
	var order []*search.Definition
	for i := range t.entries {
		e := &t.entries[i]
		if e.Op != OpCreate || t.matched[i] {
			continue
		}
		def, res, err := t.prepare(ctx, e)
		if err != nil {
			return err
		}
		r, err := t.s.createRow(ctx, t.tx, def, res, t.ids[i], t.at, e.Access)
		if err != nil {
			return e.fail(err)
		}
		t.results[i] = Result{Stored: r.stored(e.Type), Created: true}
		if _, ok := byType[def]; !ok {
			order = append(order, def)
		}
		byType[def] = append(byType[def], pending{i, r})
	}
	for _, def := range order {
		// PostgreSQL takes at most 65,535 parameters in one statement.
		perInsert := 65535 / (5 + len(indexColumns(def)))
		for chunk := range slices.Chunk(byType[def], perInsert) {
			rows := make([]*row, len(chunk))
			for k, p := range chunk {
				rows[k] = p.row
			}
			if err := insertRows(ctx, t.tx, def, rows); err != nil {
				return t.entries[chunk[0].entry].fail(fmt.Errorf("insert %d %s: %w", len(rows), def.Type, err))
			}
		}
	}
	for i, j := range t.alias {
		if j >= 0 {
			t.results[i] = Result{Stored: t.results[j].Stored}
		}
	}
	return nil
}

func (t *txn) updates(ctx context.Context) error {
	for i := range t.entries {
		e := &t.entries[i]
		if e.Op != OpUpdate {
			continue
		}
		def, res, err := t.prepare(ctx, e)
		if err != nil {
			return err
		}
		st, created, err := t.s.updateIn(ctx, t.tx, def, res, t.ids[i], e.IfMatch, t.at, e.Access)
		if err != nil {
			return e.fail(err)
		}
		t.results[i] = Result{Stored: st, Created: created}
	}
	return nil
}

// reads runs the reads and searches last, so they see the transaction's
// writes.
func (t *txn) reads(ctx context.Context) error {
	for i := range t.entries {
		e := &t.entries[i]
		switch e.Op {
		case OpRead:
			st, err := t.s.readIn(ctx, t.tx, e.Type, e.ID, e.Access)
			if err != nil {
				return e.fail(err)
			}
			t.results[i] = Result{Stored: st}
		case OpSearch:
			page, err := t.s.searchIn(ctx, t.tx, e.Query, e.Access)
			if err != nil {
				return e.fail(err)
			}
			t.results[i] = Result{Page: page}
		case OpCreate, OpUpdate, OpDelete:
		}
	}
	return nil
}

// prepare rewrites the references of an entry's resource and, when any
// changed, validates the result again: the models must see the new
// references (the patient compartment is read from them), and a reference
// may now point at a type its element does not allow.
func (t *txn) prepare(ctx context.Context, e *Entry) (*search.Definition, *fhir.Resource, error) {
	def, err := t.s.definition(e.Type)
	if err != nil {
		return nil, nil, e.fail(err)
	}
	raw, changed, err := rewriteReferences(e.Resource.Raw, func(ref string) (string, error) {
		return t.resolve(ctx, e, ref)
	})
	if err != nil {
		return nil, nil, e.fail(err)
	}
	if !changed {
		return def, e.Resource, nil
	}
	res, err := t.s.types.Parse(e.Type, raw)
	if err != nil {
		return nil, nil, e.fail(fmt.Errorf("with its references resolved: %w", err))
	}
	return def, res, nil
}

// resolve returns what a reference stands for in this transaction: the
// Type/id of an entry's fullUrl, or of the one resource a conditional
// reference matches; other references are returned as they are.
func (t *txn) resolve(ctx context.Context, e *Entry, ref string) (string, error) {
	where := fmt.Sprintf("Bundle.entry[%d].resource", e.Index)
	if isURN(ref) {
		if to, ok := t.urns[ref]; ok {
			return to, nil
		}
		if j, ok := t.others[ref]; ok {
			return "", invalid(where, "reference %q is the fullUrl of Bundle.entry[%d]: entries of a batch are processed on their own "+
				"and may not refer to each other; send a transaction", ref, j)
		}
		return "", invalid(where, "reference %q is not the fullUrl of any entry of this bundle", ref)
	}
	typ, query, ok := strings.Cut(ref, "?")
	if !ok || !typeName(typ) {
		return ref, nil
	}
	// A conditional reference (R4 http §3.1.0.11.2): exactly one match.
	cond, err := url.ParseQuery(query)
	if err != nil {
		return "", invalid(where, "conditional reference %q: %v", ref, err)
	}
	if _, err := t.s.definition(typ); err != nil {
		return "", err
	}
	q, err := t.s.params.Parse(typ, t.substitute(cond), true)
	if err != nil {
		return "", fmt.Errorf("conditional reference %q: %w", ref, err)
	}
	q.Count, q.Cursor, q.Total = 2, "", "none"
	page, err := t.s.searchIn(ctx, t.tx, q, e.Access)
	if err != nil {
		return "", err
	}
	if len(page.Entries) != 1 {
		n := "no resource"
		if len(page.Entries) > 1 {
			n = "more than one resource"
		}
		return "", fmt.Errorf("conditional reference %q matches %s: %w", ref, n, fhir.ErrPreconditionFailed)
	}
	return typ + "/" + page.Entries[0].ID, nil
}

// rewriteReferences returns raw with the value of every "reference" member
// whose value is a string, at any depth (contained resources and
// extensions included), replaced by what resolve returns for it. Every
// other byte stays as the client sent it; the resources stored are never
// re-encoded. changed reports whether any value changed. raw must be valid
// JSON (fhir.Registry.Parse checked it).
func rewriteReferences(raw []byte, resolve func(string) (string, error)) (out []byte, changed bool, err error) {
	// A member name may be spelled with escapes ("refer\u0065nce").
	if !bytes.Contains(raw, []byte("reference")) && !bytes.Contains(raw, []byte(`\u`)) {
		return raw, false, nil
	}
	type frame struct {
		object, wantKey bool
		key             string
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	copied := 0
	for {
		start := int(dec.InputOffset())
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("rewrite references: %w", err)
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = &stack[n-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default: // '}' or ']': the container is a finished value
				stack = stack[:len(stack)-1]
				if n := len(stack); n > 0 && stack[n-1].object {
					stack[n-1].wantKey = true
				}
			}
			continue
		}
		if top != nil && top.object && top.wantKey {
			top.key, _ = tok.(string)
			top.wantKey = false
			continue
		}
		if v, ok := tok.(string); ok && top != nil && top.object && top.key == "reference" {
			to, err := resolve(v)
			if err != nil {
				return nil, false, err
			}
			if to != v {
				end := int(dec.InputOffset())
				for start < end && raw[start] != '"' { // skip the ':' and spaces before the value
					start++
				}
				out = append(out, raw[copied:start]...)
				out = appendJSONString(out, to)
				copied, changed = end, true
			}
		}
		if top != nil && top.object {
			top.wantKey = true
		}
	}
	if !changed {
		return raw, false, nil
	}
	return append(out, raw[copied:]...), true, nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// typeName reports whether s looks like a resource type name.
func typeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// invalid is a 400 ValidationError at where.
func invalid(where, format string, args ...any) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
		Diagnostics: fmt.Sprintf(format, args...), Expression: []string{where},
	}}}
}
