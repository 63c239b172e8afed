package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// Resources is what the pages need of the FHIR store; *store.Store is
// one. Every call carries the store.Access the policy decided for the
// signed-in user, exactly as the API's do, so a page shows what the same
// user would get from /fhir and no more.
type Resources interface {
	Read(ctx context.Context, typ, id string, a store.Access) (*store.Stored, error)
	Search(ctx context.Context, q *search.Query, a store.Access) (*store.Page, error)
	LastN(ctx context.Context, q *search.Query, maxPerCode int, a store.Access) ([]store.Stored, error)
	Create(ctx context.Context, res *fhir.Resource, a store.Access) (*store.Stored, error)
	Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, a store.Access) (*store.Stored, bool, error)
}

// AuditRecorder takes one audit.Event per page that reads or writes
// patient data; *audit.Writer is one (the API's own).
type AuditRecorder interface {
	Record(ctx context.Context, e audit.Event)
}

// maxSearchPages bounds how many pages of 1,000 one list follows.
const maxSearchPages = 10

// access asks the one policy (auth.Decide) what pr may do with typ and
// returns the restriction the store applies.
func (p *Pages) access(pr *auth.Principal, in auth.Interaction, typ string) (store.Access, error) {
	def := p.deps.Params.Definition(typ)
	if def == nil || !p.deps.Types.Supports(typ) {
		return store.Access{}, fmt.Errorf("resource type %s: %w", typ, fhir.ErrUnsupportedType)
	}
	d, err := auth.Decide(pr, auth.Action{Interaction: in, ResourceType: typ, InPatientCompartment: def.InPatientCompartment()})
	if err != nil {
		return store.Access{}, fmt.Errorf("%s %s: %w", in, typ, err)
	}
	return store.Access{PatientID: d.PatientID, CareOf: d.CareOf}, nil
}

// searchAll runs a search of typ with params as pr and returns every
// match (up to maxSearchPages pages of 1,000).
func (p *Pages) searchAll(ctx context.Context, pr *auth.Principal, typ string, params url.Values) ([]store.Stored, error) {
	a, err := p.access(pr, auth.InteractionSearch, typ)
	if err != nil {
		return nil, err
	}
	if params.Get("_count") == "" {
		params.Set("_count", "1000")
	}
	q, err := p.deps.Params.Parse(typ, params, true)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", typ, err)
	}
	q.Total = "none"
	var out []store.Stored
	for range maxSearchPages {
		page, err := p.deps.Store.Search(ctx, q, a)
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", typ, err)
		}
		out = append(out, page.Entries...)
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	return out, nil
}

// readPatient reads a Patient as pr.
func (p *Pages) readPatient(ctx context.Context, pr *auth.Principal, id string) (*patientJSON, error) {
	a, err := p.access(pr, auth.InteractionRead, "Patient")
	if err != nil {
		return nil, err
	}
	st, err := p.deps.Store.Read(ctx, "Patient", id, a)
	if err != nil {
		return nil, fmt.Errorf("read patient: %w", err)
	}
	var pt patientJSON
	if err := json.Unmarshal(st.Content, &pt); err != nil {
		return nil, fmt.Errorf("read patient %s: %w", id, err)
	}
	return &pt, nil
}

// patientLimits are the limits in force now for a patient, by the codes
// limits are set for (each part of a panel, or the measure): the clinic's
// rules with the patient's active Goals over them, read by internal/care
// exactly as the engine reads them when it flags a reading.
func (p *Pages) patientLimits(ctx context.Context, pr *auth.Principal, patientID string) (limits, error) {
	goals, err := p.searchAll(ctx, pr, "Goal", url.Values{"patient": {patientID}, "lifecycle-status": {"active"}})
	if err != nil {
		return nil, err
	}
	rows := make([]care.GoalRow, len(goals))
	for i, st := range goals {
		rows[i] = care.GoalRow{ID: st.ID, Version: st.VersionID, LastUpdated: st.LastUpdated, Content: st.Content}
	}
	inForce, now := p.rules.PatientLimits(rows), p.now()
	out := limits{}
	for i := range p.measures.list {
		for _, c := range p.measures.list[i].goalCodes() {
			if f, ok := inForce.At(c, now); ok {
				out[c] = limitOf(f)
			}
		}
	}
	return out, nil
}

// auditEvent starts the AuditEvent of a page request by sess: who, from
// where, which request; the caller fills in what was touched.
func (p *Pages) auditEvent(c *fiber.Ctx, sess *auth.Session, kind audit.Kind, status int) audit.Event {
	e := audit.Event{
		Kind:    kind,
		Outcome: audit.OutcomeOfStatus(status),
		Agent:   audit.AgentOf(sess.Principal, strings.Clone(c.IP())),
		// The page's path and query say what was looked at (no health data).
		Query:     strings.Clone(c.Method() + " " + c.OriginalURL()),
		RequestID: requestID(c),
	}
	e.Agent.Name = sess.Username
	if e.Outcome != audit.OutcomeSuccess {
		e.OutcomeDesc = fmt.Sprintf("HTTP %d", status)
	}
	return e
}

func (p *Pages) recordAudit(ctx context.Context, e audit.Event) {
	if p.deps.Audit != nil {
		p.deps.Audit.Record(ctx, e)
	}
}

// statusOf is the HTTP status a page answers an error with.
func statusOf(err error) int {
	var ve *fhir.ValidationError
	switch {
	case err == nil:
		return fiber.StatusOK
	case errors.Is(err, auth.ErrUnauthenticated):
		return fiber.StatusUnauthorized
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, store.ErrOutsideCompartment):
		return fiber.StatusForbidden
	case errors.Is(err, fhir.ErrNotFound), errors.Is(err, fhir.ErrDeleted):
		return fiber.StatusNotFound
	case errors.Is(err, fhir.ErrVersionConflict), errors.Is(err, care.ErrTaskClosed):
		return fiber.StatusConflict
	case errors.As(err, &ve), errors.Is(err, errBadForm):
		return fiber.StatusBadRequest
	}
	return fiber.StatusInternalServerError
}

// errBadForm is a form that cannot be what the page sent.
var errBadForm = errors.New("bad form")

func nan() float64 { return math.NaN() }
