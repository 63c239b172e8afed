package fhir

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestParseAcceptsRealisticResources(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		name, file, typ, id string
	}{
		{"a patient with primitive extensions, contained resources and local references", "patient.json", "Patient", "pat-1"},
		{"a practitioner with a qualification", "practitioner.json", "Practitioner", "prac-1"},
		{"an organization that is part of another", "organization.json", "Organization", "org-1"},
		{"a blood-pressure monitor bound to a patient", "device.json", "Device", "dev-1"},
		{"a blood-pressure panel with systolic and diastolic components", "observation-bp.json", "Observation", "bp-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readTestdata(t, tt.file)
			for _, typ := range []string{"", tt.typ} {
				res, err := r.Parse(typ, body)
				if err != nil {
					t.Fatalf("Parse(%q): %v", typ, err)
				}
				if res.Type != tt.typ || res.ID != tt.id {
					t.Errorf("Parse(%q) = type %q id %q, want %q %q", typ, res.Type, res.ID, tt.typ, tt.id)
				}
				if !bytes.Equal(res.Raw, body) {
					t.Errorf("Raw is not the body as received")
				}
				if res.Model == nil {
					t.Errorf("Model is nil")
				}
			}
		})
	}
}

func TestParseDecodesTheModel(t *testing.T) {
	r := NewRegistry()
	res, err := r.Parse("Observation", readTestdata(t, "observation-bp.json"))
	if err != nil {
		t.Fatal(err)
	}
	obs, ok := res.Model.(*fhirmodels.Observation)
	if !ok {
		t.Fatalf("Model is %T, want *fhir.Observation", res.Model)
	}
	if obs.Status != fhirmodels.ObservationStatusFinal || obs.Code.Coding[0].Code == nil || *obs.Code.Coding[0].Code != "85354-9" {
		t.Errorf("status/code not decoded: %v %v", obs.Status, obs.Code.Coding)
	}
	if len(obs.Component) != 2 {
		t.Fatalf("components = %d, want 2", len(obs.Component))
	}
	for i, want := range []struct{ code, value string }{{"8480-6", "128"}, {"8462-4", "82.0"}} {
		c := obs.Component[i]
		if *c.Code.Coding[0].Code != want.code || c.ValueQuantity.Value.String() != want.value || *c.ValueQuantity.Unit != "mmHg" {
			t.Errorf("component %d = %s %s %s, want %s %s mmHg", i, *c.Code.Coding[0].Code, c.ValueQuantity.Value, *c.ValueQuantity.Unit, want.code, want.value)
		}
	}

	res, err = r.Parse("Patient", readTestdata(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	pat, ok := res.Model.(*fhirmodels.Patient)
	if !ok || pat.BirthDate == nil || *pat.BirthDate != "1948-03-13" || pat.Gender == nil || *pat.Gender != fhirmodels.AdministrativeGenderFemale {
		t.Errorf("patient not decoded: %+v", res.Model)
	}
}

func TestParseAcceptsEdgeCasesOfValidInput(t *testing.T) {
	r := NewRegistry()
	tests := []struct{ name, typ, body string }{
		{
			"a reference to a urn:uuid within a bundle", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:9d3b2f0a-1c4e-4a8f-9e57-3c9b0d6f2a11"}}`,
		},
		{
			"a Task input with one value (a required choice)", "Task",
			`{"resourceType":"Task","status":"requested","intent":"order","input":[{"type":{"text":"reading"},"valueReference":{"reference":"Observation/o1"}}]}`,
		},
		{
			"a reference to a version of a resource", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1/_history/3"}}`,
		},
		{
			"an absolute reference ending in Type/id", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"device":{"reference":"https://ehr.example/fhir/DeviceMetric/m-1"}}`,
		},
		{
			"an absolute reference that names no type", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"https://ehr.example/people?id=3"}}`,
		},
		{
			"a conditional reference of an allowed type", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:oid:1|13031353453"}}`,
		},
		{
			"a reference given only by type and identifier", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"type":"http://hl7.org/fhir/StructureDefinition/Group","identifier":{"value":"g"}}}`,
		},
		{
			"a focus on any type of resource", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"focus":[{"reference":"Condition/c1"}]}`,
		},
		{
			"a required code given only as a primitive extension", "Observation",
			`{"resourceType":"Observation","_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]},"code":{"text":"x"}}`,
		},
		{
			"a leap day and a leap second", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-02-29T23:59:60Z","issued":"2024-02-29T23:59:59.5-14:00"}`,
		},
		{
			"a partial dateTime and a time value", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2024-02","valueTime":"07:42:10.25"}`,
		},
		{
			"numbers with exponents and trailing zeros", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.20E+2,"unit":"mmHg"}}`,
		},
		{
			"escaped member names and unicode values", "Patient",
			`{"resourceType":"Patient","\u0061ctive":true,"name":[{"family":"\u00d8deg\u00e5rd \ud83d\ude00"}]}`,
		},
		{
			"a contained resource of a type the server does not serve", "Patient",
			`{"resourceType":"Patient","contained":[{"resourceType":"Medication","id":"m","whatever":{"x":[1,2]}}]}`,
		},
		{
			"an extension on one entry of a repeating primitive", "Organization",
			`{"resourceType":"Organization","alias":["a",null],"_alias":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}`,
		},
		{"whitespace around the body", "Patient", " \n\t{\"resourceType\":\"Patient\"}\r\n "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Parse(tt.typ, []byte(tt.body)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestParseRefusesUnsupportedTypes(t *testing.T) {
	r := NewRegistry()
	tests := []struct{ name, typ, body string }{
		{"a type in the URL the server does not serve", "Medication", `{"resourceType":"Medication"}`},
		{"a body of a type the server does not serve", "", `{"resourceType":"Medication"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Parse(tt.typ, []byte(tt.body))
			if !errors.Is(err, ErrUnsupportedType) {
				t.Fatalf("Parse error = %v, want ErrUnsupportedType", err)
			}
		})
	}
}

func TestRegistryListsItsTypes(t *testing.T) {
	r := NewRegistry()
	got := r.Types()
	want := []string{"Appointment", "AuditEvent", "CarePlan", "CareTeam", "Device", "Encounter", "Goal", "Group", "Observation", "Organization", "Patient", "Practitioner", "PractitionerRole", "Subscription", "Task"}
	if len(got) != len(want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] || !r.Supports(want[i]) {
			t.Errorf("Types()[%d] = %q, want %q (supported)", i, got[i], want[i])
		}
	}
	got[0] = "Mutated"
	if r.Types()[0] != want[0] {
		t.Error("Types() shares its slice with the registry")
	}
	if r.Supports("Slot") || r.Supports("") || r.Supports("patient") {
		t.Error("Supports accepts a type that is not registered")
	}
}

func TestParseIsSafeForConcurrentUse(t *testing.T) {
	r := NewRegistry()
	bodies := [][]byte{readTestdata(t, "patient.json"), readTestdata(t, "observation-bp.json")}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := r.Parse("", bodies[i%2]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
