package auth

import "fmt"

// Interaction is a FHIR RESTful interaction (R4 §3.1.0).
type Interaction string

// The interactions Decide rules on.
const (
	InteractionRead    Interaction = "read"
	InteractionVRead   Interaction = "vread"
	InteractionSearch  Interaction = "search"
	InteractionHistory Interaction = "history"
	InteractionCreate  Interaction = "create"
	InteractionUpdate  Interaction = "update"
	InteractionDelete  Interaction = "delete"
)

// Action is what a request wants to do.
type Action struct {
	// Interaction is the FHIR interaction.
	Interaction Interaction
	// ResourceType is the FHIR type acted on; "" for a system-wide
	// interaction, which only a "*" scope covers.
	ResourceType string
	// InPatientCompartment says whether resources of ResourceType can
	// belong to a patient's compartment (R4 CompartmentDefinition
	// "patient"), Patient itself included. The caller knows its types;
	// Decide only reads the answer.
	InPatientCompartment bool
}

// Decision is an allowed Action's condition.
type Decision struct {
	// PatientID, when not empty, restricts the interaction to that
	// patient's compartment: the store filters reads and searches by it,
	// and a write must leave the resource inside it. The caller MUST
	// honour it.
	PatientID string
	// CareOf, when not empty ("Practitioner/<id>"), restricts resources of
	// the types in the patient compartment to the compartments of the
	// patients that practitioner cares for (CareTeam membership, or a
	// PractitionerRole at the Organization managing the patient). The
	// caller MUST honour it; types outside the compartment are not
	// restricted by it.
	CareOf string
}

// Decide is vidda's one policy: it rules whether p may perform a, and on
// what condition. A nil p wraps ErrUnauthenticated; a denial wraps
// ErrForbidden.
//
// p needs a scope granting the interaction's permissions on a.ResourceType
// (or "*"), in a context its role may use (see rowFor). A grant through a
// patient/ scope binds the interaction to p.PatientID's compartment: types
// outside that compartment are denied, and so is a principal without a
// patient. When several scopes grant, the least restricted wins.
func Decide(p *Principal, a Action) (Decision, error) {
	if p == nil {
		return Decision{}, fmt.Errorf("%w: no credentials", ErrUnauthenticated)
	}
	need, err := requiredPerms(a.Interaction)
	if err != nil {
		return Decision{}, err
	}
	if a.ResourceType == auditType {
		if err := decideAudit(p, need); err != nil {
			return Decision{}, err
		}
	}
	if a.ResourceType == subscriptionType && p.Role != RoleAdmin && p.Role != RoleSystem {
		// A webhook is a standing export of data to another system, which
		// a nurse's or patient's token must not set up, whatever its
		// scopes; and channel.header may hold the receiver's secret.
		return Decision{}, fmt.Errorf("%w: only system clients and admins reach Subscriptions", ErrForbidden)
	}
	row := rowFor(p.Role)
	best := deny
	for _, sc := range p.Scopes {
		if sc.Allows(a.ResourceType, need) {
			best = max(best, row.limitFor(sc.Context))
		}
	}
	switch best {
	case unrestricted:
		return Decision{}, nil
	case careTeam:
		// A staff token without a practitioner is an operator's token
		// (vidda token, which needs the database anyway): clinic-wide.
		// Creating a Patient is not bound to a care team: the new patient
		// has none yet.
		if p.PractitionerID == "" || (a.Interaction == InteractionCreate && a.ResourceType == "Patient") {
			return Decision{}, nil
		}
		return Decision{CareOf: "Practitioner/" + p.PractitionerID}, nil
	case patientCompartment:
		if p.PatientID == "" {
			return Decision{}, fmt.Errorf("%w: no patient in context", ErrForbidden)
		}
		if !a.InPatientCompartment {
			return Decision{}, fmt.Errorf("%w: %s is outside the patient compartment", ErrForbidden, typeName(a.ResourceType))
		}
		return Decision{PatientID: p.PatientID}, nil
	case deny:
	}
	return Decision{}, fmt.Errorf("%w: no scope grants %s on %s", ErrForbidden, a.Interaction, typeName(a.ResourceType))
}

// requiredPerms maps an interaction to the SMART v2 permissions it needs.
// History needs both r and s: Action does not say whether it is instance
// history (r) or type/system history (s), so it takes the stricter.
func requiredPerms(i Interaction) (Perms, error) {
	switch i {
	case InteractionRead, InteractionVRead:
		return PermRead, nil
	case InteractionSearch:
		return PermSearch, nil
	case InteractionHistory:
		return PermRead | PermSearch, nil
	case InteractionCreate:
		return PermCreate, nil
	case InteractionUpdate:
		return PermUpdate, nil
	case InteractionDelete:
		return PermDelete, nil
	}
	return 0, fmt.Errorf("%w: unknown interaction %q", ErrForbidden, truncate(string(i)))
}

// limit is what a grant through one scope context permits. Values are
// ordered from most to least restricted; the zero value grants nothing.
type limit uint8

const (
	// deny: scopes of this context count for nothing.
	deny limit = iota
	// patientCompartment: only inside the principal's patient compartment.
	patientCompartment
	// careTeam: the compartments of the patients the principal's
	// practitioner cares for, and every resource outside the compartment.
	careTeam
	// unrestricted: wherever the scope's type and permissions reach.
	unrestricted
)

// policyRow is one role's row of the policy table: the limit a grant
// through each scope context carries.
type policyRow struct {
	patient, user, system limit
}

func (r policyRow) limitFor(c ScopeContext) limit {
	switch c {
	case ContextPatient:
		return r.patient
	case ContextUser:
		return r.user
	case ContextSystem:
		return r.system
	}
	return deny
}

// rowFor is the policy table:
//
//	role       patient/ scopes      user/ scopes    system/ scopes
//	patient    own compartment      -               -
//	nurse      launch compartment   care team       -
//	clinician  launch compartment   care team       -
//	admin      launch compartment   unrestricted    -
//	system     -                    -               unrestricted
//
// AuditEvents are outside the table: see decideAudit.
//
// An unknown role grants nothing.
func rowFor(r Role) policyRow {
	switch r {
	case RolePatient:
		return policyRow{patient: patientCompartment, user: deny, system: deny}
	case RoleNurse:
		return policyRow{patient: patientCompartment, user: careTeam, system: deny}
	case RoleClinician:
		return policyRow{patient: patientCompartment, user: careTeam, system: deny}
	case RoleAdmin:
		return policyRow{patient: patientCompartment, user: unrestricted, system: deny}
	case RoleSystem:
		return policyRow{patient: deny, user: deny, system: unrestricted}
	}
	return policyRow{}
}

func typeName(t string) string {
	if t == "" {
		return "all types"
	}
	return truncate(t)
}

// auditType is the resource type of the audit trail.
const auditType = "AuditEvent"

// subscriptionType is the resource type of webhooks to other systems.
const subscriptionType = "Subscription"

// decideAudit rules on AuditEvents before the scopes do: vidda writes them
// itself and nobody changes them through the API, and only admins and
// system clients (with a scope that grants it) read them.
func decideAudit(p *Principal, need Perms) error {
	if need&(PermCreate|PermUpdate|PermDelete) != 0 {
		return fmt.Errorf("%w: AuditEvents are written by vidda only", ErrForbidden)
	}
	if p.Role != RoleAdmin && p.Role != RoleSystem {
		return fmt.Errorf("%w: only admins read AuditEvents", ErrForbidden)
	}
	return nil
}
