package fhir

import "encoding/json"

// outcomeJSON and issueJSON are the wire shape of OperationOutcome. The
// server writes these itself, so plain structs are fine here: there is no
// client content to lose.
type outcomeJSON struct {
	ResourceType string      `json:"resourceType"`
	Issue        []issueJSON `json:"issue"`
}

type issueJSON struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// OperationOutcome marshals issues as a FHIR OperationOutcome (compact
// JSON). R4 requires severity, code and at least one issue, so an empty
// severity becomes "error", an empty code "processing", and no issues at
// all one informational issue.
func OperationOutcome(issues ...Issue) []byte {
	out := outcomeJSON{ResourceType: "OperationOutcome", Issue: make([]issueJSON, 0, len(issues))}
	for _, is := range issues {
		j := issueJSON{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if j.Severity == "" {
			j.Severity = SeverityError
		}
		if j.Code == "" {
			j.Code = IssueProcessing
		}
		for _, e := range is.Expression {
			if e != "" {
				j.Expression = append(j.Expression, e)
			}
		}
		out.Issue = append(out.Issue, j)
	}
	if len(out.Issue) == 0 {
		out.Issue = append(out.Issue, issueJSON{Severity: SeverityInformation, Code: IssueInformation})
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Strings and slices of strings always marshal; keep the promise of
		// a valid body anyway.
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	return b
}
