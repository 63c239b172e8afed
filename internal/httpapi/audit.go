package httpapi

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
)

// AuditRecorder takes one audit.Event per access; *audit.Writer is one.
// Record must not wait for the database.
type AuditRecorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Auditing: every request under /fhir (but /fhir/metadata), /admin and
// /metrics is recorded after its handler ran, with the status it was
// answered with, refusals (401, 403, 404) included. The interaction is
// read from the method and path, so a request refused before any handler
// (no token) is recorded as what it tried. The patients are those of what
// the store returned (auditedStore notes them) and those a search named.
// A transaction or batch is recorded one event per entry, each with its
// own interaction, resource, patients and outcome, tied together by the
// request id; a Bundle refused as a whole is one event.

// auditNoteKey keys the request's auditNote in its context.
type auditNoteKey struct{}

// auditNote is what the handlers and the store saw of one request.
type auditNote struct {
	patients []string
	leftOut  int
	seen     map[string]struct{} // once patients grows past a few
	// created is the id and version a create or update assigned.
	created, version string
	// entries are the entries of a transaction or batch, once read.
	entries []audit.Event
}

func noteFrom(ctx context.Context) *auditNote {
	n, _ := ctx.Value(auditNoteKey{}).(*auditNote)
	return n
}

// patient adds a patient the request touched, once, up to the cap.
func (n *auditNote) patient(id string) {
	if id == "" {
		return
	}
	if n.seen == nil {
		for _, p := range n.patients {
			if p == id {
				return
			}
		}
		if len(n.patients) >= 8 {
			n.seen = make(map[string]struct{}, 2*len(n.patients))
			for _, p := range n.patients {
				n.seen[p] = struct{}{}
			}
		}
	} else if _, ok := n.seen[id]; ok {
		return
	}
	if len(n.patients) >= audit.MaxPatients {
		n.leftOut++
		return
	}
	n.patients = append(n.patients, id)
	if n.seen != nil {
		n.seen[id] = struct{}{}
	}
}

func (n *auditNote) stored(entries ...store.Stored) {
	for i := range entries {
		n.patient(entries[i].PatientID)
	}
}

// queried adds the patients a search names (patient=, subject=Patient/,
// a compartment), found or not.
func (n *auditNote) queried(q *search.Query) {
	for _, f := range q.Filters {
		if f.Param.Column != "patient_id" || f.Modifier == "missing" || f.Chain != nil {
			continue
		}
		for _, v := range f.Values {
			for _, id := range v.Refs {
				n.patient(id)
			}
		}
	}
}

// auditFHIR records each FHIR interaction once it is answered.
func (s *Server) auditFHIR(c *fiber.Ctx) error {
	if s.deps.Audit == nil {
		return c.Next()
	}
	n := &auditNote{}
	c.SetUserContext(context.WithValue(c.UserContext(), auditNoteKey{}, n))
	if err := s.answer(c, c.Next()); err != nil {
		return err
	}
	if len(n.entries) > 0 {
		for _, e := range n.entries {
			s.deps.Audit.Record(c.UserContext(), e)
		}
		return nil
	}
	s.deps.Audit.Record(c.UserContext(), s.fhirEvent(c, n))
	return nil
}

// auditAdmin records each request to /admin and /metrics.
func (s *Server) auditAdmin(c *fiber.Ctx) error {
	if s.deps.Audit == nil {
		return c.Next()
	}
	if err := s.answer(c, c.Next()); err != nil {
		return err
	}
	e := s.requestEvent(c)
	e.Kind = audit.KindAdminQuery
	if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead {
		e.Kind = audit.KindAdminChange
	}
	e.Query = c.Method() + " " + c.OriginalURL()
	e.Detail = e.Query
	s.deps.Audit.Record(c.UserContext(), e)
	return nil
}

// answer writes the error response now, so that the status is known
// (requestContext would do it later otherwise).
func (s *Server) answer(c *fiber.Ctx, err error) error {
	if err == nil {
		return nil
	}
	return s.handleError(c, err)
}

// requestEvent is what every event of a request shares: when, who, from
// where, how it ended, and the request id.
func (s *Server) requestEvent(c *fiber.Ctx) audit.Event {
	status := c.Response().StatusCode()
	e := audit.Event{
		Outcome: audit.OutcomeOfStatus(status),
		Agent:   audit.AgentOf(principal(c), strings.Clone(c.IP())), // a proxy header would be a view of the request
	}
	if e.Outcome != audit.OutcomeSuccess {
		e.OutcomeDesc = "HTTP " + strconv.Itoa(status)
	}
	e.RequestID, _ = c.Locals(localRequestID).(string)
	return e
}

// fhirEvent describes a FHIR request from its method and path.
func (s *Server) fhirEvent(c *fiber.Ctx, n *auditNote) audit.Event {
	e := s.requestEvent(c)
	path := strings.Clone(strings.TrimPrefix(strings.TrimPrefix(c.Path(), "/fhir"), "/"))
	seg := strings.Split(path, "/")
	if len(seg) > 4 {
		seg = seg[:4]
	}
	for len(seg) < 4 {
		seg = append(seg, "")
	}
	typ, id, third, fourth := seg[0], seg[1], seg[2], seg[3]
	e.ResourceType = typ
	query := func() {
		e.Query = path
		if raw := c.Request().URI().QueryString(); len(raw) > 0 {
			e.Query += "?" + string(raw)
		}
	}
	switch method := c.Method(); {
	case typ == "" && method == fiber.MethodPost:
		e.Kind = audit.KindTransaction
	case id == "" && method == fiber.MethodGet:
		e.Kind = audit.KindSearch
		query()
	case id == "" && method == fiber.MethodPost:
		e.Kind = audit.KindCreate
	case id == "_search" && method == fiber.MethodPost:
		e.Kind = audit.KindSearch
		query()
		if body := c.Body(); len(body) > 0 && len(body) <= 4096 {
			sep := "?"
			if strings.Contains(e.Query, "?") {
				sep = "&"
			}
			e.Query += sep + string(body)
		}
	case id == "_history":
		e.Kind = audit.KindHistoryType
		query()
	case strings.HasPrefix(id, "$"):
		e.Kind = audit.KindOperation
		e.Detail = typ + "/" + id
		query()
	case third == "" && method == fiber.MethodGet:
		e.Kind, e.ResourceID = audit.KindRead, id
	case third == "" && method == fiber.MethodPut:
		e.Kind, e.ResourceID = audit.KindUpdate, id
	case third == "" && method == fiber.MethodDelete:
		e.Kind, e.ResourceID = audit.KindDelete, id
	case third == "_history" && fourth == "":
		e.Kind, e.ResourceID = audit.KindHistoryInstance, id
	case third == "_history":
		e.Kind, e.ResourceID, e.VersionID = audit.KindVRead, id, fourth
	case method == fiber.MethodGet:
		// Patient/[id]/[type]: a search in that patient's compartment.
		e.Kind, e.ResourceType = audit.KindSearch, third
		query()
	default:
		e.Kind, e.ResourceID = audit.KindOperation, id
		e.Detail = method + " " + strings.Clone(c.Path())
	}
	if n.created != "" && (e.Kind == audit.KindCreate || e.Kind == audit.KindUpdate) {
		e.ResourceID, e.VersionID = n.created, n.version
	}
	e.Patients, e.PatientsLeftOut = n.patients, n.leftOut
	return e
}

// auditEntry notes the event of one entry of a transaction or batch that
// was answered with status.
func (s *Server) auditEntry(c *fiber.Ctx, bundleType string, e *store.Entry, r *store.Result, status int) {
	n := noteFrom(c.UserContext())
	if n == nil {
		return
	}
	ev := s.requestEvent(c)
	ev.Outcome, ev.OutcomeDesc = audit.OutcomeOfStatus(status), ""
	if ev.Outcome != audit.OutcomeSuccess {
		ev.OutcomeDesc = "HTTP " + strconv.Itoa(status)
	}
	ev.ResourceType, ev.ResourceID = e.Type, e.ID
	ev.Detail = "entry " + strconv.Itoa(e.Index) + " of a " + bundleType
	switch e.Op {
	case store.OpRead:
		ev.Kind = audit.KindRead
	case store.OpSearch:
		ev.Kind = audit.KindSearch
		ev.Query = e.URL
	case store.OpCreate:
		ev.Kind = audit.KindCreate
	case store.OpUpdate:
		ev.Kind = audit.KindUpdate
	case store.OpDelete:
		ev.Kind = audit.KindDelete
	default:
		ev.Kind = audit.KindOperation
		ev.Query = e.Method + " " + e.URL
	}
	entryNote := &auditNote{}
	if e.Query != nil {
		entryNote.queried(e.Query)
	}
	if r != nil {
		if r.Stored != nil {
			entryNote.stored(*r.Stored)
			ev.ResourceID = r.Stored.ID
			if e.Op != store.OpRead && e.Op != store.OpSearch {
				ev.VersionID = strconv.FormatInt(r.Stored.VersionID, 10)
			}
		}
		if r.Page != nil {
			entryNote.stored(r.Page.Entries...)
			entryNote.stored(r.Page.Included...)
		}
	}
	ev.Patients, ev.PatientsLeftOut = entryNote.patients, entryNote.leftOut
	n.entries = append(n.entries, ev)
}

// auditedStore notes, in the request's auditNote, the patients of what
// the store returned and the ids it assigned.
type auditedStore struct{ Resources }

// auditedTxStore is auditedStore over a store that also runs transactions
// (whose entries transaction.go notes itself).
type auditedTxStore struct {
	auditedStore
	Transactions
}

// audited wraps r when auditing is on.
func (s *Server) audited(r Resources) Resources {
	if s.deps.Audit == nil || r == nil {
		return r
	}
	if tx, ok := r.(Transactions); ok {
		return auditedTxStore{auditedStore{r}, tx}
	}
	return auditedStore{r}
}

func noteStored(ctx context.Context, st *store.Stored, assigned bool) {
	n := noteFrom(ctx)
	if n == nil || st == nil {
		return
	}
	n.stored(*st)
	if assigned {
		n.created, n.version = st.ID, strconv.FormatInt(st.VersionID, 10)
	}
}

func (a auditedStore) Create(ctx context.Context, res *fhir.Resource, acc store.Access) (*store.Stored, error) {
	st, err := a.Resources.Create(ctx, res, acc)
	noteStored(ctx, st, true)
	return st, err
}

func (a auditedStore) CreateIfNoneExist(ctx context.Context, res *fhir.Resource, cond url.Values, acc store.Access) (*store.Stored, bool, error) {
	st, created, err := a.Resources.CreateIfNoneExist(ctx, res, cond, acc)
	noteStored(ctx, st, true)
	return st, created, err
}

func (a auditedStore) Read(ctx context.Context, typ, id string, acc store.Access) (*store.Stored, error) {
	st, err := a.Resources.Read(ctx, typ, id, acc)
	noteStored(ctx, st, false)
	return st, err
}

func (a auditedStore) VRead(ctx context.Context, typ, id string, vid int64, acc store.Access) (*store.Stored, error) {
	st, err := a.Resources.VRead(ctx, typ, id, vid, acc)
	noteStored(ctx, st, false)
	return st, err
}

func (a auditedStore) Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, acc store.Access) (*store.Stored, bool, error) {
	st, created, err := a.Resources.Update(ctx, res, id, ifMatch, acc)
	noteStored(ctx, st, true)
	return st, created, err
}

func (a auditedStore) Delete(ctx context.Context, typ, id string, acc store.Access) (*store.Stored, error) {
	st, err := a.Resources.Delete(ctx, typ, id, acc)
	noteStored(ctx, st, false)
	return st, err
}

func (a auditedStore) History(ctx context.Context, typ, id string, opts store.HistoryOptions, acc store.Access) (*store.HistoryPage, error) {
	page, err := a.Resources.History(ctx, typ, id, opts, acc)
	if n := noteFrom(ctx); n != nil && page != nil {
		n.stored(page.Entries...)
	}
	return page, err
}

func (a auditedStore) Search(ctx context.Context, q *search.Query, acc store.Access) (*store.Page, error) {
	page, err := a.Resources.Search(ctx, q, acc)
	if n := noteFrom(ctx); n != nil {
		n.queried(q)
		if page != nil {
			n.stored(page.Entries...)
			n.stored(page.Included...)
		}
	}
	return page, err
}

func (a auditedStore) LastN(ctx context.Context, q *search.Query, maxPerCode int, acc store.Access) ([]store.Stored, error) {
	found, err := a.Resources.LastN(ctx, q, maxPerCode, acc)
	if n := noteFrom(ctx); n != nil {
		n.queried(q)
		n.stored(found...)
	}
	return found, err
}
