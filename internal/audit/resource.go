package audit

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/vidda/vidda/fhir/search"
)

// auditType is the resource type the rows are read as.
const auditType = "AuditEvent"

// recordTable holds one row per access and patient; the auditevent view
// (migration 00016) renders each as a FHIR AuditEvent, with the columns
// fhir/search expects of a resource table.
const recordTable = "audit_record"

// recordColumns are audit_record's columns, in the order of a row.
func recordColumns() []string {
	return []string{
		"id", "recorded", "kind", "outcome", "patient_id", "agent", "entity",
		"agent_ref", "subject", "role", "issuer", "name", "client_id", "token_id", "address", "address_ip",
		"resource", "version", "entity_patient", "query", "request_id", "detail", "outcome_desc", "observer",
	}
}

// row is one access ready for COPY, in the order of recordColumns.
type row []any

// layout is how Events become rows of audit_record. A row holds only what
// happened; the AuditEvent's codes, its JSON and its token keys are
// rendered by the database when it is read. That keeps the row narrow
// (about a sixth of the WAL of a stored resource) and the writer's work
// per event small, on the same CPUs as the requests it records.
type layout struct {
	cols     []string
	agents   []string // types agent= indexes
	entities []string // types entity= indexes
	instance string   // source.observer
}

// newLayout reads the reference targets of the AuditEvent parameters from
// params: agent= and entity= find only references of those types, as they
// would in a resource the store had indexed.
func newLayout(params *search.Registry, instance string) (*layout, error) {
	def := params.Definition(auditType)
	if def == nil {
		return nil, fmt.Errorf("audit: the search registry has no %s", auditType)
	}
	l := &layout{cols: recordColumns(), instance: clean(instance)}
	for _, p := range def.Params {
		switch {
		case p.Name == "agent" && p.Kind == search.Reference:
			l.agents = p.Targets
		case p.Name == "entity" && p.Kind == search.Reference:
			l.entities = p.Targets
		}
	}
	if l.agents == nil || l.entities == nil {
		return nil, fmt.Errorf("audit: the registry's %s has no agent or entity reference parameter", auditType)
	}
	return l, nil
}

// resource is one AuditEvent being built: an Event about at most one
// patient.
type resource struct {
	e *Event
	// domain and patientRef are the entities' references, "" for none.
	domain, patientRef string
}

func newResource(e *Event, patient string) *resource {
	r := &resource{e: e}
	if e.ResourceType != "" && e.ResourceID != "" && (e.ResourceType != "Patient" || e.ResourceID != patient) {
		r.domain = e.ResourceType + "/" + e.ResourceID
	}
	if patient != "" {
		r.patientRef = "Patient/" + patient
	}
	return r
}

// kindOf is the event's kind, or 0 for one outside the table (audit_kind
// reads 0 as a Patient Record access of action E).
func kindOf(e *Event) Kind {
	if e.Kind >= kindCount {
		return 0
	}
	return e.Kind
}

// outcomeOf is the stored outcome: an outcome nobody defined is not a
// success either.
func outcomeOf(e *Event) Outcome {
	switch e.Outcome {
	case OutcomeSuccess, OutcomeMinorFailure, OutcomeSeriousFailure, OutcomeMajorFailure:
		return e.Outcome
	}
	return OutcomeMajorFailure
}

// entityRefs are the references of entity.what that entity= indexes, in
// the order written.
func (r *resource) entityRefs(targets []string) []string {
	return refsOf(targets, r.domain, r.patientRef)
}

func refsOf(targets []string, refs ...string) []string {
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if typ, _, ok := strings.Cut(ref, "/"); ok && slices.Contains(targets, typ) {
			out = append(out, ref)
		}
	}
	return out
}

// compartment is the patient the row is filed under (patient_id): the
// first Patient among the entities, else a Patient acting, as
// fhir/search's AuditEvent compartment has it.
func (r *resource) compartment() any {
	for _, ref := range [...]string{r.domain, r.patientRef, r.e.Agent.Reference} {
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && id != "" {
			return id
		}
	}
	return nil
}

// rows appends e's rows to out: one per patient, or one when it names
// none. Each gets a new time-ordered id (UUIDv7, as the store's
// resources). e's strings are cleaned first (see clean), so that no
// client can make the COPY fail with what it sent.
func (l *layout) rows(e *Event, out []row) ([]row, error) {
	c := cleaned(e)
	patients := c.Patients
	if len(patients) == 0 {
		patients = []string{""}
	}
	a := &c.Agent
	agents := refsOf(l.agents, a.Reference) // shared by the rows: COPY only reads it
	isIP := false
	if a.Address != "" {
		_, err := netip.ParseAddr(a.Address)
		isIP = err == nil
	}
	recorded := c.Time.UTC().Truncate(time.Millisecond)
	detail := describe(c)
	for i := range patients {
		id, err := uuid.NewV7()
		if err != nil {
			return out, fmt.Errorf("audit: new id: %w", err)
		}
		r := newResource(c, patients[i])
		var version *string
		if r.domain != "" {
			version = &c.VersionID
		}
		out = append(out, row{
			id.String(), recorded, int16(kindOf(c)), int16(outcomeOf(c)), r.compartment(), agents, r.entityRefs(l.entities),
			opt(&a.Reference), opt(&a.Subject), opt(&a.Role), opt(&a.Issuer), opt(&a.Name), opt(&a.ClientID), opt(&a.TokenID), opt(&a.Address), isIP,
			opt(&r.domain), opt(version), opt(&patients[i]), opt(&c.Query), opt(&c.RequestID), opt(&detail), opt(&c.OutcomeDesc), l.instance,
		})
	}
	return out, nil
}

// opt is s, or NULL when it is nil or empty. A pointer goes into an
// interface without an allocation of its own; s must stay unchanged until
// the row is written.
func opt(s *string) any {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// cleaned is a copy of e whose strings PostgreSQL's text takes: valid
// UTF-8 without NUL. A client types some of them (a username at sign-in,
// a query string); a COPY refused for one of them would never succeed.
func cleaned(e *Event) *Event {
	c := *e
	for _, s := range []*string{
		&c.OutcomeDesc, &c.ResourceType, &c.ResourceID, &c.VersionID, &c.Query, &c.RequestID, &c.Detail,
		&c.Agent.Subject, &c.Agent.Role, &c.Agent.Reference, &c.Agent.Issuer, &c.Agent.Name,
		&c.Agent.ClientID, &c.Agent.TokenID, &c.Agent.Address,
	} {
		*s = clean(*s)
	}
	if slices.ContainsFunc(c.Patients, needsCleaning) {
		c.Patients = slices.Clone(c.Patients)
		for i := range c.Patients {
			c.Patients[i] = clean(c.Patients[i])
		}
	}
	return &c
}

func needsCleaning(s string) bool { return !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 }

// clean replaces invalid UTF-8 and NUL with U+FFFD.
func clean(s string) string {
	if !needsCleaning(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func describe(e *Event) string {
	d := e.Detail
	if e.PatientsLeftOut > 0 {
		if d != "" {
			d += "; "
		}
		d += fmt.Sprintf("%d more patients were touched than are recorded", e.PatientsLeftOut)
	}
	return d
}
