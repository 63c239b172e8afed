package fhir

import fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"

// typeDef is everything the server knows about one resource type beyond
// what the golang-fhir-models struct says. All lists come from the R4
// (4.0.1) StructureDefinitions.
type typeDef struct {
	// name is the resourceType.
	name string
	// newModel allocates the model struct Parse decodes into.
	newModel func() any
	// summary lists the top-level elements R4 marks isSummary (besides id,
	// meta, implicitRules and modifierExtension, which every resource
	// keeps); "x[x]" stands for every type of a choice element.
	summary []string
	// references maps an element path (no indexes) to the resource types
	// its Reference may point to. Paths not listed accept any type.
	references map[string][]string
	// syntax gives the primitive type of the type's own string elements
	// ("GoType.element") where the name does not already tell it (see
	// schemaBuilder.syntaxOf).
	syntax map[string]primitiveSyntax
}

// builtinTypes is the table of resource types Vidda serves. Adding a type
// is one entry here; its model comes from golang-fhir-models, e.g.
//
//	{
//		name:     "Appointment",
//		newModel: func() any { return new(fhirmodels.Appointment) },
//		summary:  []string{"identifier", "status", "cancelationReason", "serviceCategory", "serviceType", "specialty", "appointmentType", "reasonCode", "start", "end"},
//		references: map[string][]string{
//			"Appointment.participant.actor": {"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Device", "HealthcareService", "Location"},
//			"Appointment.basedOn":           {"ServiceRequest"},
//		},
//		syntax: map[string]primitiveSyntax{"Appointment.start": syntaxInstant, "Appointment.end": syntaxInstant, "Appointment.created": syntaxDateTime},
//	},
//
// and likewise Encounter, Task, Goal, CarePlan, AuditEvent, Group, CareTeam
// and Subscription.
func builtinTypes() []typeDef {
	return []typeDef{
		{
			name:     "Patient",
			newModel: func() any { return new(fhirmodels.Patient) },
			summary: []string{
				"identifier", "active", "name", "telecom", "gender", "birthDate",
				"deceased[x]", "address", "managingOrganization", "link",
			},
			references: map[string][]string{
				"Patient.contact.organization": {"Organization"},
				"Patient.generalPractitioner":  {"Organization", "Practitioner", "PractitionerRole"},
				"Patient.managingOrganization": {"Organization"},
				"Patient.link.other":           {"Patient", "RelatedPerson"},
			},
			syntax: map[string]primitiveSyntax{"Patient.birthDate": syntaxDate},
		},
		{
			name:     "Practitioner",
			newModel: func() any { return new(fhirmodels.Practitioner) },
			summary: []string{
				"identifier", "active", "name", "telecom", "address", "gender", "birthDate",
			},
			references: map[string][]string{
				"Practitioner.qualification.issuer": {"Organization"},
			},
			syntax: map[string]primitiveSyntax{"Practitioner.birthDate": syntaxDate},
		},
		{
			name:     "Organization",
			newModel: func() any { return new(fhirmodels.Organization) },
			summary:  []string{"identifier", "active", "type", "name", "partOf"},
			references: map[string][]string{
				"Organization.partOf":   {"Organization"},
				"Organization.endpoint": {"Endpoint"},
			},
		},
		{
			name:     "Device",
			newModel: func() any { return new(fhirmodels.Device) },
			summary:  []string{"udiCarrier", "status", "safety"},
			references: map[string][]string{
				"Device.definition": {"DeviceDefinition"},
				"Device.patient":    {"Patient"},
				"Device.owner":      {"Organization"},
				"Device.location":   {"Location"},
				"Device.parent":     {"Device"},
			},
			syntax: map[string]primitiveSyntax{
				"Device.manufactureDate": syntaxDateTime,
				"Device.expirationDate":  syntaxDateTime,
			},
		},
		{
			// Pushes changes to EHRs (fhir/subscription); status and error
			// are the server's. No element is a Reference.
			name:     "Subscription",
			newModel: func() any { return new(fhirmodels.Subscription) },
			summary:  []string{"status", "contact", "end", "reason", "criteria", "error", "channel"},
			syntax:   map[string]primitiveSyntax{"Subscription.end": syntaxInstant},
		},
		{
			name:     "Observation",
			newModel: func() any { return new(fhirmodels.Observation) },
			summary: []string{
				"identifier", "basedOn", "partOf", "status", "code", "subject", "focus",
				"encounter", "effective[x]", "issued", "performer", "value[x]",
				"hasMember", "derivedFrom", "component",
			},
			references: map[string][]string{
				"Observation.basedOn": {
					"CarePlan", "DeviceRequest", "ImmunizationRecommendation",
					"MedicationRequest", "NutritionOrder", "ServiceRequest",
				},
				"Observation.partOf": {
					"MedicationAdministration", "MedicationDispense", "MedicationStatement",
					"Procedure", "Immunization", "ImagingStudy",
				},
				"Observation.subject":   {"Patient", "Group", "Device", "Location"},
				"Observation.encounter": {"Encounter"},
				"Observation.performer": {
					"Practitioner", "PractitionerRole", "Organization", "CareTeam",
					"Patient", "RelatedPerson",
				},
				"Observation.specimen":  {"Specimen"},
				"Observation.device":    {"Device", "DeviceMetric"},
				"Observation.hasMember": {"Observation", "QuestionnaireResponse", "MolecularSequence"},
				"Observation.derivedFrom": {
					"DocumentReference", "ImagingStudy", "Media", "QuestionnaireResponse",
					"Observation", "MolecularSequence",
				},
			},
			syntax: map[string]primitiveSyntax{"Observation.issued": syntaxInstant},
		},
		{
			name:     "PractitionerRole",
			newModel: func() any { return new(fhirmodels.PractitionerRole) },
			summary: []string{
				"identifier", "active", "period", "practitioner", "organization", "code",
				"specialty", "location", "healthcareService", "telecom", "endpoint",
			},
			references: map[string][]string{
				"PractitionerRole.practitioner":      {"Practitioner"},
				"PractitionerRole.organization":      {"Organization"},
				"PractitionerRole.location":          {"Location"},
				"PractitionerRole.healthcareService": {"HealthcareService"},
				"PractitionerRole.endpoint":          {"Endpoint"},
			},
		},
		{
			name:     "CareTeam",
			newModel: func() any { return new(fhirmodels.CareTeam) },
			summary: []string{
				"identifier", "status", "category", "name", "subject", "encounter",
				"period", "participant", "managingOrganization",
			},
			references: map[string][]string{
				"CareTeam.subject":                {"Patient", "Group"},
				"CareTeam.encounter":              {"Encounter"},
				"CareTeam.participant.member":     {"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Organization", "CareTeam"},
				"CareTeam.participant.onBehalfOf": {"Organization"},
				"CareTeam.reasonReference":        {"Condition"},
				"CareTeam.managingOrganization":   {"Organization"},
			},
		},
		{
			name:     "AuditEvent",
			newModel: func() any { return new(fhirmodels.AuditEvent) },
			summary: []string{
				"type", "subtype", "action", "period", "recorded", "outcome",
				"purposeOfEvent", "agent", "source", "entity",
			},
			references: map[string][]string{
				"AuditEvent.agent.who":       {"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"},
				"AuditEvent.agent.location":  {"Location"},
				"AuditEvent.source.observer": {"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"},
			},
			syntax: map[string]primitiveSyntax{"AuditEvent.recorded": syntaxInstant},
		},
		{
			// A monitored cohort: what /fhir/Group/{id}/$export exports.
			name:     "Group",
			newModel: func() any { return new(fhirmodels.Group) },
			summary: []string{
				"identifier", "active", "type", "actual", "code", "name", "quantity", "managingEntity",
			},
			references: map[string][]string{
				"Group.managingEntity": {"Organization", "RelatedPerson", "Practitioner", "PractitionerRole"},
				"Group.member.entity":  {"Patient", "Practitioner", "PractitionerRole", "Device", "Medication", "Substance", "Group"},
			},
		},
		{
			// A video visit (issue 7): the patient and the practitioners
			// are participants.
			name:     "Appointment",
			newModel: func() any { return new(fhirmodels.Appointment) },
			summary: []string{
				"identifier", "status", "cancelationReason", "serviceCategory", "serviceType",
				"specialty", "appointmentType", "reasonCode", "start", "end", "participant",
			},
			references: map[string][]string{
				"Appointment.participant.actor": {"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Device", "HealthcareService", "Location"},
				"Appointment.basedOn":           {"ServiceRequest"},
				"Appointment.slot":              {"Slot"},
				"Appointment.reasonReference":   {"Condition", "Procedure", "Observation", "ImmunizationRecommendation"},
			},
			syntax: map[string]primitiveSyntax{
				"Appointment.start": syntaxInstant, "Appointment.end": syntaxInstant, "Appointment.created": syntaxDateTime,
			},
		},
		{
			// A video visit that took place (class VR).
			name:     "Encounter",
			newModel: func() any { return new(fhirmodels.Encounter) },
			summary: []string{
				"identifier", "status", "class", "type", "serviceType", "priority", "subject",
				"episodeOfCare", "basedOn", "participant", "appointment", "period", "reasonCode",
				"reasonReference", "diagnosis", "account", "serviceProvider", "partOf",
			},
			references: map[string][]string{
				"Encounter.subject":                     {"Patient", "Group"},
				"Encounter.episodeOfCare":               {"EpisodeOfCare"},
				"Encounter.basedOn":                     {"ServiceRequest"},
				"Encounter.participant.individual":      {"Practitioner", "PractitionerRole", "RelatedPerson"},
				"Encounter.appointment":                 {"Appointment"},
				"Encounter.reasonReference":             {"Condition", "Procedure", "Observation", "ImmunizationRecommendation"},
				"Encounter.diagnosis.condition":         {"Condition", "Procedure"},
				"Encounter.account":                     {"Account"},
				"Encounter.hospitalization.origin":      {"Location", "Organization"},
				"Encounter.hospitalization.destination": {"Location", "Organization"},
				"Encounter.location.location":           {"Location"},
				"Encounter.serviceProvider":             {"Organization"},
				"Encounter.partOf":                      {"Encounter"},
			},
		},
		{
			// The nurse's worklist (issue 6): review a reading, a missed
			// measurement.
			name:     "Task",
			newModel: func() any { return new(fhirmodels.Task) },
			summary: []string{
				"identifier", "basedOn", "groupIdentifier", "partOf", "status", "businessStatus",
				"intent", "priority", "code", "description", "focus", "for", "encounter",
				"executionPeriod", "authoredOn", "lastModified", "requester", "performerType", "owner",
			},
			references: map[string][]string{
				"Task.partOf":          {"Task"},
				"Task.encounter":       {"Encounter"},
				"Task.requester":       {"Device", "Organization", "Patient", "Practitioner", "PractitionerRole", "RelatedPerson"},
				"Task.owner":           {"Practitioner", "PractitionerRole", "Organization", "CareTeam", "HealthcareService", "Patient", "Device", "RelatedPerson"},
				"Task.location":        {"Location"},
				"Task.insurance":       {"Coverage", "ClaimResponse"},
				"Task.relevantHistory": {"Provenance"},
			},
			syntax: map[string]primitiveSyntax{"Task.authoredOn": syntaxDateTime, "Task.lastModified": syntaxDateTime},
		},
		{
			// A patient's own limits for one measure (issue 6).
			name:     "Goal",
			newModel: func() any { return new(fhirmodels.Goal) },
			summary: []string{
				"identifier", "lifecycleStatus", "achievementStatus", "category", "priority",
				"description", "subject", "start[x]", "target", "expressedBy",
			},
			references: map[string][]string{
				"Goal.subject":          {"Patient", "Group", "Organization"},
				"Goal.expressedBy":      {"Patient", "Practitioner", "PractitionerRole", "RelatedPerson"},
				"Goal.addresses":        {"Condition", "Observation", "MedicationStatement", "NutritionOrder", "ServiceRequest", "RiskAssessment"},
				"Goal.outcomeReference": {"Observation"},
			},
			syntax: map[string]primitiveSyntax{"Goal.startDate": syntaxDate, "Goal.statusDate": syntaxDate, "GoalTarget.dueDate": syntaxDate},
		},
		{
			// A patient's monitoring plan: what to measure, how often.
			name:     "CarePlan",
			newModel: func() any { return new(fhirmodels.CarePlan) },
			summary: []string{
				"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces",
				"partOf", "status", "intent", "category", "title", "subject", "encounter", "period", "author",
			},
			references: map[string][]string{
				"CarePlan.basedOn":                         {"CarePlan"},
				"CarePlan.replaces":                        {"CarePlan"},
				"CarePlan.partOf":                          {"CarePlan"},
				"CarePlan.subject":                         {"Patient", "Group"},
				"CarePlan.encounter":                       {"Encounter"},
				"CarePlan.author":                          {"Patient", "Practitioner", "PractitionerRole", "Device", "RelatedPerson", "Organization", "CareTeam"},
				"CarePlan.contributor":                     {"Patient", "Practitioner", "PractitionerRole", "Device", "RelatedPerson", "Organization", "CareTeam"},
				"CarePlan.careTeam":                        {"CareTeam"},
				"CarePlan.addresses":                       {"Condition"},
				"CarePlan.goal":                            {"Goal"},
				"CarePlan.activity.reference":              {"Appointment", "CommunicationRequest", "DeviceRequest", "MedicationRequest", "NutritionOrder", "Task", "ServiceRequest", "VisionPrescription", "RequestGroup"},
				"CarePlan.activity.detail.performer":       {"Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Patient", "CareTeam", "HealthcareService", "Device"},
				"CarePlan.activity.detail.location":        {"Location"},
				"CarePlan.activity.detail.goal":            {"Goal"},
				"CarePlan.activity.detail.reasonReference": {"Condition", "Observation", "DiagnosticReport", "DocumentReference"},
			},
			syntax: map[string]primitiveSyntax{"CarePlan.created": syntaxDateTime},
		},
	}
}

// datatypeSyntax gives the primitive type of string elements of datatypes
// shared by all resources ("GoType.element").
func datatypeSyntax() map[string]primitiveSyntax {
	return map[string]primitiveSyntax{
		"Meta.versionId":      syntaxID,
		"Meta.lastUpdated":    syntaxInstant,
		"Period.start":        syntaxDateTime,
		"Period.end":          syntaxDateTime,
		"Annotation.time":     syntaxDateTime,
		"Attachment.creation": syntaxDateTime,
		"Timing.event":        syntaxDateTime,
		"Signature.when":      syntaxInstant,
	}
}

// datatypeReferences gives the allowed targets of references inside
// datatypes, wherever the datatype is used ("GoType.element").
func datatypeReferences() map[string][]string {
	signer := []string{"Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Device", "Organization"}
	return map[string][]string{
		"Identifier.assigner":        {"Organization"},
		"Annotation.authorReference": {"Practitioner", "Patient", "RelatedPerson", "Organization"},
		"Signature.who":              signer,
		"Signature.onBehalfOf":       signer,
	}
}
