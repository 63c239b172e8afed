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
// only in its rendering, vidda_audit_json of migration 00016.

// coding is one code of a code system.
type coding struct{ system, code, display string }

// kindInfo is how a Kind reads as an AuditEvent.
type kindInfo struct {
	name    string // for logs and tests
	typ     coding
	subtype coding // system "" for none
	action  byte   // C, R, U, D or E
}

// The DICOM event types (DICOM PS3.16 CID 400) and subtypes used.
func dicom(code, display string) coding { return coding{SystemDICOM, code, display} }

func interaction(code string) coding { return coding{SystemInteraction, code, ""} }

func vidda(code, display string) coding { return coding{SystemVidda, code, display} }

// info is how k reads as an AuditEvent.
func (k Kind) info() kindInfo {
	var (
		patientRecord = dicom("110110", "Patient Record")
		query         = dicom("110112", "Query")
		userAuth      = dicom("110114", "User Authentication")
		securityAttrs = dicom("110137", "User Security Attributes Changed")
		videoVisit    = vidda("video-visit", "Video visit")
	)
	switch k {
	case KindRead:
		return kindInfo{"read", patientRecord, interaction("read"), 'R'}
	case KindVRead:
		return kindInfo{"vread", patientRecord, interaction("vread"), 'R'}
	case KindSearch:
		return kindInfo{"search", query, interaction("search-type"), 'E'}
	case KindHistoryInstance:
		return kindInfo{"history-instance", patientRecord, interaction("history-instance"), 'R'}
	case KindHistoryType:
		return kindInfo{"history-type", query, interaction("history-type"), 'R'}
	case KindCreate:
		return kindInfo{"create", patientRecord, interaction("create"), 'C'}
	case KindUpdate:
		return kindInfo{"update", patientRecord, interaction("update"), 'U'}
	case KindDelete:
		return kindInfo{"delete", patientRecord, interaction("delete"), 'D'}
	case KindTransaction:
		return kindInfo{"transaction", patientRecord, interaction("transaction"), 'E'}
	case KindBatch:
		return kindInfo{"batch", patientRecord, interaction("batch"), 'E'}
	case KindOperation:
		return kindInfo{"operation", query, interaction("operation"), 'E'}
	case KindAdminQuery:
		return kindInfo{"admin-query", query, coding{}, 'E'}
	case KindAdminChange:
		return kindInfo{"admin-change", securityAttrs, coding{}, 'E'}
	case KindLogin:
		return kindInfo{"login", userAuth, dicom("110122", "Login"), 'E'}
	case KindLogout:
		return kindInfo{"logout", userAuth, dicom("110123", "Logout"), 'E'}
	case KindLoginFailed:
		return kindInfo{"login-failed", userAuth, dicom("110122", "Login"), 'E'}
	case KindExport:
		return kindInfo{"export", dicom("110106", "Export"), interaction("operation"), 'E'}
	case KindVideoJoin:
		return kindInfo{"video-join", videoVisit, vidda("join", "Joined a video visit"), 'E'}
	case KindVideoAdmit:
		return kindInfo{"video-admit", videoVisit, vidda("admit", "Admitted a patient from the waiting room"), 'E'}
	case KindVideoLeave:
		return kindInfo{"video-leave", videoVisit, vidda("leave", "Left a video visit"), 'E'}
	case KindDeviceCredentialAdd:
		return kindInfo{"device-credential-add", securityAttrs, vidda("device-credential-add", "Device credentials issued"), 'C'}
	case KindDeviceCredentialRotate:
		return kindInfo{"device-credential-rotate", securityAttrs, vidda("device-credential-rotate", "Device credentials rotated"), 'U'}
	case KindDeviceCredentialDisable:
		return kindInfo{"device-credential-disable", securityAttrs, vidda("device-credential-disable", "Device credentials disabled"), 'D'}
	case kindCount:
	}
	return kindInfo{name: "kind(" + strconv.Itoa(int(k)) + ")", typ: patientRecord, action: 'E'}
}

// String names the kind ("read", "login-failed", ...).
func (k Kind) String() string { return k.info().name }

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
