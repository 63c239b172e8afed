package fhir

import (
	"errors"
	"fmt"
	"strings"
)

// Domain errors. Stores and services return them wrapped (test with
// errors.Is); the HTTP edge maps each to one status and an OperationOutcome.
var (
	// ErrNotFound: the resource does not exist (404).
	ErrNotFound = errors.New("resource not found")
	// ErrDeleted: the resource existed and was deleted (410).
	ErrDeleted = errors.New("resource deleted")
	// ErrVersionConflict: the write was based on a version that is no longer
	// current (409).
	ErrVersionConflict = errors.New("version conflict")
	// ErrPreconditionFailed: an If-Match did not match, or a conditional
	// operation matched more than one resource (412).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrUnsupportedType: the server does not serve this resource type (404).
	ErrUnsupportedType = errors.New("unsupported resource type")
)

// Issue severities (FHIR R4 ValueSet issue-severity).
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// Issue types used by this package (FHIR R4 ValueSet issue-type). The edge
// may use any other code of that value set.
const (
	IssueInvalid      = "invalid"
	IssueStructure    = "structure"
	IssueRequired     = "required"
	IssueValue        = "value"
	IssueInvariant    = "invariant"
	IssueCodeInvalid  = "code-invalid"
	IssueNotFound     = "not-found"
	IssueDeleted      = "deleted"
	IssueConflict     = "conflict"
	IssueProcessing   = "processing"
	IssueNotSupported = "not-supported"
	IssueException    = "exception"
	IssueInformation  = "informational"
)

// Issue is one OperationOutcome.issue.
type Issue struct {
	// Severity is fatal, error, warning or information.
	Severity string
	// Code is a FHIR IssueType code, e.g. "structure" or "required".
	Code string
	// Diagnostics is a human-readable explanation.
	Diagnostics string
	// Expression holds FHIRPath-like locations of the problem, e.g.
	// "Observation.component[0].code". Members of primitive extensions are
	// named by their JSON member ("Patient._birthDate.extension[0].url").
	Expression []string
}

// ValidationError reports why a resource body was refused.
//
// Semantic is false when the body is malformed: not JSON, not an object, a
// wrong or missing resourceType, an element R4 does not define, a value of
// the wrong JSON type, or a primitive with bad syntax (id, date, dateTime,
// instant, time, integer, code, reference). The edge answers 400.
//
// Semantic is true when the body is well-formed but breaks a rule: a required
// element is missing, a reference points to a type the element does not
// allow, a code is not in the element's required value set, or a resource
// invariant fails. The edge answers 422.
type ValidationError struct {
	Semantic bool
	Issues   []Issue
}

// Error summarises the first issue and how many follow it.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid resource")
	if len(e.Issues) == 0 {
		return b.String()
	}
	first := e.Issues[0]
	b.WriteString(": ")
	if len(first.Expression) > 0 {
		b.WriteString(strings.Join(first.Expression, ", "))
		b.WriteString(": ")
	}
	b.WriteString(first.Diagnostics)
	if n := len(e.Issues) - 1; n > 0 {
		fmt.Fprintf(&b, " (and %d more)", n)
	}
	return b.String()
}
