package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// MaxBundleEntries caps the entries of one transaction or batch Bundle
// (POST /fhir). A transaction holds its row locks until it commits, so a
// larger Bundle is answered 413 with a message saying to split it, rather
// than holding up every other writer. The body limit
// (VIDDA_HTTP_BODY_LIMIT) applies as well.
const MaxBundleEntries = 1000

// Transactions is what POST /fhir needs from the store besides Resources.
type Transactions interface {
	Transaction(ctx context.Context, entries []store.Entry) ([]store.Result, error)
	Batch(ctx context.Context, entries []store.Entry) []store.Result
}

// The Bundle types POST /fhir processes (R4 Bundle.type).
const (
	bundleTransaction = "transaction"
	bundleBatch       = "batch"
)

// The store is what Deps.Store holds in production.
var _ Transactions = (*store.Store)(nil)

// txBundle is a decoded transaction or batch Bundle.
type txBundle struct {
	typ     string // bundleTransaction or bundleBatch
	entries []store.Entry
}

// transaction serves POST /fhir: a Bundle of type transaction (all
// entries or none) or batch (each entry on its own), answered with a
// transaction-response or batch-response Bundle (R4 http §3.1.0.11).
func (s *Server) transaction(c *fiber.Ctx) error {
	tr, ok := s.deps.Store.(Transactions)
	if !ok {
		return errNotSupported("transaction and batch")
	}
	ct := c.Get(fiber.HeaderContentType)
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		return errUnsupportedMedia(ct)
	}
	b, err := s.decodeBundle(c.Body(), strings.Contains(c.Get("Prefer"), "handling=strict"))
	if err != nil {
		return err
	}
	for i := range b.entries {
		s.authorizeEntry(c, &b.entries[i])
	}
	if b.typ == bundleTransaction {
		results, err := tr.Transaction(c.UserContext(), b.entries)
		var ee *store.EntryError
		if errors.As(err, &ee) {
			status, issues := s.entryIssues(c, ee)
			for i := range b.entries { // none of them happened
				s.auditEntry(c, b.typ, &b.entries[i], nil, status)
			}
			c.Status(status)
			c.Set(fiber.HeaderContentType, contentTypeFHIR)
			return c.Send(fhir.OperationOutcome(issues...))
		}
		if err != nil {
			return err
		}
		return s.send(c, s.responseBundle(c, "transaction-response", b.entries, results))
	}
	results := tr.Batch(c.UserContext(), b.entries)
	return s.send(c, s.responseBundle(c, "batch-response", b.entries, results))
}

// authorizeEntry asks the policy about one entry exactly as the route of
// its interaction would, and records a refusal as the entry's error.
func (s *Server) authorizeEntry(c *fiber.Ctx, e *store.Entry) {
	if e.Err != nil {
		return
	}
	acc, err := s.authorize(c, interactionOf(e.Op), e.Type)
	if err == nil && e.Query != nil {
		err = s.confine(c, e.Query, acc)
	}
	if err == nil {
		err = refuseSubscriptionEntry(e)
	}
	e.Access, e.Err = acc, err
}

func interactionOf(op store.Op) auth.Interaction {
	switch op {
	case store.OpRead:
		return auth.InteractionRead
	case store.OpSearch:
		return auth.InteractionSearch
	case store.OpCreate:
		return auth.InteractionCreate
	case store.OpUpdate:
		return auth.InteractionUpdate
	case store.OpDelete:
		return auth.InteractionDelete
	}
	return auth.Interaction(op.String()) // the policy refuses what it does not know
}

// entryIssues classifies the failure of one entry as the single-resource
// route would and says which entry it was.
func (s *Server) entryIssues(c *fiber.Ctx, ee *store.EntryError) (int, []fhir.Issue) {
	status, issues := s.classify(c, ee.Err)
	issues = slices.Clone(issues) // they may be the error's own
	at := fmt.Sprintf("Bundle.entry[%d]", ee.Index)
	what := ee.Method + " " + ee.URL
	if len(what) > 200 {
		what = what[:200] + "..."
	}
	for i := range issues {
		is := &issues[i]
		is.Expression = slices.Clone(is.Expression)
		is.Diagnostics = fmt.Sprintf("%s (%s): %s", at, what, is.Diagnostics)
		named := false
		for j, x := range is.Expression {
			if strings.HasPrefix(x, "Bundle.entry[") {
				named = true
			} else if typ, rest, _ := strings.Cut(x, "."); typeName(typ) {
				// Observation.status is Bundle.entry[2].resource.status here.
				is.Expression[j], named = strings.TrimSuffix(at+".resource."+rest, "."), true
			}
		}
		if !named {
			is.Expression = append(is.Expression, at)
		}
	}
	return status, issues
}

// entryResponse is Bundle.entry.response.
type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

func (r *entryResponse) member() string {
	b, err := json.Marshal(r)
	if err != nil { // only an invalid outcome could fail, and the server wrote it
		return `"response":{"status":` + strconv.Quote(r.Status) + `}`
	}
	return `"response":` + string(b)
}

func statusLine(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

// statusOf reads the code back from a statusLine.
func statusOf(line string) int {
	code, _ := strconv.Atoi(line[:min(3, len(line))])
	return code
}

// responseBundle answers each entry in the order of the request. Writes
// carry their resource only with Prefer: return=representation.
func (s *Server) responseBundle(c *fiber.Ctx, typ string, entries []store.Entry, results []store.Result) []byte {
	full := strings.Contains(c.Get("Prefer"), "return=representation")
	b := newBundle(typ)
	bundleType := strings.TrimSuffix(typ, "-response")
	for i := range entries {
		e, r := &entries[i], &results[i]
		var ee *store.EntryError
		if errors.As(r.Err, &ee) {
			status, issues := s.entryIssues(c, ee)
			resp := entryResponse{Status: statusLine(status), Outcome: fhir.OperationOutcome(issues...)}
			s.auditEntry(c, bundleType, e, r, status)
			b.entry("", nil, resp.member())
			continue
		}
		if r.Page != nil {
			resp := entryResponse{Status: statusLine(fiber.StatusOK)}
			set, err := s.searchset(e.Query, r.Page)
			if err != nil {
				s.log.ErrorContext(c.UserContext(), "transaction: search entry", "request_id", c.Locals(localRequestID), "entry", e.Index, "err", err)
				resp.Status = statusLine(fiber.StatusInternalServerError)
			}
			s.auditEntry(c, bundleType, e, r, statusOf(resp.Status))
			b.entry("", set, resp.member())
			continue
		}
		st := r.Stored
		if st == nil { // the store answered neither a resource nor an error
			s.log.ErrorContext(c.UserContext(), "transaction: entry without result", "request_id", c.Locals(localRequestID), "entry", e.Index)
			resp := entryResponse{Status: statusLine(fiber.StatusInternalServerError)}
			s.auditEntry(c, bundleType, e, r, fiber.StatusInternalServerError)
			b.entry("", nil, resp.member())
			continue
		}
		resp := entryResponse{Status: statusLine(fiber.StatusOK), Etag: etag(st.VersionID)}
		if !st.LastUpdated.IsZero() {
			resp.LastModified = instant(st.LastUpdated)
		}
		content := st.Content
		switch e.Op {
		case store.OpCreate, store.OpUpdate:
			if r.Created {
				resp.Status = statusLine(fiber.StatusCreated)
			}
			resp.Location = st.Type + "/" + st.ID + "/_history/" + strconv.FormatInt(st.VersionID, 10)
			if !full {
				content = nil
			}
		case store.OpDelete:
			resp.Status, content = statusLine(fiber.StatusNoContent), nil
		case store.OpRead, store.OpSearch:
		}
		s.auditEntry(c, bundleType, e, r, statusOf(resp.Status))
		b.entry(s.base+"/fhir/"+st.Type+"/"+st.ID, content, resp.member())
	}
	return b.bytes()
}

// decodeBundle reads a transaction or batch Bundle. What is wrong with the
// Bundle itself (not a Bundle, another type, an entry without request, a
// bad method or url) is an error: 400, or 413 past MaxBundleEntries. What
// is wrong with one entry's resource or search, or its type not served, is
// that entry's Err, so that a batch still processes the others.
func (s *Server) decodeBundle(body []byte, strict bool) (*txBundle, error) {
	top, err := object(body, "Bundle")
	if err != nil {
		return nil, err
	}
	var rt, typ string
	if err := stringMember(top, "resourceType", "Bundle", &rt, true); err != nil {
		return nil, err
	}
	if rt != "Bundle" {
		return nil, invalidAt("Bundle.resourceType", "POST /fhir takes a Bundle, not a %q", rt)
	}
	if err := stringMember(top, "type", "Bundle", &typ, true); err != nil {
		return nil, err
	}
	if typ != bundleTransaction && typ != bundleBatch {
		return nil, invalidAt("Bundle.type", "POST /fhir processes a Bundle of type transaction or batch, not %q", typ)
	}
	if err := known(top, "Bundle", bundleMember); err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if raw, ok := top["entry"]; ok {
		if err := json.Unmarshal(raw, &raws); err != nil {
			return nil, invalidAt("Bundle.entry", "Bundle.entry must be an array of entries")
		}
	}
	if len(raws) > MaxBundleEntries {
		return nil, &edgeError{fiber.StatusRequestEntityTooLarge, "too-costly", fmt.Sprintf(
			"the Bundle has %d entries; one transaction or batch takes at most %d: split it into several", len(raws), MaxBundleEntries)}
	}
	b := &txBundle{typ: typ, entries: make([]store.Entry, len(raws))}
	fullURLs := make(map[string]int, len(raws))
	for i, raw := range raws {
		e := &b.entries[i]
		if err := s.decodeEntry(i, raw, e, strict); err != nil {
			return nil, err
		}
		if e.FullURL == "" {
			continue
		}
		if j, dup := fullURLs[e.FullURL]; dup {
			return nil, invalidAt(fmt.Sprintf("Bundle.entry[%d].fullUrl", i), "fullUrl %q is also the fullUrl of Bundle.entry[%d]", e.FullURL, j)
		}
		fullURLs[e.FullURL] = i
	}
	return b, nil
}

func (s *Server) decodeEntry(i int, raw json.RawMessage, e *store.Entry, strict bool) error {
	at := fmt.Sprintf("Bundle.entry[%d]", i)
	m, err := object(raw, at)
	if err != nil {
		return err
	}
	if err := known(m, at, entryMember); err != nil {
		return err
	}
	e.Index = i
	if err := stringMember(m, "fullUrl", at, &e.FullURL, false); err != nil {
		return err
	}
	if _, ok := m["request"]; !ok {
		return invalidAt(at+".request", "every entry of a transaction or batch needs a request with a method and a url")
	}
	req, err := object(m["request"], at+".request")
	if err != nil {
		return err
	}
	if err := known(req, at+".request", requestMember); err != nil {
		return err
	}
	var ifMatch, ifNoneExist, ifNoneMatch, ifModifiedSince string
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"method", &e.Method, true},
		{"url", &e.URL, true},
		{"ifMatch", &ifMatch, false},
		{"ifNoneExist", &ifNoneExist, false},
		{"ifNoneMatch", &ifNoneMatch, false},
		{"ifModifiedSince", &ifModifiedSince, false},
	} {
		if err := stringMember(req, f.name, at+".request", f.dst, f.required); err != nil {
			return err
		}
	}
	if ifNoneMatch != "" || ifModifiedSince != "" {
		return notSupportedAt(at+".request", "conditional reads (ifNoneMatch, ifModifiedSince) are not supported")
	}
	query, err := s.entryTarget(e, at)
	if err != nil {
		return err
	}
	resource, hasResource := m["resource"]
	switch needs := e.Op == store.OpCreate || e.Op == store.OpUpdate; {
	case needs && !hasResource:
		return invalidAt(at+".resource", "%s %s needs a resource", e.Method, e.URL)
	case !needs && hasResource:
		return invalidAt(at+".resource", "a %s entry carries no resource", e.Method)
	}
	if ifMatch != "" {
		if e.Op != store.OpUpdate {
			return notSupportedAt(at+".request.ifMatch", "ifMatch is supported on PUT only")
		}
		if e.IfMatch, err = parseETag(ifMatch); err != nil {
			return invalidAt(at+".request.ifMatch", "%q is not a version ETag like W/\"1\"", ifMatch)
		}
	}
	if ifNoneExist != "" {
		if e.Op != store.OpCreate {
			return invalidAt(at+".request.ifNoneExist", "ifNoneExist belongs to a POST")
		}
		cond, err := url.ParseQuery(strings.TrimPrefix(ifNoneExist, "?"))
		if err != nil || len(cond) == 0 {
			return invalidAt(at+".request.ifNoneExist", "ifNoneExist %q is not a search query like identifier=system|value", ifNoneExist)
		}
		e.Condition = cond
	}
	if e.Err == nil { // a type the server does not serve has nothing more to check
		s.decodeContent(e, at, resource, query, strict)
	}
	return nil
}

// decodeContent validates an entry's resource or search as the routes of
// create, update and search do; what is wrong becomes the entry's Err.
func (s *Server) decodeContent(e *store.Entry, at string, resource []byte, query url.Values, strict bool) {
	switch e.Op {
	case store.OpCreate, store.OpUpdate:
		e.Resource, e.Err = s.deps.Types.Parse(e.Type, resource)
		if e.Err == nil && e.Op == store.OpUpdate && e.ID != "" && e.Resource.ID != e.ID {
			e.Resource, e.Err = nil, invalidAt(at+".resource.id", "the resource's id %q must equal the id in request.url %q", e.Resource.ID, e.ID)
		}
	case store.OpSearch:
		e.Query, e.Err = s.deps.Params.Parse(e.Type, query, strict)
	case store.OpRead, store.OpDelete:
	}
}

// entryTarget reads request.method and request.url into the entry's
// interaction, type and id, and returns the url's query.
func (s *Server) entryTarget(e *store.Entry, at string) (url.Values, error) {
	switch e.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
	case http.MethodHead, http.MethodPatch:
		return nil, notSupportedAt(at+".request.method", "%s is not supported in a bundle", e.Method)
	default:
		return nil, invalidAt(at+".request.method", "request.method %q is not GET, POST, PUT or DELETE", e.Method)
	}
	at += ".request.url"
	u, _ := strings.CutPrefix(e.URL, s.base+"/fhir/")
	if strings.Contains(u, "://") {
		return nil, invalidAt(at, "%q is not a URL of this server: use one relative to the FHIR base, like Patient/123", e.URL)
	}
	path, rawQuery, hasQuery := strings.Cut(strings.TrimPrefix(u, "/"), "?")
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalidAt(at, "the query of %q: %v", e.URL, err)
	}
	segs := strings.Split(path, "/")
	if !typeName(segs[0]) {
		return nil, invalidAt(at, "%q does not start with a resource type", e.URL)
	}
	e.Type = segs[0]
	switch {
	case len(segs) > 2:
		return nil, notSupportedAt(at, "%s %s: a bundle may read, search, create, update and delete; not history or operations", e.Method, e.URL)
	case len(segs) == 2 && !fhir.ValidID(segs[1]):
		return nil, invalidAt(at, "%q is not a valid resource id", segs[1])
	}
	instance := len(segs) == 2
	switch {
	case e.Method == http.MethodGet && instance && !hasQuery:
		e.Op, e.ID = store.OpRead, segs[1]
	case e.Method == http.MethodGet && !instance:
		e.Op = store.OpSearch
	case e.Method == http.MethodPost && !instance && !hasQuery:
		e.Op = store.OpCreate
	case e.Method == http.MethodPut && instance && !hasQuery:
		e.Op, e.ID = store.OpUpdate, segs[1]
	case e.Method == http.MethodPut && !instance && len(query) > 0:
		e.Op, e.Condition = store.OpUpdate, query
	case e.Method == http.MethodDelete && instance && !hasQuery:
		e.Op, e.ID = store.OpDelete, segs[1]
	case e.Method == http.MethodDelete && !instance:
		return nil, notSupportedAt(at, "conditional delete is not supported: delete Type/id")
	default:
		return nil, invalidAt(at, "%s %s: expected GET Type/id, GET Type?query, POST Type, PUT Type/id, PUT Type?query or DELETE Type/id", e.Method, e.URL)
	}
	if !s.deps.Types.Supports(e.Type) || s.deps.Params.Definition(e.Type) == nil {
		e.Err = fmt.Errorf("resource type %q: %w", e.Type, fhir.ErrUnsupportedType)
	}
	return query, nil
}

// object decodes a JSON object into its members.
func object(raw []byte, at string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		msg := at + " must be a JSON object"
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			msg = "body is not valid JSON: " + syn.Error()
		}
		return nil, &fhir.ValidationError{Issues: []fhir.Issue{{
			Severity: fhir.SeverityFatal, Code: fhir.IssueStructure, Diagnostics: msg, Expression: []string{at},
		}}}
	}
	return m, nil
}

// stringMember decodes the string member name of m into dst.
func stringMember(m map[string]json.RawMessage, name, at string, dst *string, required bool) error {
	raw, ok := m[name]
	if !ok {
		if required {
			return invalidAt(at+"."+name, "%s.%s is required", at, name)
		}
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil || string(raw) == "null" || *dst == "" {
		return invalidAt(at+"."+name, "%s.%s must be a non-empty string", at, name)
	}
	return nil
}

// known refuses members an element does not define, naming them, as
// single resources are refused. A "_name" member extends the primitive
// name.
func known(m map[string]json.RawMessage, at string, defined func(string) bool) error {
	var unknown []string
	for k := range m {
		if !defined(k) && (!strings.HasPrefix(k, "_") || !defined(k[1:])) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return invalidAt(at, "%s has elements R4 does not define there (or modifiers this server does not understand): %s", at, strings.Join(unknown, ", "))
}

// The members R4 defines on Bundle, Bundle.entry and Bundle.entry.request;
// modifierExtension is left out, as its meaning is not understood here.
func bundleMember(k string) bool {
	switch k {
	case "resourceType", "id", "meta", "implicitRules", "language", "identifier", "type", "timestamp", "total", "link", "entry", "signature":
		return true
	}
	return false
}

func entryMember(k string) bool {
	switch k {
	case "id", "extension", "link", "fullUrl", "resource", "search", "request", "response":
		return true
	}
	return false
}

func requestMember(k string) bool {
	switch k {
	case "id", "extension", "method", "url", "ifNoneMatch", "ifModifiedSince", "ifMatch", "ifNoneExist":
		return true
	}
	return false
}

func invalidAt(at, format string, args ...any) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
		Diagnostics: fmt.Sprintf(format, args...), Expression: []string{at},
	}}}
}

func notSupportedAt(at, format string, args ...any) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: fhir.SeverityError, Code: fhir.IssueNotSupported,
		Diagnostics: fmt.Sprintf(format, args...), Expression: []string{at},
	}}}
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
