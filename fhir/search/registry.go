package search

import (
	"fmt"
	"reflect"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Code systems of the plain codes some parameters index.
const (
	genderSystem            = "http://hl7.org/fhir/administrative-gender"
	deviceStatusSystem      = "http://hl7.org/fhir/device-status"
	observationStatusSystem = "http://hl7.org/fhir/observation-status"
	careTeamStatusSystem    = "http://hl7.org/fhir/care-team-status"
	auditActionSystem       = "http://hl7.org/fhir/audit-event-action"
	auditOutcomeSystem      = "http://hl7.org/fhir/audit-event-outcome"
	groupTypeSystem         = "http://hl7.org/fhir/group-type"
	appointmentStatusSystem = "http://hl7.org/fhir/appointmentstatus"
	encounterStatusSystem   = "http://hl7.org/fhir/encounter-status"
	taskStatusSystem        = "http://hl7.org/fhir/task-status"
	requestPrioritySystem   = "http://hl7.org/fhir/request-priority"
	requestStatusSystem     = "http://hl7.org/fhir/request-status"
	requestIntentSystem     = "http://hl7.org/fhir/request-intent"
	goalStatusSystem        = "http://hl7.org/fhir/goal-status"
)

// definitions declares every search parameter Vidda serves, per type, with
// the names, types and expressions of the R4 specification. Adding a
// parameter is one entry here plus its column(s) in a migration (see
// Param.Columns; the store's schema test lists what is missing).
func definitions() []*Definition {
	identifier := func(typ, doc string) *Param {
		return &Param{Name: "identifier", Kind: Token, Expression: typ + ".identifier", Column: "identifier", Doc: doc}
	}
	name := func(typ, doc string) *Param {
		return &Param{Name: "name", Kind: String, Expression: typ + ".name", Column: "name", Doc: doc}
	}
	return []*Definition{
		{
			Type: "Patient",
			Params: []*Param{
				identifier("Patient", "A patient identifier"),
				name("Patient", "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text"),
				{Name: "family", Kind: String, Expression: "Patient.name.family", Column: "family", Doc: "A portion of the family name of the patient"},
				{Name: "given", Kind: String, Expression: "Patient.name.given", Column: "given", Doc: "A portion of the given name of the patient"},
				{Name: "birthdate", Kind: Date, Expression: "Patient.birthDate", Column: "birthdate", Doc: "The patient's date of birth"},
				{Name: "gender", Kind: Token, Expression: "Patient.gender", Column: "gender", System: genderSystem, Doc: "Gender of the patient"},
				{
					Name: "general-practitioner", Kind: Reference, Expression: "Patient.generalPractitioner", Column: "general_practitioner",
					Targets: []string{"Practitioner", "Organization", "PractitionerRole"}, Doc: "Patient's nominated general practitioner, not the organization that manages the record",
				},
				{Name: "active", Kind: Token, Expression: "Patient.active", Column: "active", Doc: "Whether the patient record is active"},
				{Name: "organization", Kind: Reference, Expression: "Patient.managingOrganization", Column: "organization", Targets: []string{"Organization"}, Doc: "The organization that is the custodian of the patient record"},
			},
			Compartment: func(_ any, id string) string { return id },
		},
		{
			Type: "Practitioner",
			Params: []*Param{
				identifier("Practitioner", "A practitioner's Identifier"),
				name("Practitioner", "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text"),
			},
		},
		{
			Type: "Organization",
			Params: []*Param{
				identifier("Organization", "Any identifier for the organization (not the accreditation issuer's identifier)"),
				{Name: "name", Kind: String, Expression: "Organization.name | Organization.alias", Column: "name", Doc: "A portion of the organization's name or alias"},
			},
		},
		{
			Type: "Device",
			Params: []*Param{
				identifier("Device", "Instance id from manufacturer, owner, and others"),
				{Name: "patient", Kind: Reference, Expression: "Device.patient", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Patient information, if the resource is affixed to a person"},
				{Name: "type", Kind: Token, Expression: "Device.type", Column: "type", Doc: "The type of the device"},
				{Name: "status", Kind: Token, Expression: "Device.status", Column: "status", System: deviceStatusSystem, Doc: "active | inactive | entered-in-error | unknown"},
				{Name: "url", Kind: URI, Expression: "Device.url", Column: "url", Doc: "Network address to contact device"},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Device).Patient) },
		},
		{
			// Not in any compartment (R4): written by system clients and
			// admins only, through fhir/subscription.
			Type: "Subscription",
			Params: []*Param{
				{Name: "status", Kind: Token, Expression: "Subscription.status", Column: "status", System: "http://hl7.org/fhir/subscription-status", Doc: "The current state of the subscription"},
				{Name: "type", Kind: Token, Expression: "Subscription.channel.type", Column: "type", System: "http://hl7.org/fhir/subscription-channel-type", Doc: "The type of channel for the sent notifications"},
				{Name: "url", Kind: URI, Expression: "Subscription.channel.endpoint", Column: "url", Doc: "The uri that will receive the notifications"},
				{Name: "criteria", Kind: String, Expression: "Subscription.criteria", Column: "criteria", Doc: "The search rules used to determine when to send a notification"},
			},
		},
		{
			Type: "Observation",
			Params: []*Param{
				{Name: "patient", Kind: Reference, Expression: "Observation.subject", Column: "patient_id", Targets: []string{"Patient"}, Doc: "The subject that the observation is about (if patient)"},
				{
					Name: "subject", Kind: Reference, Expression: "Observation.subject", Column: "subject",
					Targets: []string{"Patient", "Group", "Device", "Location"}, Doc: "The subject that the observation is about",
				},
				{Name: "code", Kind: Token, Expression: "Observation.code", Column: "code", Doc: "The code of the observation type"},
				{Name: "category", Kind: Token, Expression: "Observation.category", Column: "category", Doc: "The classification of the type of observation"},
				{Name: "status", Kind: Token, Expression: "Observation.status", Column: "status", System: observationStatusSystem, Doc: "The status of the observation"},
				{Name: "device", Kind: Reference, Expression: "Observation.device", Column: "device", Targets: []string{"Device", "DeviceMetric"}, Doc: "The Device that generated the observation data."},
				{Name: "identifier", Kind: Token, Expression: "Observation.identifier", Column: "identifier", Doc: "The unique id for a particular observation"},
				{
					Name: "date", Kind: Date, Expression: "Observation.effective", Column: "date",
					Doc: "Obtained date/time. If the obtained element is a period, a date that falls in the period",
				},
				{
					Name: "value-quantity", Kind: Quantity, Expression: "Observation.valueQuantity", Column: "value_quantity",
					Doc: "The value of the observation, if the value is a Quantity, or a SampledData (just search on the bounds of the values in sampled data)",
				},
				{
					Name: "combo-code", Kind: Token, Expression: "Observation.code | Observation.component.code", Column: "combo_code",
					Doc: "The code of the observation type or component type",
				},
				{Name: "component-code", Kind: Token, Expression: "Observation.component.code", Column: "component_code", Doc: "The component code of the observation type"},
				{Name: "encounter", Kind: Reference, Expression: "Observation.encounter", Column: "encounter", Targets: []string{"Encounter"}, Doc: "Encounter related to the observation"},
				{
					Name: "based-on", Kind: Reference, Expression: "Observation.basedOn", Column: "based_on",
					Targets: []string{"CarePlan", "DeviceRequest", "ImmunizationRecommendation", "MedicationRequest", "NutritionOrder", "ServiceRequest"},
					Doc:     "Reference to the service request.",
				},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Observation).Subject) },
		},
		{
			Type: "PractitionerRole",
			Params: []*Param{
				identifier("PractitionerRole", "A practitioner's Identifier"),
				{Name: "practitioner", Kind: Reference, Expression: "PractitionerRole.practitioner", Column: "practitioner", Targets: []string{"Practitioner"}, Doc: "Practitioner that is able to provide the defined services for the organization"},
				{Name: "organization", Kind: Reference, Expression: "PractitionerRole.organization", Column: "organization", Targets: []string{"Organization"}, Doc: "The identity of the organization the practitioner represents / acts on behalf of"},
				{Name: "role", Kind: Token, Expression: "PractitionerRole.code", Column: "role", Doc: "The practitioner can perform this role at for the organization"},
				{Name: "active", Kind: Token, Expression: "PractitionerRole.active", Column: "active", Doc: "Whether this practitioner role record is in active use"},
			},
		},
		{
			Type: "CareTeam",
			Params: []*Param{
				identifier("CareTeam", "External Ids for this team"),
				{Name: "patient", Kind: Reference, Expression: "CareTeam.subject", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Who care team is for"},
				{Name: "subject", Kind: Reference, Expression: "CareTeam.subject", Column: "subject", Targets: []string{"Patient", "Group"}, Doc: "Who care team is for"},
				{Name: "status", Kind: Token, Expression: "CareTeam.status", Column: "status", System: careTeamStatusSystem, Doc: "proposed | active | suspended | inactive | entered-in-error"},
				{Name: "category", Kind: Token, Expression: "CareTeam.category", Column: "category", Doc: "Type of team"},
				{
					Name: "participant", Kind: Reference, Expression: "CareTeam.participant.member", Column: "participant",
					Targets: []string{"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Organization", "CareTeam"}, Doc: "Who is involved",
				},
				{Name: "date", Kind: Date, Expression: "CareTeam.period", Column: "date", Doc: "Time period team covers"},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.CareTeam).Subject) },
		},
		{
			Type: "AuditEvent",
			Params: []*Param{
				{Name: "date", Kind: Date, Expression: "AuditEvent.recorded", Column: "date", Doc: "Time when the event was recorded"},
				{Name: "type", Kind: Token, Expression: "AuditEvent.type", Column: "type", Doc: "Type/identifier of event"},
				{Name: "subtype", Kind: Token, Expression: "AuditEvent.subtype", Column: "subtype", Doc: "More specific type/id for the event"},
				{Name: "action", Kind: Token, Expression: "AuditEvent.action", Column: "action", System: auditActionSystem, Doc: "Type of action performed during the event"},
				{Name: "outcome", Kind: Token, Expression: "AuditEvent.outcome", Column: "outcome", System: auditOutcomeSystem, Doc: "Whether the event succeeded or failed"},
				{
					Name: "agent", Kind: Reference, Expression: "AuditEvent.agent.who", Column: "agent",
					Targets: []string{"Practitioner", "PractitionerRole", "Organization", "Device", "Patient", "RelatedPerson"}, Doc: "Identifier of who",
				},
				{
					Name: "entity", Kind: Reference, Expression: "AuditEvent.entity.what", Column: "entity",
					Targets: auditEntityTypes(), Doc: "Specific instance of resource",
				},
				{Name: "patient", Kind: Reference, Expression: "AuditEvent.entity.what", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Identifier of the patient whose data the event concerns"},
			},
			Compartment: auditPatient,
		},
		{
			// Not in the patient compartment: a Group has many patients.
			Type: "Group",
			Params: []*Param{
				identifier("Group", "Unique id"),
				{
					Name: "member", Kind: Reference, Expression: "Group.member.entity", Column: "member",
					Targets: []string{"Patient", "Practitioner", "PractitionerRole", "Device", "Medication", "Substance", "Group"}, Doc: "Reference to the group member",
				},
				{Name: "type", Kind: Token, Expression: "Group.type", Column: "type", System: groupTypeSystem, Doc: "The type of resources the group contains"},
				{Name: "actual", Kind: Token, Expression: "Group.actual", Column: "actual", Doc: "Descriptive or actual"},
				{Name: "code", Kind: Token, Expression: "Group.code", Column: "code", Doc: "The kind of resources contained"},
			},
		},
		{
			Type: "Appointment",
			Params: []*Param{
				identifier("Appointment", "An Identifier of the Appointment"),
				{Name: "patient", Kind: Reference, Expression: "Appointment.participant.actor", Column: "patient_id", Targets: []string{"Patient"}, Doc: "One of the individuals of the appointment is this patient"},
				{
					Name: "actor", Kind: Reference, Expression: "Appointment.participant.actor", Column: "actor",
					Targets: []string{"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Device", "HealthcareService", "Location"},
					Doc:     "Any one of the individuals participating in the appointment",
				},
				{Name: "practitioner", Kind: Reference, Expression: "Appointment.participant.actor", Column: "practitioner", Targets: []string{"Practitioner"}, Doc: "One of the individuals of the appointment is this practitioner"},
				{Name: "status", Kind: Token, Expression: "Appointment.status", Column: "status", System: appointmentStatusSystem, Doc: "The overall status of the appointment"},
				{Name: "date", Kind: Date, Expression: "Appointment.start", Column: "date", Doc: "Appointment date/time."},
			},
			Compartment: func(m any, _ string) string {
				for _, p := range m.(*fm.Appointment).Participant {
					if id := refPatient(p.Actor); id != "" {
						return id
					}
				}
				return ""
			},
		},
		{
			Type: "Encounter",
			Params: []*Param{
				identifier("Encounter", "Identifier(s) by which this encounter is known"),
				{Name: "patient", Kind: Reference, Expression: "Encounter.subject", Column: "patient_id", Targets: []string{"Patient"}, Doc: "The patient or group present at the encounter"},
				{Name: "subject", Kind: Reference, Expression: "Encounter.subject", Column: "subject", Targets: []string{"Patient", "Group"}, Doc: "The patient or group present at the encounter"},
				{Name: "status", Kind: Token, Expression: "Encounter.status", Column: "status", System: encounterStatusSystem, Doc: "planned | arrived | triaged | in-progress | onleave | finished | cancelled +"},
				{Name: "class", Kind: Token, Expression: "Encounter.class", Column: "class", Doc: "Classification of patient encounter"},
				{Name: "type", Kind: Token, Expression: "Encounter.type", Column: "type", Doc: "Specific type of encounter"},
				{Name: "date", Kind: Date, Expression: "Encounter.period", Column: "date", Doc: "A date within the period the Encounter lasted"},
				{Name: "appointment", Kind: Reference, Expression: "Encounter.appointment", Column: "appointment", Targets: []string{"Appointment"}, Doc: "The appointment that scheduled this encounter"},
				{
					Name: "participant", Kind: Reference, Expression: "Encounter.participant.individual", Column: "participant",
					Targets: []string{"Practitioner", "PractitionerRole", "RelatedPerson"}, Doc: "Persons involved in the encounter other than the patient",
				},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Encounter).Subject) },
		},
		{
			Type: "Task",
			Params: []*Param{
				identifier("Task", "Search for a task instance by its business identifier"),
				{Name: "patient", Kind: Reference, Expression: "Task.for", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Search by patient"},
				{Name: "subject", Kind: Reference, Expression: "Task.for", Column: "subject", Doc: "Search by subject"},
				{Name: "focus", Kind: Reference, Expression: "Task.focus", Column: "focus", Doc: "Search by task focus"},
				{Name: "status", Kind: Token, Expression: "Task.status", Column: "status", System: taskStatusSystem, Doc: "Search by task status"},
				{
					Name: "priority", Kind: Token, Expression: "Task.priority", Column: "priority", System: requestPrioritySystem,
					Order: []string{"routine", "urgent", "asap", "stat"}, Doc: "Search by task priority (_sort=-priority puts stat first)",
				},
				{Name: "code", Kind: Token, Expression: "Task.code", Column: "code", Doc: "Search by task code"},
				{Name: "business-status", Kind: Token, Expression: "Task.businessStatus", Column: "business_status", Doc: "Search by business status"},
				{
					Name: "owner", Kind: Reference, Expression: "Task.owner", Column: "owner",
					Targets: []string{"Practitioner", "PractitionerRole", "Organization", "CareTeam", "HealthcareService", "Patient", "Device", "RelatedPerson"}, Doc: "Search by task owner",
				},
				{Name: "authored-on", Kind: Date, Expression: "Task.authoredOn", Column: "authored_on", Doc: "Search by creation date"},
				{Name: "modified", Kind: Date, Expression: "Task.lastModified", Column: "modified", Doc: "Search by last modification date"},
			},
			Compartment: func(m any, _ string) string { return refPatient(m.(*fm.Task).For) },
		},
		{
			Type: "Goal",
			Params: []*Param{
				identifier("Goal", "External Ids for this goal"),
				{Name: "patient", Kind: Reference, Expression: "Goal.subject", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Who this goal is intended for"},
				{Name: "subject", Kind: Reference, Expression: "Goal.subject", Column: "subject", Targets: []string{"Patient", "Group", "Organization"}, Doc: "Who this goal is intended for"},
				{Name: "lifecycle-status", Kind: Token, Expression: "Goal.lifecycleStatus", Column: "lifecycle_status", System: goalStatusSystem, Doc: "proposed | planned | accepted | active | on-hold | completed | cancelled | entered-in-error | rejected"},
				{Name: "achievement-status", Kind: Token, Expression: "Goal.achievementStatus", Column: "achievement_status", Doc: "in-progress | improving | worsening | no-change | achieved | sustaining | not-achieved | no-progress | not-attainable"},
				{Name: "category", Kind: Token, Expression: "Goal.category", Column: "category", Doc: "E.g. Treatment, dietary, behavioral, etc."},
				{Name: "target-measure", Kind: Token, Expression: "Goal.target.measure", Column: "target_measure", Doc: "Vidda: the parameter whose value is being tracked (a LOINC code)"},
			},
			Compartment: func(m any, _ string) string {
				r := m.(*fm.Goal).Subject
				return refPatient(&r)
			},
		},
		{
			Type: "CarePlan",
			Params: []*Param{
				identifier("CarePlan", "External Ids for this plan"),
				{Name: "patient", Kind: Reference, Expression: "CarePlan.subject", Column: "patient_id", Targets: []string{"Patient"}, Doc: "Who the care plan is for"},
				{Name: "subject", Kind: Reference, Expression: "CarePlan.subject", Column: "subject", Targets: []string{"Patient", "Group"}, Doc: "Who the care plan is for"},
				{Name: "status", Kind: Token, Expression: "CarePlan.status", Column: "status", System: requestStatusSystem, Doc: "draft | active | on-hold | revoked | completed | entered-in-error | unknown"},
				{Name: "intent", Kind: Token, Expression: "CarePlan.intent", Column: "intent", System: requestIntentSystem, Doc: "proposal | plan | order | option"},
				{Name: "category", Kind: Token, Expression: "CarePlan.category", Column: "category", Doc: "Type of plan"},
				{Name: "date", Kind: Date, Expression: "CarePlan.period", Column: "date", Doc: "Time period plan covers"},
				{Name: "activity-code", Kind: Token, Expression: "CarePlan.activity.detail.code", Column: "activity_code", Doc: "Detail type of activity"},
				{Name: "care-team", Kind: Reference, Expression: "CarePlan.careTeam", Column: "care_team", Targets: []string{"CareTeam"}, Doc: "Who's involved in plan?"},
				{Name: "goal", Kind: Reference, Expression: "CarePlan.goal", Column: "goal", Targets: []string{"Goal"}, Doc: "Desired outcome of plan"},
			},
			Compartment: func(m any, _ string) string {
				r := m.(*fm.CarePlan).Subject
				return refPatient(&r)
			},
		},
	}
}

// models are the golang-fhir-models structs the expressions are resolved
// against.
func models() map[string]reflect.Type {
	return map[string]reflect.Type{
		"Patient":          reflect.TypeFor[fm.Patient](),
		"Practitioner":     reflect.TypeFor[fm.Practitioner](),
		"Organization":     reflect.TypeFor[fm.Organization](),
		"Device":           reflect.TypeFor[fm.Device](),
		"Subscription":     reflect.TypeFor[fm.Subscription](),
		"Observation":      reflect.TypeFor[fm.Observation](),
		"PractitionerRole": reflect.TypeFor[fm.PractitionerRole](),
		"CareTeam":         reflect.TypeFor[fm.CareTeam](),
		"AuditEvent":       reflect.TypeFor[fm.AuditEvent](),
		"Group":            reflect.TypeFor[fm.Group](),
		"Appointment":      reflect.TypeFor[fm.Appointment](),
		"Encounter":        reflect.TypeFor[fm.Encounter](),
		"Task":             reflect.TypeFor[fm.Task](),
		"Goal":             reflect.TypeFor[fm.Goal](),
		"CarePlan":         reflect.TypeFor[fm.CarePlan](),
	}
}

// commonParams are the parameters every type has (R4 search §3.1.1.5.3).
func commonParams() []*Param {
	return []*Param{
		{Name: "_id", Kind: Token, Expression: "Resource.id", Column: "id", Doc: "Logical id of this artifact"},
		{Name: "_lastUpdated", Kind: Date, Expression: "Resource.meta.lastUpdated", Column: "last_updated", Doc: "When the resource version last changed"},
	}
}

// NewRegistry builds the registry of every search parameter Vidda serves.
// Values without a zone are read in zone (UTC when nil). It panics only if
// a declaration in this file is wrong, which every test run catches.
func NewRegistry(zone *time.Location) *Registry {
	r, err := newRegistry(definitions(), models(), zone)
	if err != nil {
		panic(err)
	}
	return r
}

func newRegistry(defs []*Definition, types map[string]reflect.Type, zone *time.Location) (*Registry, error) {
	r := &Registry{defs: map[string]*Definition{}, dates: NewDateParser(zone), common: commonParams()}
	for _, d := range defs {
		model, ok := types[d.Type]
		if !ok {
			return nil, fmt.Errorf("search: no model for %s", d.Type)
		}
		for _, p := range d.Params {
			if p.Column == "patient_id" && d.Compartment == nil {
				return nil, fmt.Errorf("search: %s.%s uses the compartment column, but %s has no compartment", d.Type, p.Name, d.Type)
			}
			path, err := compilePath(d.Type, model, p.Expression)
			if err != nil {
				return nil, fmt.Errorf("search: %s.%s: %w", d.Type, p.Name, err)
			}
			p.path = path
		}
		r.defs[d.Type] = d
	}
	return r, nil
}

func refPatient(r *fm.Reference) string {
	if r == nil || r.Reference == nil {
		return ""
	}
	id, _ := refID(*r.Reference, "Patient")
	return id
}

// auditEntityTypes are the types an AuditEvent's entity may name in a
// search: every type vidda serves.
func auditEntityTypes() []string {
	return []string{
		"Patient", "Practitioner", "PractitionerRole", "Organization", "Device",
		"Observation", "CareTeam", "AuditEvent", "Group", "Appointment", "Encounter",
		"Task", "Goal", "CarePlan",
	}
}

// auditPatient is the patient an AuditEvent is about: the first Patient its
// entities name, else a Patient acting as agent (R4 CompartmentDefinition
// patient: AuditEvent.patient, i.e. agent.who or entity.what).
func auditPatient(m any, _ string) string {
	e := m.(*fm.AuditEvent)
	for i := range e.Entity {
		if id := refPatient(e.Entity[i].What); id != "" {
			return id
		}
	}
	for i := range e.Agent {
		if id := refPatient(e.Agent[i].Who); id != "" {
			return id
		}
	}
	return ""
}
