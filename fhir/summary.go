package fhir

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// The tag R4 asks servers to add to resources they return incomplete
// (search §3.1.1.5.8, _summary; v3 ObservationValue SUBSETTED).
const (
	subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	subsettedCode   = "SUBSETTED"
	subsettedTag    = `{"system":"` + subsettedSystem + `","code":"` + subsettedCode + `"}`
)

// Summary returns the _summary=true form of a stored resource of type typ:
// the top-level elements R4 marks isSummary for the type, with their "_x"
// primitive extensions, plus id, meta, implicitRules and modifierExtension,
// and the SUBSETTED tag added to meta.tag (once). Kept members keep their
// values exactly; the output is compact with resourceType, id and meta
// first.
func (r *Registry) Summary(typ string, raw []byte) ([]byte, error) {
	rt := r.types[typ]
	if rt == nil {
		return nil, fmt.Errorf("summary %q: %w", typ, ErrUnsupportedType)
	}
	return subset(typ, raw, rt.inSummary)
}

// Elements returns the _elements form of a stored resource (R4 search
// §3.1.1.5.9): the named top-level elements (and their "_x" primitive
// extensions), plus id, meta, implicitRules and modifierExtension, tagged
// SUBSETTED like Summary. Unknown names are simply absent.
func (r *Registry) Elements(typ string, raw []byte, names []string) ([]byte, error) {
	if r.types[typ] == nil {
		return nil, fmt.Errorf("elements %q: %w", typ, ErrUnsupportedType)
	}
	return subset(typ, raw, func(name string) bool {
		if name == "implicitRules" || name == "modifierExtension" || slices.Contains(names, name) {
			return true
		}
		// "value" asks for the choice element, whatever its type.
		return slices.ContainsFunc(names, func(n string) bool {
			rest, ok := strings.CutPrefix(name, n)
			return ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z'
		})
	})
}

// WithoutText returns the _summary=data form: everything but the
// narrative, tagged SUBSETTED.
func (r *Registry) WithoutText(typ string, raw []byte) ([]byte, error) {
	if r.types[typ] == nil {
		return nil, fmt.Errorf("summary %q: %w", typ, ErrUnsupportedType)
	}
	return subset(typ, raw, func(name string) bool { return name != "text" })
}

// subset keeps resourceType, id, the SUBSETTED meta and the top-level
// members keep accepts (by name without a leading "_").
func subset(typ string, raw []byte, keep func(name string) bool) ([]byte, error) {
	members, err := scanTop(raw)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	resourceType, meta, err := resourceMembers(members)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	rtNode := jsonNode{kind: jsonString, raw: resourceType.raw, esc: bytes.IndexByte(resourceType.raw, '\\') >= 0}
	if got := rtNode.str(); got != typ {
		return nil, fmt.Errorf("summary: %w: resourceType is %q, not %q", errNotResource, got, typ)
	}

	out := make([]byte, 0, len(raw))
	out = append(out, `{"resourceType":`...)
	out = append(out, resourceType.raw...)
	for i := range members {
		if members[i].is("id") {
			out = appendMember(append(out, ','), &members[i])
		}
	}
	out, err = appendSubsettedMeta(append(out, `,"meta":`...), meta)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	for i := range members {
		switch m := &members[i]; {
		case m.is("resourceType") || m.is("id") || m.is("meta"):
		case keep(strings.TrimPrefix(m.name(), "_")):
			out = appendMember(append(out, ','), m)
		}
	}
	return append(out, '}'), nil
}

// appendSubsettedMeta appends meta (nil when the resource had none) with
// the SUBSETTED tag added unless it is already there.
func appendSubsettedMeta(dst []byte, meta *topMember) ([]byte, error) {
	var members []topMember
	if meta != nil {
		var err error
		if members, err = scanTop(meta.raw); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
	}
	dst = append(dst, '{')
	var tags *topMember
	for i := range members {
		if members[i].is("tag") {
			tags = &members[i]
			continue
		}
		dst = appendMember(dst, &members[i])
		dst = append(dst, ',')
	}
	dst = append(dst, `"tag":[`...)
	present, n := false, 0
	if tags != nil {
		list, err := parseTree(tags.raw)
		if err != nil || list.kind != jsonArray {
			return nil, fmt.Errorf("%w: meta.tag is not an array", errNotResource)
		}
		n = len(list.elems)
		for i := range list.elems {
			e := &list.elems[i]
			if e.kind == jsonObject && memberString(e, "system") == subsettedSystem && memberString(e, "code") == subsettedCode {
				present = true
			}
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCompact(dst, e.raw)
		}
	}
	if !present {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, subsettedTag...)
	}
	return append(dst, ']', '}'), nil
}

// memberString returns the decoded string value of a member, or "".
func memberString(n *jsonNode, name string) string {
	if m := n.member(name); m != nil {
		return m.str()
	}
	return ""
}
