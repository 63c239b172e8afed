package audit

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/vidda/vidda/fhir/search"
)

// auditType is the resource type and, lower-cased, the table.
const auditType = "AuditEvent"

// row is one AuditEvent ready for COPY, in the order of layout.cols.
type row []any

// layout is how AuditEvents become rows of the auditevent table. The
// columns and their values follow the AuditEvent search parameters of
// fhir/search, so that a search finds a row exactly as it would find one
// the store had indexed; the tests check every kind against the registry's
// own extraction. Building the JSON and the values directly costs a small
// part of what decoding and walking a golang-fhir-models struct would, on
// the writer's goroutine but on the same CPUs as the requests.
type layout struct {
	cols     []string
	values   []func(*resource, row) row // per search parameter, in cols order
	agents   []string                   // types agent= indexes
	entities []string                   // types entity= indexes
	instance string                     // source.observer
	// The token keys of each kind's type, subtype and action and of each
	// outcome never change: made once, and boxed once, as a row holds
	// them (COPY only reads them).
	typeKeys, subtypeKeys, actionKeys [kindCount]any
	outcomeKeys                       map[string]any
}

// newLayout reads the AuditEvent parameters from params. A parameter it
// does not know how to fill is an error: the writer would store rows that
// searches on it could never find.
func newLayout(params *search.Registry, instance string) (*layout, error) {
	def := params.Definition(auditType)
	if def == nil {
		return nil, fmt.Errorf("audit: the search registry has no %s", auditType)
	}
	l := &layout{
		cols:     []string{"id", "version_id", "last_updated", "patient_id", "content"},
		instance: instance, outcomeKeys: map[string]any{},
	}
	for _, p := range def.Params {
		if p.Shared() {
			continue
		}
		var fill func(*resource, row) row
		switch {
		case p.Name == "date" && p.Kind == search.Date:
			fill = func(r *resource, v row) row { return append(v, r.recorded, r.recorded.Add(time.Millisecond)) }
		case p.Name == "type" && p.Kind == search.Token:
			for k := range kindCount {
				l.typeKeys[k] = tokenKeys(k.info().typ.system, k.info().typ.code)
			}
			fill = func(r *resource, v row) row { return append(v, l.typeKeys[r.kind()]) }
		case p.Name == "subtype" && p.Kind == search.Token:
			for k := range kindCount {
				l.subtypeKeys[k] = tokenKeys(k.info().subtype.system, k.info().subtype.code)
			}
			fill = func(r *resource, v row) row { return append(v, l.subtypeKeys[r.kind()]) }
		case p.Name == "action" && p.Kind == search.Token:
			for k := range kindCount {
				l.actionKeys[k] = tokenKeys(p.System, string(k.info().action))
			}
			fill = func(r *resource, v row) row { return append(v, l.actionKeys[r.kind()]) }
		case p.Name == "outcome" && p.Kind == search.Token:
			for _, o := range []string{"0", "4", "8", "12"} {
				l.outcomeKeys[o] = tokenKeys(p.System, o)
			}
			fill = func(r *resource, v row) row { return append(v, l.outcomeKeys[r.outcome()]) }
		case p.Name == "agent" && p.Kind == search.Reference:
			l.agents = p.Targets
			fill = func(r *resource, v row) row { return append(v, r.agentRefs(l.agents)) }
		case p.Name == "entity" && p.Kind == search.Reference:
			l.entities = p.Targets
			fill = func(r *resource, v row) row { return append(v, r.entityRefs(l.entities)) }
		default:
			return nil, fmt.Errorf("audit: no way to index AuditEvent search parameter %q (%s)", p.Name, p.Kind)
		}
		for _, c := range p.Columns() {
			l.cols = append(l.cols, c.Name)
		}
		l.values = append(l.values, fill)
	}
	return l, nil
}

// tokenKeys are search.TokenKeys(system, code), none for no code at all.
func tokenKeys(system, code string) []string {
	if system == "" && code == "" {
		return []string{}
	}
	return search.TokenKeys(system, code)
}

// resource is one AuditEvent being built: an Event about at most one
// patient.
type resource struct {
	e        *Event
	info     kindInfo
	recorded time.Time
	patient  string // "" for none
	// domain and patientRef are the entities' references, "" for none.
	domain, patientRef string
}

func newResource(e *Event, patient string) resource {
	r := resource{e: e, info: e.Kind.info(), recorded: e.Time.UTC().Truncate(time.Millisecond), patient: patient}
	if e.ResourceType != "" && e.ResourceID != "" && (e.ResourceType != "Patient" || e.ResourceID != patient) {
		r.domain = e.ResourceType + "/" + e.ResourceID
	}
	if patient != "" {
		r.patientRef = "Patient/" + patient
	}
	return r
}

// kind is the event's kind, or 0 for one outside the table (whose info
// is the fallback of Kind.info).
func (r *resource) kind() Kind {
	if r.e.Kind >= kindCount {
		return 0
	}
	return r.e.Kind
}

func (r *resource) outcome() string {
	switch r.e.Outcome {
	case OutcomeSuccess:
		return "0"
	case OutcomeMinorFailure:
		return "4"
	case OutcomeSeriousFailure:
		return "8"
	case OutcomeMajorFailure:
	}
	return "12" // an outcome nobody defined is not a success either
}

// agentRefs are the references of agent.who that the agent parameter
// indexes (the user's; the client has only an identifier).
func (r *resource) agentRefs(targets []string) []string {
	return refsOf(targets, r.e.Agent.Reference)
}

// entityRefs are the references of entity.what, in the order written.
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
func (r *resource) compartment() *string {
	for _, ref := range [...]string{r.domain, r.patientRef, r.e.Agent.Reference} {
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && id != "" {
			return &id
		}
	}
	return nil
}

// rows turns e into its rows: one per patient, or one when it names none.
// Each gets a new time-ordered id (UUIDv7, as the store's resources).
func (l *layout) rows(e *Event, at time.Time, out []row) ([]row, error) {
	patients := e.Patients
	if len(patients) == 0 {
		patients = []string{""}
	}
	for _, p := range patients {
		id, err := uuid.NewV7()
		if err != nil {
			return out, fmt.Errorf("audit: new id: %w", err)
		}
		r := newResource(e, p)
		ids := id.String()
		vals := make(row, 0, len(l.cols))
		vals = append(vals, ids, int64(1), at, r.compartment(), l.content(&r, ids, at))
		for _, fill := range l.values {
			vals = fill(&r, vals)
		}
		out = append(out, vals)
	}
	return out, nil
}

// appendInstant appends t as a JSON string holding a FHIR instant with
// milliseconds.
func appendInstant(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, '"')
}

// content is the AuditEvent's JSON.
func (l *layout) content(r *resource, id string, at time.Time) []byte {
	e := r.e
	b := make([]byte, 0, 2048)
	b = append(b, `{"resourceType":"AuditEvent","id":`...)
	b = appendString(b, id)
	b = append(b, `,"meta":{"versionId":"1","lastUpdated":`...)
	b = appendInstant(b, at)
	b = append(b, `},"type":`...)
	b = appendCoding(b, r.info.typ)
	if r.info.subtype.code != "" {
		b = append(b, `,"subtype":[`...)
		b = appendCoding(b, r.info.subtype)
		b = append(b, ']')
	}
	b = append(b, `,"action":"`...)
	b = append(b, r.info.action)
	b = append(b, `","recorded":`...)
	b = appendInstant(b, r.recorded)
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.outcome())
	if e.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = appendString(b, e.OutcomeDesc)
	}
	b = append(b, `,"agent":[`...)
	b = appendUser(b, r)
	if e.Agent.ClientID != "" {
		b = append(b, `,{"type":{"coding":[`...)
		b = appendCoding(b, coding{SystemDICOM, "110150", ""})
		b = append(b, `]},"who":{"identifier":{"system":"urn:vidda:oauth-client","value":`...)
		b = appendString(b, e.Agent.ClientID)
		b = append(b, `}},"requestor":false}`...)
	}
	b = append(b, `],"source":{"observer":{"identifier":{"system":"urn:vidda:instance","value":`...)
	b = appendString(b, l.instance)
	b = append(b, `}},"type":[`...)
	b = appendCoding(b, coding{systemSourceType, "4", ""}) // Application Server
	b = append(b, `]}`...)
	b = appendEntities(b, r)
	return append(b, '}')
}

func appendUser(b []byte, r *resource) []byte {
	a := r.e.Agent
	b = append(b, '{')
	if r.info.typ.code != "110114" { // not User Authentication
		// BALP: the user receives data (IRCP) or authors it (AUT).
		c := coding{systemParticipant, "IRCP", ""} // information recipient
		if r.info.action == 'C' || r.info.action == 'U' || r.info.action == 'D' {
			c = coding{systemParticipant, "AUT", ""} // author (originator)
		}
		b = append(b, `"type":{"coding":[`...)
		b = appendCoding(b, c)
		b = append(b, `]},`...)
	}
	if a.Role != "" {
		b = append(b, `"role":[{"coding":[`...)
		b = appendCoding(b, coding{SystemRole, a.Role, ""})
		b = append(b, `]}],`...)
	}
	if a.Reference != "" || a.Subject != "" {
		b = append(b, `"who":{`...)
		if a.Reference != "" {
			b = append(b, `"reference":`...)
			b = appendString(b, a.Reference)
			if a.Subject != "" {
				b = append(b, ',')
			}
		}
		if a.Subject != "" {
			system := a.Issuer
			if system == "" {
				system = "urn:vidda:subject"
			}
			b = append(b, `"identifier":{"system":`...)
			b = appendString(b, system)
			b = append(b, `,"value":`...)
			b = appendString(b, a.Subject)
			b = append(b, '}')
		}
		b = append(b, `},`...)
	}
	if a.Name != "" {
		b = append(b, `"name":`...)
		b = appendString(b, a.Name)
		b = append(b, ',')
	}
	b = append(b, `"requestor":true`...)
	if a.TokenID != "" {
		// BALP: the token's jti identifies the authorization used.
		b = append(b, `,"policy":[`...)
		b = appendString(b, a.TokenID)
		b = append(b, ']')
	}
	if a.Address != "" {
		kind := "1" // machine name
		if _, err := netip.ParseAddr(a.Address); err == nil {
			kind = "2" // IP address
		}
		b = append(b, `,"network":{"address":`...)
		b = appendString(b, a.Address)
		b = append(b, `,"type":"`...)
		b = append(b, kind...)
		b = append(b, `"}`...)
	}
	return append(b, '}')
}

func appendEntities(b []byte, r *resource) []byte {
	e := r.e
	n := 0
	next := func() {
		if n == 0 {
			b = append(b, `,"entity":[`...)
		} else {
			b = append(b, ',')
		}
		n++
	}
	if ref := r.domain; ref != "" {
		next()
		if e.VersionID != "" {
			ref += "/_history/" + e.VersionID
		}
		b = append(b, `{"what":{"reference":`...)
		b = appendString(b, ref)
		b = append(b, `},"type":`...)
		b = appendCoding(b, coding{systemEntityType, "2", ""}) // System Object
		b = append(b, `,"role":`...)
		b = appendCoding(b, coding{systemObjectRole, "4", ""}) // Domain Resource
		b = append(b, '}')
	}
	if ref := r.patientRef; ref != "" {
		next()
		b = append(b, `{"what":{"reference":`...)
		b = appendString(b, ref)
		b = append(b, `},"type":`...)
		b = appendCoding(b, coding{systemEntityType, "1", ""}) // Person
		b = append(b, `,"role":`...)
		b = appendCoding(b, coding{systemObjectRole, "1", ""}) // Patient
		b = append(b, '}')
	}
	if e.Query != "" {
		next()
		b = append(b, `{"type":`...)
		b = appendCoding(b, coding{systemEntityType, "2", ""}) // System Object
		b = append(b, `,"role":`...)
		b = appendCoding(b, coding{systemObjectRole, "24", ""}) // Query
		b = append(b, `,"query":"`...)
		b = base64.StdEncoding.AppendEncode(b, []byte(e.Query))
		b = append(b, `"}`...)
	}
	if e.RequestID != "" || e.Detail != "" || e.PatientsLeftOut > 0 {
		next()
		b = append(b, `{`...)
		if e.RequestID != "" {
			b = append(b, `"what":{"identifier":{"value":`...)
			b = appendString(b, e.RequestID)
			b = append(b, `}},`...)
		}
		b = append(b, `"type":`...)
		b = appendCoding(b, coding{systemBALPEntity, "XrequestId", ""})
		if d := describe(e); d != "" {
			b = append(b, `,"description":`...)
			b = appendString(b, d)
		}
		b = append(b, '}')
	}
	if n > 0 {
		b = append(b, ']')
	}
	return b
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

func appendCoding(b []byte, c coding) []byte {
	b = append(b, `{"system":`...)
	b = appendString(b, c.system)
	b = append(b, `,"code":`...)
	b = appendString(b, c.code)
	if c.display != "" {
		b = append(b, `,"display":`...)
		b = appendString(b, c.display)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 is replaced, so
// that what a client typed (a username) cannot break the document.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default: // other control characters, and <>& as encoding/json does
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
