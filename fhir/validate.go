package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// maxIssues caps how many issues one body can produce, so that a hostile
// body cannot make a huge OperationOutcome.
const maxIssues = 100

// validator walks a parsed body against the schemas of a Registry. It
// collects structural issues (400) and semantic ones (422) separately; Parse
// reports the structural ones if there are any.
type validator struct {
	reg        *Registry
	rt         *resourceType // the resource whose reference table applies
	path       []byte        // "Observation.component[0].code"
	rpath      []byte        // "Observation.component.code": reference table key
	structural []Issue
	semantic   []Issue
	dropped    bool
}

// mark is where push left the paths, for pop.
type mark struct{ path, rpath int }

func (v *validator) push(name string) mark {
	m := mark{len(v.path), len(v.rpath)}
	v.path = append(append(v.path, '.'), name...)
	v.rpath = append(append(v.rpath, '.'), name...)
	return m
}

func (v *validator) pushIndex(i int) mark {
	m := mark{len(v.path), len(v.rpath)}
	v.path = append(strconv.AppendInt(append(v.path, '['), int64(i), 10), ']')
	return m
}

func (v *validator) pop(m mark) {
	v.path, v.rpath = v.path[:m.path], v.rpath[:m.rpath]
}

func (v *validator) issue(list *[]Issue, code, format string, args ...any) {
	if len(v.structural)+len(v.semantic) >= maxIssues {
		v.dropped = true
		return
	}
	*list = append(*list, Issue{
		Severity:    SeverityError,
		Code:        code,
		Diagnostics: fmt.Sprintf(format, args...),
		Expression:  []string{string(v.path)},
	})
}

// fail records a structural issue at the current path.
func (v *validator) fail(code, format string, args ...any) {
	v.issue(&v.structural, code, format, args...)
}

// reject records a semantic issue at the current path.
func (v *validator) reject(code, format string, args ...any) {
	v.issue(&v.semantic, code, format, args...)
}

// resource validates a resource object of a registered type. contained is
// true inside "contained", where R4 forbids further nesting.
func (v *validator) resource(rt *resourceType, n *jsonNode, contained bool) {
	saved, savedR := v.rt, v.rpath
	v.rt = rt
	v.rpath = append(make([]byte, 0, 64), rt.name...)
	v.object(rt.schema, n, contained)
	v.rt, v.rpath = saved, savedR
}

// object validates the members of an object against s, then s's required
// elements.
func (v *validator) object(s *schema, n *jsonNode, contained bool) {
	v.duplicates(n)
	for i := range n.members {
		m := &n.members[i]
		key := m.key
		if m.kesc {
			key = []byte(m.name())
		}
		if f := s.fields[string(key)]; f != nil {
			mk := v.push(string(key))
			v.element(f, &m.val, n)
			v.pop(mk)
			continue
		}
		if s.resource {
			switch string(key) {
			case "resourceType":
				continue // checked by the caller
			case "contained":
				mk := v.push("contained")
				v.contained(&m.val, contained)
				v.pop(mk)
				continue
			}
		}
		if len(key) > 1 && key[0] == '_' {
			if f := s.fields[string(key[1:])]; f != nil && f.kind.primitive() && !f.noExt {
				mk := v.push(string(key))
				v.primitiveExtension(f, &m.val)
				v.pop(mk)
				continue
			}
		}
		mk := v.push(string(key))
		v.fail(IssueStructure, "unknown element %q", key)
		v.pop(mk)
	}
	for _, f := range s.required {
		if n.member(f.name) != nil || (f.kind.primitive() && !f.noExt && n.member("_"+f.name) != nil) {
			continue
		}
		mk := v.push(f.name)
		v.reject(IssueRequired, "%s is required", v.path)
		v.pop(mk)
	}
	for _, group := range s.choices {
		var present []string
		for _, f := range group {
			if n.member(f.name) != nil || (f.kind.primitive() && n.member("_"+f.name) != nil) {
				present = append(present, f.name)
			}
		}
		if len(present) == 1 {
			continue
		}
		base, _ := choiceBase(group[0].name)
		mk := v.push(base + "[x]")
		if len(present) == 0 {
			v.reject(IssueRequired, "%s is required", v.path)
		} else {
			v.reject(IssueStructure, "%s has more than one type: %s", v.path, strings.Join(present, ", "))
		}
		v.pop(mk)
	}
}

// duplicates reports member names that occur more than once; JSON decoders
// disagree on which one wins, so FHIR JSON must not have them.
func (v *validator) duplicates(n *jsonNode) {
	const small = 16 // below this a quadratic scan beats a map
	if len(n.members) < 2 {
		return
	}
	simple := len(n.members) <= small
	for i := range n.members {
		simple = simple && !n.members[i].kesc
	}
	if simple {
		for i := 1; i < len(n.members); i++ {
			for j := range i {
				if bytes.Equal(n.members[i].key, n.members[j].key) {
					v.duplicate(n.members[i].name())
					break
				}
			}
		}
		return
	}
	seen := make(map[string]struct{}, len(n.members))
	for i := range n.members {
		name := n.members[i].name()
		if _, dup := seen[name]; dup {
			v.duplicate(name)
			continue
		}
		seen[name] = struct{}{}
	}
}

func (v *validator) duplicate(name string) {
	mk := v.push(name)
	v.fail(IssueStructure, "member %q occurs more than once", name)
	v.pop(mk)
}

// element validates the value of member f of object parent.
func (v *validator) element(f *field, n *jsonNode, parent *jsonNode) {
	if n.kind == jsonNull {
		v.fail(IssueStructure, "null is not a valid value; leave the element out")
		return
	}
	if !f.list {
		if n.kind == jsonArray && f.kind != kindAny {
			v.fail(IssueStructure, "expected a single value, found an array")
			return
		}
		v.value(f, n)
		return
	}
	if n.kind != jsonArray {
		v.fail(IssueStructure, "expected an array, found %s", n.kind)
		return
	}
	var ext *jsonNode
	if f.kind.primitive() {
		ext = parent.member("_" + f.name)
	}
	for i := range n.elems {
		e := &n.elems[i]
		mk := v.pushIndex(i)
		switch {
		case e.kind != jsonNull:
			v.value(f, e)
		case !f.kind.primitive():
			v.fail(IssueStructure, "null is not a valid array entry here")
		case ext == nil || ext.kind != jsonArray || i >= len(ext.elems) || ext.elems[i].kind == jsonNull:
			v.fail(IssueStructure, "null entry without an entry at the same index of _%s", f.name)
		}
		v.pop(mk)
	}
	if ext != nil && ext.kind == jsonArray && len(ext.elems) != len(n.elems) {
		v.fail(IssueStructure, "_%s has %d entries but %s has %d", f.name, len(ext.elems), f.name, len(n.elems))
	}
}

// value validates one (non-array) value of f.
func (v *validator) value(f *field, n *jsonNode) {
	switch f.kind {
	case kindString:
		if !v.kindIs(n, jsonString) {
			return
		}
		if f.syntax != syntaxNone {
			if s := n.str(); !f.syntax.valid(s) {
				v.fail(IssueValue, "%q is not a valid %s", s, f.syntax)
			}
		}
	case kindBool:
		v.kindIs(n, jsonBool)
	case kindInteger:
		if v.kindIs(n, jsonNumber) && !validInteger(n.raw) {
			v.fail(IssueValue, "%s is not a valid integer (32-bit, no fraction or exponent)", n.raw)
		}
	case kindDecimal:
		v.kindIs(n, jsonNumber)
	case kindCode:
		if v.kindIs(n, jsonString) {
			v.code(f, n)
		}
	case kindStruct:
		if !v.kindIs(n, jsonObject) {
			return
		}
		v.object(f.elem, n, false)
		if f.ref {
			v.reference(f, n)
		}
	case kindAny:
	}
}

// kindIs reports whether n has the JSON kind want, recording an issue if not.
func (v *validator) kindIs(n *jsonNode, want jsonKind) bool {
	if n.kind == want {
		return true
	}
	v.fail(IssueStructure, "expected %s %s, found %s", article(want), want, n.kind)
	return false
}

func article(k jsonKind) string {
	if k == jsonObject || k == jsonArray {
		return "an"
	}
	return "a"
}

// code checks a value bound to a required value set. Bad syntax is
// malformed input (400); a well-formed code that is not in the value set is
// a semantic error (422, code-invalid). The model's own UnmarshalJSON is the
// judge, fed the same bytes json.Unmarshal will feed it, so Parse never
// accepts what the model then refuses.
func (v *validator) code(f *field, n *jsonNode) {
	s := n.str()
	if !validCodeSyntax(s) {
		v.fail(IssueValue, "%q is not a valid code", s)
		return
	}
	if f.enum == nil {
		return
	}
	target := reflect.New(f.enum).Interface()
	u, ok := target.(json.Unmarshaler)
	if !ok {
		return
	}
	if err := u.UnmarshalJSON(n.raw); err != nil {
		v.reject(IssueCodeInvalid, "%q is not a valid %s code", s, f.enum.Name())
		return
	}
	if c, ok := target.(interface{ Code() string }); ok && c.Code() != s {
		v.reject(IssueCodeInvalid, "%q is not a valid %s code", s, f.enum.Name())
	}
}

// primitiveExtension validates a "_name" sibling: an object with id and
// extension, or for a repeating primitive an array of those and nulls.
func (v *validator) primitiveExtension(f *field, n *jsonNode) {
	if !f.list {
		if v.kindIs(n, jsonObject) {
			v.object(v.reg.element, n, false)
		}
		return
	}
	if !v.kindIs(n, jsonArray) {
		return
	}
	for i := range n.elems {
		e := &n.elems[i]
		if e.kind == jsonNull {
			continue
		}
		mk := v.pushIndex(i)
		if v.kindIs(e, jsonObject) {
			v.object(v.reg.element, e, false)
		}
		v.pop(mk)
	}
}

// contained validates the contained resources of a DomainResource. Types
// the registry knows are validated in full, with their own reference table;
// others only need to be objects with a resourceType.
func (v *validator) contained(n *jsonNode, nested bool) {
	if nested {
		v.reject(IssueInvariant, "dom-2: a contained resource must not contain resources")
		return
	}
	if !v.kindIs(n, jsonArray) {
		return
	}
	for i := range n.elems {
		e := &n.elems[i]
		mk := v.pushIndex(i)
		v.containedResource(e)
		v.pop(mk)
	}
}

func (v *validator) containedResource(e *jsonNode) {
	if !v.kindIs(e, jsonObject) {
		return
	}
	rtNode := e.member("resourceType")
	if rtNode == nil || rtNode.kind != jsonString || !validTypeName(rtNode.str()) {
		v.fail(IssueStructure, "a contained resource needs a resourceType")
		return
	}
	if meta := e.member("meta"); meta != nil && (meta.member("versionId") != nil || meta.member("lastUpdated") != nil) {
		v.reject(IssueInvariant, "dom-4: a contained resource must not have meta.versionId or meta.lastUpdated")
	}
	if rt := v.reg.types[rtNode.str()]; rt != nil {
		v.resource(rt, e, true)
	}
}
