package fhir

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// obs wraps members into a minimal valid Observation.
func obs(members string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"bp"}` + members + `}`
}

type rejection struct {
	name     string
	typ      string
	body     string
	semantic bool
	code     string   // issue code of every issue
	exprs    []string // every issue's expression, in any order
	diag     []string // substrings the diagnostics must contain
}

func TestParseRejectsMalformedBodies(t *testing.T) {
	tests := []rejection{
		{
			name: "a body that is not JSON", typ: "Patient", body: `{"resourceType":"Patient",`,
			code: IssueStructure, diag: []string{"not valid JSON"},
		},
		{
			name: "a body with data after the object", typ: "Patient", body: `{"resourceType":"Patient"} {}`,
			code: IssueStructure, diag: []string{"after the top-level value"},
		},
		{
			name: "a JSON array", typ: "Patient", body: `[{"resourceType":"Patient"}]`,
			code: IssueStructure, diag: []string{"must be a JSON object"},
		},
		{
			name: "a body without resourceType", typ: "Patient", body: `{"id":"p1"}`,
			code: IssueStructure, diag: []string{"resourceType is missing"},
		},
		{
			name: "a resourceType that is not a string", typ: "", body: `{"resourceType":1}`,
			code: IssueStructure, diag: []string{"must be a string"},
		},
		{
			name: "a resourceType that differs from the URL", typ: "Patient", body: `{"resourceType":"Observation"}`,
			code: IssueStructure, diag: []string{`"Observation"`, `"Patient"`},
		},
		{
			name: "invalid UTF-8", typ: "Patient", body: "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xff\"}]}",
			code: IssueStructure, diag: []string{"UTF-8"},
		},
		{
			name: "a NUL character PostgreSQL cannot store", typ: "Patient", body: `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`,
			code: IssueStructure, diag: []string{`\u0000`},
		},
		{
			name: "unknown elements, all of them in one answer", typ: "Patient",
			body: `{"resourceType":"Patient","bogus":1,"name":[{"family":"A"},{"foo":"x"}],"_active":{"foo":1},` +
				`"contained":[{"resourceType":"Practitioner","nickname":"K"}],"_name":{"id":"n"}}`,
			code:  IssueStructure,
			exprs: []string{"Patient.bogus", "Patient.name[1].foo", "Patient._active.foo", "Patient.contained[0].nickname", "Patient._name"},
			diag:  []string{"unknown element"},
		},
		{
			name: "an unknown element in an Observation", typ: "Observation", body: obs(`,"bogus":true`),
			code: IssueStructure, exprs: []string{"Observation.bogus"},
		},
		{
			name: "a misspelt element in a nested component", typ: "Observation",
			body: obs(`,"component":[{"code":{"text":"s"},"valueQuantity":{"value":1,"units":"mmHg"}}]`),
			code: IssueStructure, exprs: []string{"Observation.component[0].valueQuantity.units"},
		},
		{
			name: "an element name in the wrong case", typ: "Patient", body: `{"resourceType":"Patient","Active":true}`,
			code: IssueStructure, exprs: []string{"Patient.Active"},
		},
		{
			name: "a resourceType inside a datatype", typ: "Patient", body: `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`,
			code: IssueStructure, exprs: []string{"Patient.name[0].resourceType"},
		},
		{
			name: "a primitive extension of an element id", typ: "Patient", body: `{"resourceType":"Patient","name":[{"id":"a","_id":{}}]}`,
			code: IssueStructure, exprs: []string{"Patient.name[0]._id"},
		},
		{
			name: "a primitive extension that is not an object", typ: "Patient", body: `{"resourceType":"Patient","_birthDate":"x"}`,
			code: IssueStructure, exprs: []string{"Patient._birthDate"},
		},
		{
			name: "a string where a boolean belongs", typ: "Patient", body: `{"resourceType":"Patient","active":"true"}`,
			code: IssueStructure, exprs: []string{"Patient.active"}, diag: []string{"expected a boolean, found string"},
		},
		{
			name: "a single object where an array belongs", typ: "Patient", body: `{"resourceType":"Patient","name":{"family":"A"}}`,
			code: IssueStructure, exprs: []string{"Patient.name"}, diag: []string{"expected an array"},
		},
		{
			name: "an array where a single value belongs", typ: "Patient", body: `{"resourceType":"Patient","gender":["female"]}`,
			code: IssueStructure, exprs: []string{"Patient.gender"},
		},
		{
			name: "a null member", typ: "Patient", body: `{"resourceType":"Patient","birthDate":null}`,
			code: IssueStructure, exprs: []string{"Patient.birthDate"},
		},
		{
			name: "a null in an array of objects", typ: "Patient", body: `{"resourceType":"Patient","name":[null]}`,
			code: IssueStructure, exprs: []string{"Patient.name[0]"},
		},
		{
			name: "a null entry in a repeating primitive without an extension beside it", typ: "Patient",
			body: `{"resourceType":"Patient","name":[{"given":["A",null]}]}`,
			code: IssueStructure, exprs: []string{"Patient.name[0].given[1]"},
		},
		{
			name: "primitive and extension arrays of different lengths", typ: "Organization",
			body: `{"resourceType":"Organization","alias":["a","b"],"_alias":[{"id":"x"}]}`,
			code: IssueStructure, exprs: []string{"Organization.alias"},
		},
		{
			name: "a duplicate member", typ: "Patient", body: `{"resourceType":"Patient","active":true,"active":false}`,
			code: IssueStructure, exprs: []string{"Patient.active"}, diag: []string{"more than once"},
		},
		{
			name: "an id with a space", typ: "Patient", body: `{"resourceType":"Patient","id":"p 1"}`,
			code: IssueValue, exprs: []string{"Patient.id"}, diag: []string{"not a valid id"},
		},
		{
			name: "an id longer than 64 characters", typ: "Patient", body: `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`,
			code: IssueValue, exprs: []string{"Patient.id"},
		},
		{
			name: "a birthDate in a local format", typ: "Patient", body: `{"resourceType":"Patient","birthDate":"13.03.1948"}`,
			code: IssueValue, exprs: []string{"Patient.birthDate"}, diag: []string{"not a valid date"},
		},
		{
			name: "a birthDate on a day that does not exist", typ: "Patient", body: `{"resourceType":"Patient","birthDate":"2023-02-29"}`,
			code: IssueValue, exprs: []string{"Patient.birthDate"},
		},
		{
			name: "a birthDate with a time", typ: "Practitioner", body: `{"resourceType":"Practitioner","birthDate":"1975-01-01T00:00:00Z"}`,
			code: IssueValue, exprs: []string{"Practitioner.birthDate"},
		},
		{
			name: "an effectiveDateTime without a time zone", typ: "Observation", body: obs(`,"effectiveDateTime":"2026-11-23T07:42:10"`),
			code: IssueValue, exprs: []string{"Observation.effectiveDateTime"}, diag: []string{"dateTime"},
		},
		{
			name: "an issued instant that is only a date", typ: "Observation", body: obs(`,"issued":"2026-11-23"`),
			code: IssueValue, exprs: []string{"Observation.issued"}, diag: []string{"instant"},
		},
		{
			name: "a Period end that is not a date", typ: "Observation", body: obs(`,"effectivePeriod":{"start":"2026-11-23","end":"yesterday"}`),
			code: IssueValue, exprs: []string{"Observation.effectivePeriod.end"},
		},
		{
			name: "a bad date inside a primitive extension", typ: "Patient",
			body: `{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://x","valueDateTime":"noon"}]}}`,
			code: IssueValue, exprs: []string{"Patient._birthDate.extension[0].valueDateTime"},
		},
		{
			name: "a meta.lastUpdated without seconds", typ: "Patient", body: `{"resourceType":"Patient","meta":{"lastUpdated":"2026-11-23T10:00Z"}}`,
			code: IssueValue, exprs: []string{"Patient.meta.lastUpdated"},
		},
		{
			name: "a fractional integer", typ: "Patient", body: `{"resourceType":"Patient","telecom":[{"value":"1","rank":1.5}]}`,
			code: IssueValue, exprs: []string{"Patient.telecom[0].rank"},
		},
		{
			name: "an integer beyond 32 bits", typ: "Observation", body: obs(`,"valueInteger":4294967296`),
			code: IssueValue, exprs: []string{"Observation.valueInteger"},
		},
		{
			name: "a decimal given as a string", typ: "Observation", body: obs(`,"valueQuantity":{"value":"128"}`),
			code: IssueStructure, exprs: []string{"Observation.valueQuantity.value"}, diag: []string{"expected a number"},
		},
		{
			name: "a code given as a number", typ: "Observation", body: `{"resourceType":"Observation","status":5,"code":{"text":"x"}}`,
			code: IssueStructure, exprs: []string{"Observation.status"},
		},
		{
			name: "a code with leading whitespace", typ: "Observation", body: `{"resourceType":"Observation","status":" final","code":{"text":"x"}}`,
			code: IssueValue, exprs: []string{"Observation.status"},
		},
		{
			name: "a relative reference whose id is not a valid id", typ: "Observation", body: obs(`,"subject":{"reference":"Patient/a b"}`),
			code: IssueValue, exprs: []string{"Observation.subject.reference"}, diag: []string{"not a valid id"},
		},
		{
			name: "a relative reference without a type", typ: "Observation", body: obs(`,"subject":{"reference":"12345"}`),
			code: IssueValue, exprs: []string{"Observation.subject.reference"},
		},
		{
			name: "a relative reference with a lower-case type", typ: "Observation", body: obs(`,"subject":{"reference":"patient/1"}`),
			code: IssueValue, exprs: []string{"Observation.subject.reference"},
		},
		{
			name: "a contained resource without a resourceType", typ: "Patient", body: `{"resourceType":"Patient","contained":[{"id":"x"}]}`,
			code: IssueStructure, exprs: []string{"Patient.contained[0]"},
		},
		{
			name: "malformed and semantic problems together, reporting the malformed ones", typ: "Observation",
			body: `{"resourceType":"Observation","bogus":1,"subject":{"reference":"Practitioner/1"}}`,
			code: IssueStructure, exprs: []string{"Observation.bogus"},
		},
	}
	runRejections(t, tests)
}

func TestParseRejectsBodiesThatBreakRules(t *testing.T) {
	tests := []rejection{
		{
			name: "an Observation without status and code", typ: "Observation", body: `{"resourceType":"Observation"}`,
			semantic: true, code: IssueRequired, exprs: []string{"Observation.status", "Observation.code"}, diag: []string{"is required"},
		},
		{
			name: "a component without a code", typ: "Observation", body: obs(`,"component":[{"code":{"text":"s"}},{"valueQuantity":{"value":1}}]`),
			semantic: true, code: IssueRequired, exprs: []string{"Observation.component[1].code"},
		},
		{
			name: "an extension without a url", typ: "Patient", body: `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`,
			semantic: true, code: IssueRequired, exprs: []string{"Patient.extension[0].url"},
		},
		{
			name: "a narrative without its div", typ: "Patient", body: `{"resourceType":"Patient","text":{"status":"generated"}}`,
			semantic: true, code: IssueRequired, exprs: []string{"Patient.text.div"},
		},
		{
			name: "a patient link without type and other", typ: "Patient", body: `{"resourceType":"Patient","link":[{}]}`,
			semantic: true, code: IssueRequired, exprs: []string{"Patient.link[0].other", "Patient.link[0].type"},
		},
		{
			name: "a Task input without its value", typ: "Task", body: `{"resourceType":"Task","status":"requested","intent":"order","input":[{"type":{"text":"x"}}]}`,
			semantic: true, code: IssueRequired, exprs: []string{"Task.input[0].value[x]"}, diag: []string{"is required"},
		},
		{
			name: "a Task input with two values", typ: "Task", body: `{"resourceType":"Task","status":"requested","intent":"order","input":[{"type":{"text":"x"},"valueString":"a","valueBoolean":true}]}`,
			semantic: true, code: IssueStructure, exprs: []string{"Task.input[0].value[x]"}, diag: []string{"valueString", "valueBoolean"},
		},
		{
			name: "a status outside the value set", typ: "Observation", body: `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`,
			semantic: true, code: IssueCodeInvalid, exprs: []string{"Observation.status"}, diag: []string{`"done"`},
		},
		{
			name: "a gender outside the value set", typ: "Patient", body: `{"resourceType":"Patient","gender":"F"}`,
			semantic: true, code: IssueCodeInvalid, exprs: []string{"Patient.gender"},
		},
		{
			name: "a subject that is a Practitioner", typ: "Observation", body: obs(`,"subject":{"reference":"Practitioner/prac-1"}`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.subject.reference"},
			diag: []string{"Observation.subject may reference Patient, Group, Device or Location, not Practitioner"},
		},
		{
			name: "an absolute device reference to a Patient", typ: "Observation", body: obs(`,"device":{"reference":"https://x.example/fhir/Patient/1/_history/2"}`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.device.reference"}, diag: []string{"Device or DeviceMetric"},
		},
		{
			name: "a performer in a list that is a Device", typ: "Observation", body: obs(`,"performer":[{"reference":"Patient/1"},{"reference":"Device/d"}]`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.performer[1].reference"},
		},
		{
			name: "a hasMember that is a Patient", typ: "Observation", body: obs(`,"hasMember":[{"reference":"Patient/1"}]`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.hasMember[0].reference"},
		},
		{
			name: "an encounter given as a conditional reference to another type", typ: "Observation", body: obs(`,"encounter":{"reference":"Appointment?identifier=1"}`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.encounter.reference"},
		},
		{
			name: "a Reference.type the element does not allow", typ: "Observation", body: obs(`,"subject":{"type":"Practitioner","display":"Dr K"}`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.subject.type"},
		},
		{
			name: "a Reference.type that disagrees with the reference", typ: "Observation", body: obs(`,"subject":{"reference":"Patient/1","type":"Group"}`),
			semantic: true, code: IssueValue, exprs: []string{"Observation.subject.type"}, diag: []string{"does not match"},
		},
		{
			name: "a device bound to a Practitioner", typ: "Device", body: `{"resourceType":"Device","patient":{"reference":"Practitioner/1"},"parent":{"reference":"Device/2"}}`,
			semantic: true, code: IssueValue, exprs: []string{"Device.patient.reference"},
		},
		{
			name: "a device owned by a Patient", typ: "Device", body: `{"resourceType":"Device","owner":{"reference":"Patient/1"},"location":{"reference":"Organization/o"}}`,
			semantic: true, code: IssueValue, exprs: []string{"Device.owner.reference", "Device.location.reference"},
		},
		{
			name: "a general practitioner that is a Patient", typ: "Patient", body: `{"resourceType":"Patient","generalPractitioner":[{"reference":"Patient/2"}]}`,
			semantic: true, code: IssueValue, exprs: []string{"Patient.generalPractitioner[0].reference"},
		},
		{
			name: "a managing organization that is a Practitioner", typ: "Patient", body: `{"resourceType":"Patient","managingOrganization":{"reference":"Practitioner/2"}}`,
			semantic: true, code: IssueValue, exprs: []string{"Patient.managingOrganization.reference"},
		},
		{
			name: "a patient link to an Organization", typ: "Patient", body: `{"resourceType":"Patient","link":[{"other":{"reference":"Organization/o"},"type":"seealso"}]}`,
			semantic: true, code: IssueValue, exprs: []string{"Patient.link[0].other.reference"},
		},
		{
			name: "an organization part of a Patient", typ: "Organization", body: `{"resourceType":"Organization","partOf":{"reference":"Patient/p"}}`,
			semantic: true, code: IssueValue, exprs: []string{"Organization.partOf.reference"},
		},
		{
			name: "an identifier assigned by a Patient", typ: "Patient", body: `{"resourceType":"Patient","identifier":[{"value":"1","assigner":{"reference":"Patient/2"}}]}`,
			semantic: true, code: IssueValue, exprs: []string{"Patient.identifier[0].assigner.reference"},
		},
		{
			name: "a reference in a contained Observation checked against Observation's table", typ: "Patient",
			body:     `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Organization/o"}}]}`,
			semantic: true, code: IssueValue, exprs: []string{"Patient.contained[0].subject.reference"},
		},
		{
			name: "a required element missing in a contained resource", typ: "Patient",
			body:     `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","code":{"text":"x"}}]}`,
			semantic: true, code: IssueRequired, exprs: []string{"Patient.contained[0].status"},
		},
		{
			name: "a contained resource that contains resources", typ: "Patient",
			body:     `{"resourceType":"Patient","contained":[{"resourceType":"Practitioner","id":"p","contained":[{"resourceType":"Patient"}]}]}`,
			semantic: true, code: IssueInvariant, exprs: []string{"Patient.contained[0].contained"},
		},
		{
			name: "a contained resource with a version", typ: "Patient",
			body:     `{"resourceType":"Patient","contained":[{"resourceType":"Basic","id":"b","meta":{"versionId":"1"}}]}`,
			semantic: true, code: IssueInvariant, exprs: []string{"Patient.contained[0]"},
		},
	}
	runRejections(t, tests)
}

func runRejections(t *testing.T, tests []rejection) {
	t.Helper()
	r := NewRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Parse(tt.typ, []byte(tt.body))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want *ValidationError", err)
			}
			if ve.Semantic != tt.semantic {
				t.Errorf("Semantic = %v, want %v (%v)", ve.Semantic, tt.semantic, ve)
			}
			var exprs []string
			var diags strings.Builder
			for _, is := range ve.Issues {
				if is.Code != tt.code {
					t.Errorf("issue code = %q, want %q (%s)", is.Code, tt.code, is.Diagnostics)
				}
				if is.Severity != SeverityError && is.Severity != SeverityFatal {
					t.Errorf("issue severity = %q", is.Severity)
				}
				exprs = append(exprs, is.Expression...)
				diags.WriteString(is.Diagnostics + "\n")
			}
			slices.Sort(exprs)
			want := slices.Clone(tt.exprs)
			slices.Sort(want)
			if !slices.Equal(exprs, want) {
				t.Errorf("expressions = %q, want %q\n%s", exprs, want, diags.String())
			}
			for _, d := range tt.diag {
				if !strings.Contains(diags.String(), d) {
					t.Errorf("diagnostics %q do not mention %q", diags.String(), d)
				}
			}
		})
	}
}

func TestParseCapsTheNumberOfIssues(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	for i := range 500 {
		b.WriteString(`,"x` + strings.Repeat("y", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1`)
	}
	b.WriteString(`}`)
	_, err := NewRegistry().Parse("Patient", []byte(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error = %v", err)
	}
	if len(ve.Issues) != maxIssues+1 || ve.Issues[maxIssues].Severity != SeverityInformation {
		t.Errorf("got %d issues, want %d and a note", len(ve.Issues), maxIssues)
	}
}

func TestValidationErrorSummarisesItsIssues(t *testing.T) {
	e := &ValidationError{Issues: []Issue{
		{Diagnostics: "unknown element", Expression: []string{"Patient.foo"}},
		{Diagnostics: "x"},
	}}
	if got, want := e.Error(), "invalid resource: Patient.foo: unknown element (and 1 more)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&ValidationError{}).Error(); got != "invalid resource" {
		t.Errorf("Error() of no issues = %q", got)
	}
}
