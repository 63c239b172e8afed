package fhir

import (
	"fmt"
	"slices"
	"strings"
)

// sdPrefix is how Reference.type may spell a core type as an absolute URI.
const sdPrefix = "http://hl7.org/fhir/StructureDefinition/"

// refKind is how a Reference.reference string addresses its target.
type refKind uint8

const (
	refUntyped   refKind = iota // #local, urn:uuid:, urn:oid:, or a URL without /Type/id
	refTyped                    // Type/id, Type/id/_history/v, Type?query, or a URL ending in /Type/id
	refMalformed                // relative but not Type/id
)

// parseReference classifies a Reference.reference value (R4 references
// §2.3.0.1) and returns the target type of a typed one. For a malformed one
// the string says what is wrong.
func parseReference(s string) (refKind, string, string) {
	switch {
	case s == "":
		return refMalformed, "", "reference is empty"
	case s[0] == '#':
		return refUntyped, "", "" // contained resource (or "#", the container)
	case strings.HasPrefix(s, "urn:"):
		return refUntyped, "", "" // urn:uuid:, urn:oid: within a Bundle
	}
	if i := strings.Index(s, "://"); i > 0 {
		if typ, ok := absoluteTarget(s[i+3:]); ok {
			return refTyped, typ, ""
		}
		return refUntyped, "", ""
	}
	// A conditional reference (Type?search) is resolved by the server in a
	// transaction; its type still has to fit.
	if typ, query, ok := strings.Cut(s, "?"); ok {
		if !validTypeName(typ) || query == "" {
			return refMalformed, "", fmt.Sprintf("reference %q is not Type?search", s)
		}
		return refTyped, typ, ""
	}
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 2:
	case len(parts) == 4 && parts[2] == "_history":
		if !ValidID(parts[3]) {
			return refMalformed, "", fmt.Sprintf("version %q in reference %q is not a valid id", parts[3], s)
		}
	default:
		return refMalformed, "", fmt.Sprintf("reference %q is not Type/id, a URL, #local or urn:uuid:/urn:oid:", s)
	}
	if !validTypeName(parts[0]) {
		return refMalformed, "", fmt.Sprintf("reference %q does not start with a resource type", s)
	}
	if !ValidID(parts[1]) {
		return refMalformed, "", fmt.Sprintf("id %q in reference %q is not a valid id", parts[1], s)
	}
	return refTyped, parts[0], ""
}

// absoluteTarget finds Type/id or Type/id/_history/v at the end of the path
// of a URL (without scheme).
func absoluteTarget(rest string) (string, bool) {
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, "/")
	if n := len(parts); n >= 5 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	n := len(parts)
	// parts[0] is the host; Type and id must follow it.
	if n < 3 || !validTypeName(parts[n-2]) || !ValidID(parts[n-1]) {
		return "", false
	}
	return parts[n-2], true
}

// typeFromURI returns the resource type a Reference.type names: "Patient" or
// "http://hl7.org/fhir/StructureDefinition/Patient". Other URIs (logical
// models) are not checked.
func typeFromURI(uri string) (string, bool) {
	uri = strings.TrimPrefix(uri, sdPrefix)
	return uri, validTypeName(uri)
}

// describeTargets lists allowed types for a diagnostic: "A, B or C".
func describeTargets(types []string) string {
	if len(types) == 1 {
		return types[0]
	}
	return strings.Join(types[:len(types)-1], ", ") + " or " + types[len(types)-1]
}

// reference checks a Reference object's reference and type against the
// types its element allows.
func (v *validator) reference(f *field, n *jsonNode) {
	allowed := v.rt.references[string(v.rpath)]
	if allowed == nil {
		allowed = f.targets
	}
	var target string
	if ref := n.member("reference"); ref != nil && ref.kind == jsonString {
		kind, typ, problem := parseReference(ref.str())
		mark := v.push("reference")
		switch {
		case kind == refMalformed:
			v.fail(IssueValue, "%s", problem)
		case kind == refTyped && allowed != nil && !slices.Contains(allowed, typ):
			v.reject(IssueValue, "%s may reference %s, not %s", v.path[:mark.path], describeTargets(allowed), typ)
		case kind == refTyped:
			target = typ
		}
		v.pop(mark)
	}
	if t := n.member("type"); t != nil && t.kind == jsonString {
		typ, ok := typeFromURI(t.str())
		mark := v.push("type")
		switch {
		case !ok:
		case allowed != nil && !slices.Contains(allowed, typ):
			v.reject(IssueValue, "%s may reference %s, not %s", v.path[:mark.path], describeTargets(allowed), typ)
		case target != "" && typ != target:
			v.reject(IssueValue, "type %s does not match the reference to a %s", typ, target)
		}
		v.pop(mark)
	}
}
