package audit

import (
	"strconv"
	"time"

	"github.com/vidda/vidda/internal/auth"
)

// Kind is what happened: a FHIR RESTful interaction, a sign-in, an export,
// a step of a video visit or a change of a device's credentials.
type Kind uint8

// The kinds of Event. A kind fixes the AuditEvent's type, subtype and
// action (see Kind.info).
const (
	KindRead Kind = iota + 1
	KindVRead
	// KindSearch is a type search, a compartment search, or a search entry
	// of a batch or transaction.
	KindSearch
	KindHistoryInstance
	KindHistoryType
	KindCreate
	KindUpdate
	KindDelete
	// KindTransaction and KindBatch are a Bundle that failed before its
	// entries were known; the entries of one that was read are recorded
	// each as its own interaction.
	KindTransaction
	KindBatch
	// KindOperation is a FHIR operation such as Observation/$lastn.
	KindOperation
	// KindAdminQuery is an admin's look at what the server holds outside
	// FHIR: /admin/deadletters, /metrics.
	KindAdminQuery
	// KindAdminChange is any other admin request outside FHIR: user
	// administration under /admin.
	KindAdminChange
	KindLogin
	KindLogout
	KindLoginFailed
	KindExport
	KindVideoJoin
	KindVideoAdmit
	KindVideoLeave
	KindDeviceCredentialAdd
	KindDeviceCredentialRotate
	KindDeviceCredentialDisable
	kindCount // keep last
)

// Code systems of the AuditEvent's codes.
const (
	SystemDICOM       = "http://dicom.nema.org/resources/ontology/DCM"
	SystemInteraction = "http://hl7.org/fhir/restful-interaction"
	// SystemVidda names vidda's own subtypes, where neither DICOM nor FHIR
	// has a code (video visits, device credentials).
	SystemVidda = "urn:vidda:audit-event"
	// SystemRole holds vidda's roles (admin, clinician, nurse, patient,
	// system, operator) as agent.role.
	SystemRole = "urn:vidda:role"
)

// The other code systems an AuditEvent uses (action, outcome, entity type
// and role, source type, participation type, BALP's entity type) appear
// only in its rendering, vidda_audit_json of migration 00016, and the
// codes of each kind in its audit_kind table.

// String names the kind ("read", "login-failed", ...) as audit_kind
// (migration 00016) does. That table holds what each kind reads as in an
// AuditEvent (DICOM or FHIR type, subtype, action) and the database
// renders it from there; a new kind is a new row of it.
func (k Kind) String() string {
	names := [...]string{ //nolint:gosec // names of kinds of access, not credentials
		KindRead: "read", KindVRead: "vread", KindSearch: "search",
		KindHistoryInstance: "history-instance", KindHistoryType: "history-type",
		KindCreate: "create", KindUpdate: "update", KindDelete: "delete",
		KindTransaction: "transaction", KindBatch: "batch", KindOperation: "operation",
		KindAdminQuery: "admin-query", KindAdminChange: "admin-change",
		KindLogin: "login", KindLogout: "logout", KindLoginFailed: "login-failed", KindExport: "export",
		KindVideoJoin: "video-join", KindVideoAdmit: "video-admit", KindVideoLeave: "video-leave",
		KindDeviceCredentialAdd:     "device-credential-add",
		KindDeviceCredentialRotate:  "device-credential-rotate",
		KindDeviceCredentialDisable: "device-credential-disable",
	}
	if k > 0 && int(k) < len(names) {
		return names[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Outcome is AuditEvent.outcome (R4 audit-event-outcome).
type Outcome uint8

// The outcomes.
const (
	// OutcomeSuccess: the access happened.
	OutcomeSuccess Outcome = 0
	// OutcomeMinorFailure: the request was refused as invalid or not
	// found (HTTP 4xx other than 401 and 403; a wrong password).
	OutcomeMinorFailure Outcome = 4
	// OutcomeSeriousFailure: access was denied (HTTP 401, 403) — what a
	// privacy officer searches for with outcome=8.
	OutcomeSeriousFailure Outcome = 8
	// OutcomeMajorFailure: the server failed (HTTP 5xx).
	OutcomeMajorFailure Outcome = 12
)

// OutcomeOfStatus maps an HTTP status to the outcome of the access.
func OutcomeOfStatus(status int) Outcome {
	switch {
	case status < 400:
		return OutcomeSuccess
	case status == 401 || status == 403:
		return OutcomeSeriousFailure
	case status < 500:
		return OutcomeMinorFailure
	}
	return OutcomeMajorFailure
}

// Agent is who acted, as far as the request says.
type Agent struct {
	// Subject is the token's or session's subject (a user id, or the
	// client id of a system client).
	Subject string
	// Role is the vidda role (admin, nurse, ...), or operator for a
	// command run on the server.
	Role string
	// Reference is the agent as a FHIR resource, when there is one:
	// "Practitioner/x", "Patient/x" or "Device/x". It is what
	// AuditEvent?agent= searches.
	Reference string
	// Issuer is the identity provider that vouched for Subject; "" for
	// vidda itself.
	Issuer string
	// Name is a human-readable name: the username typed at sign-in.
	Name string
	// ClientID is the OAuth client the token was issued to.
	ClientID string
	// TokenID is the token's jti (never the token), or a session id.
	TokenID string
	// Address is the network address the request came from.
	Address string
}

// AgentOf describes the principal p making a request from address addr;
// a nil p (no or a bad token) is just the address.
func AgentOf(p *auth.Principal, addr string) Agent {
	if p == nil {
		return Agent{Address: addr}
	}
	a := Agent{
		Subject: p.Subject, Role: string(p.Role), Issuer: p.Issuer,
		ClientID: p.ClientID, TokenID: p.TokenID, Address: addr,
	}
	switch {
	case p.PractitionerID != "":
		a.Reference = "Practitioner/" + p.PractitionerID
	case p.Role == auth.RolePatient && p.PatientID != "":
		a.Reference = "Patient/" + p.PatientID
	}
	return a
}

// MaxPatients caps the patients one Event names: one AuditEvent is stored
// per patient, and a search page holds at most 1,000 matches.
const MaxPatients = 1000

// Event is one access, as the code that saw it describes it.
type Event struct {
	// Time is when it happened; Record sets it when zero.
	Time time.Time
	Kind Kind
	// Outcome is how it ended; OutcomeDesc says why it failed, briefly
	// (an HTTP status, a sign-in failure reason), never with health data.
	Outcome     Outcome
	OutcomeDesc string
	Agent       Agent
	// ResourceType, ResourceID and VersionID name the resource acted on,
	// as far as known (ResourceType alone for a search).
	ResourceType string
	ResourceID   string
	VersionID    string
	// Query is what a search asked, "Observation?patient=x&_count=50"; it
	// is stored base64-encoded in entity.query (R4 AuditEvent.entity.query).
	Query string
	// Patients are the distinct patients whose data the access touched
	// (at most MaxPatients); one AuditEvent is stored for each.
	Patients []string
	// PatientsLeftOut counts patients beyond MaxPatients, not named.
	PatientsLeftOut int
	// RequestID is the request's X-Request-Id.
	RequestID string
	// Detail describes the request in a few words: "entry 3 of a
	// transaction", "GET /metrics".
	Detail string
}
