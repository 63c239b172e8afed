package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Resource is a validated resource as the client sent it.
type Resource struct {
	// Type is the resourceType.
	Type string
	// ID is the body's id, "" when it had none.
	ID string
	// Model points to the golang-fhir-models struct decoded from Raw, e.g.
	// *fhirmodels.Observation. Use it to read values, never to produce
	// stored bytes: the models drop primitive extensions.
	Model any
	// Raw is a copy of the body as received, not re-encoded.
	Raw []byte
}

// Parse validates body as a resource of type typ; typ "" takes the type
// from the body's resourceType.
//
// An unregistered type gives an error wrapping ErrUnsupportedType. Anything
// wrong with the body gives a *ValidationError listing every problem found,
// each with the location of the element: Semantic false for malformed input
// (JSON syntax, unknown elements, wrong JSON types, bad primitive syntax,
// malformed references), Semantic true for well-formed input that breaks a
// rule (missing required elements, references to types the element does not
// allow, codes outside a required value set).
//
// A body nested deeper than MaxDepth is refused before anything else is
// checked.
//
// Parse checks what the model types can tell — elements, JSON types,
// cardinality 1.., required value sets — plus the lexical form of ids,
// dates, date-times, instants, times, integers and references, and the
// allowed targets of references from the registry's tables. It does not
// check choice exclusivity (value[x] given twice), invariants other than
// dom-2 and dom-4, terminology beyond required bindings, or that local
// references resolve.
func (r *Registry) Parse(typ string, body []byte) (*Resource, error) {
	if typ != "" && !r.Supports(typ) {
		return nil, fmt.Errorf("parse %q: %w", typ, ErrUnsupportedType)
	}
	root, err := parseTreeLimit(body, MaxDepth)
	if errors.Is(err, errTooDeep) {
		return nil, malformed(SeverityFatal, fmt.Sprintf(
			"body is too deeply nested: objects and arrays may nest at most %d levels", MaxDepth))
	}
	if err != nil {
		return nil, malformed(SeverityFatal, "body is not valid JSON: "+err.Error())
	}
	if root.kind != jsonObject {
		return nil, malformed(SeverityFatal, "body must be a JSON object, found "+root.kind.String())
	}
	rtNode := root.member("resourceType")
	switch {
	case rtNode == nil:
		return nil, malformed(SeverityError, "resourceType is missing")
	case rtNode.kind != jsonString:
		return nil, malformed(SeverityError, "resourceType must be a string")
	}
	bodyType := rtNode.str()
	if !validTypeName(bodyType) {
		return nil, malformed(SeverityError, fmt.Sprintf("resourceType %q is not a resource type name", bodyType))
	}
	if typ == "" {
		if !r.Supports(bodyType) {
			return nil, fmt.Errorf("parse %q: %w", bodyType, ErrUnsupportedType)
		}
		typ = bodyType
	}
	if bodyType != typ {
		return nil, malformed(SeverityError,
			fmt.Sprintf("resourceType is %q but the request is for %q", bodyType, typ))
	}
	rt := r.types[typ]

	v := validator{reg: r, path: make([]byte, 0, 128)}
	v.path = append(v.path, typ...)
	v.resource(rt, &root, false)
	if v.dropped {
		note := Issue{
			Severity: SeverityInformation, Code: IssueInformation,
			Diagnostics: fmt.Sprintf("more than %d issues; the rest are not reported", maxIssues),
		}
		if len(v.structural) > 0 {
			v.structural = append(v.structural, note)
		} else {
			v.semantic = append(v.semantic, note)
		}
	}
	if len(v.structural) > 0 {
		return nil, &ValidationError{Issues: v.structural}
	}
	if len(v.semantic) > 0 {
		return nil, &ValidationError{Semantic: true, Issues: v.semantic}
	}

	model := rt.newModel()
	if err := json.Unmarshal(body, model); err != nil {
		// The walk above is meant to refuse everything the model refuses;
		// this is the safety net if it ever does not.
		return nil, malformed(SeverityError, "model: "+err.Error())
	}
	res := &Resource{Type: typ, Model: model, Raw: bytes.Clone(body)}
	if id := root.member("id"); id != nil {
		res.ID = id.str()
	}
	return res, nil
}

// malformed builds a one-issue 400 ValidationError.
func malformed(severity, diagnostics string) *ValidationError {
	return &ValidationError{Issues: []Issue{{Severity: severity, Code: IssueStructure, Diagnostics: diagnostics}}}
}
