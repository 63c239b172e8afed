package fhir

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestOperationOutcome(t *testing.T) {
	tests := []struct {
		name   string
		issues []Issue
		want   string
	}{
		{
			name: "issues are listed in order with their expressions",
			issues: []Issue{
				{Severity: SeverityError, Code: IssueStructure, Diagnostics: `unknown element "foo"`, Expression: []string{"Patient.foo"}},
				{Severity: SeverityWarning, Code: IssueRequired, Diagnostics: "x <b>&", Expression: []string{"A.b", "A.c"}},
			},
			want: `{"resourceType":"OperationOutcome","issue":[` +
				`{"severity":"error","code":"structure","diagnostics":"unknown element \"foo\"","expression":["Patient.foo"]},` +
				`{"severity":"warning","code":"required","diagnostics":"x <b>&","expression":["A.b","A.c"]}]}`,
		},
		{
			name:   "missing severity and code get defaults, empty expressions are left out",
			issues: []Issue{{Diagnostics: "boom", Expression: []string{""}}},
			want:   `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"boom"}]}`,
		},
		{
			name: "no issues still make a valid outcome",
			want: `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}`,
		},
		{
			name:   "invalid UTF-8 in diagnostics still makes valid JSON",
			issues: []Issue{{Severity: SeverityFatal, Code: IssueException, Diagnostics: "bad \xff byte"}},
			want:   `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"bad \ufffd byte"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OperationOutcome(tt.issues...)
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
			if g, w := decodeNumbers(t, got), decodeNumbers(t, []byte(tt.want)); !reflect.DeepEqual(g, w) {
				t.Errorf("OperationOutcome =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestOperationOutcomeOfAValidationError(t *testing.T) {
	_, err := NewRegistry().Parse("Patient", []byte(`{"resourceType":"Patient","foo":1,"bar":2}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error = %v", err)
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code string
			Expression     []string
		}
	}
	if err := json.Unmarshal(OperationOutcome(ve.Issues...), &oo); err != nil {
		t.Fatal(err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 2 || oo.Issue[1].Expression[0] != "Patient.bar" {
		t.Errorf("outcome = %+v", oo)
	}
}
