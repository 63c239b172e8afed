package fhir

import (
	"errors"
	"fmt"
	"time"
)

// instantLayout is a FHIR instant in UTC with millisecond precision.
const instantLayout = "2006-01-02T15:04:05.000Z"

// errNotResource is wrapped when WithMeta or Summary get bytes that are not a
// resource.
var errNotResource = errors.New("not a FHIR resource")

// WithMeta returns raw with the top-level id set to id and meta.versionId
// and meta.lastUpdated set (lastUpdated as a FHIR instant in UTC with
// millisecond precision, e.g. 2026-11-23T10:00:00.123Z).
//
// Every other member keeps its value exactly, including the other members
// of meta (profile, tag, security, source, extension) and "_x"
// primitive-extension members; numbers keep their literal text (1.50 stays
// 1.50). The client's own "_id", "meta._versionId" and "meta._lastUpdated"
// are dropped with the values they extended. The output is compact JSON
// with resourceType, id and meta first and the other members in their
// original order.
//
// WithMeta reads only the top level (and meta); it checks the syntax of the
// whole document but nothing FHIR-specific beyond resourceType: run Parse
// first.
func WithMeta(raw []byte, id, versionID string, lastUpdated time.Time) ([]byte, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("with meta: id %q is not a valid FHIR id", id)
	}
	if !ValidID(versionID) {
		return nil, fmt.Errorf("with meta: version %q is not a valid FHIR id", versionID)
	}
	lastUpdated = lastUpdated.UTC()
	if y := lastUpdated.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("with meta: lastUpdated %v is outside years 0001-9999", lastUpdated)
	}
	var top [24]topMember // on the stack: WithMeta runs for every stored reading
	members, err := scanTopInto(raw, top[:0])
	if err != nil {
		return nil, fmt.Errorf("with meta: %w", err)
	}
	resourceType, meta, err := resourceMembers(members)
	if err != nil {
		return nil, fmt.Errorf("with meta: %w", err)
	}
	var metaTop [8]topMember
	metaMembers := metaTop[:0]
	if meta != nil {
		if metaMembers, err = scanTopInto(meta.raw, metaMembers); err != nil {
			return nil, fmt.Errorf("with meta: meta: %w", err)
		}
	}

	out := make([]byte, 0, len(raw)+128)
	out = append(out, `{"resourceType":`...)
	out = append(out, resourceType.raw...)
	out = append(out, `,"id":`...)
	out = appendString(out, id)
	out = append(out, `,"meta":{"versionId":`...)
	out = appendString(out, versionID)
	out = append(out, `,"lastUpdated":"`...)
	out = lastUpdated.AppendFormat(out, instantLayout)
	out = append(out, '"')
	for i := range metaMembers {
		if m := &metaMembers[i]; !m.is("versionId") && !m.is("lastUpdated") && !m.is("_versionId") && !m.is("_lastUpdated") {
			out = appendMember(append(out, ','), m)
		}
	}
	out = append(out, '}')
	for i := range members {
		if m := &members[i]; !m.is("resourceType") && !m.is("id") && !m.is("_id") && !m.is("meta") {
			out = appendMember(append(out, ','), m)
		}
	}
	return append(out, '}'), nil
}

// resourceMembers finds resourceType (a string) and meta (an object, or
// nil) among the top-level members.
func resourceMembers(members []topMember) (resourceType, meta *topMember, err error) {
	for i := range members {
		switch m := &members[i]; {
		case m.is("resourceType"):
			resourceType = m
		case m.is("meta"):
			meta = m
		}
	}
	switch {
	case resourceType == nil:
		return nil, nil, fmt.Errorf("%w: resourceType is missing", errNotResource)
	case resourceType.kind != jsonString:
		return nil, nil, fmt.Errorf("%w: resourceType is not a string", errNotResource)
	case meta != nil && meta.kind != jsonObject:
		return nil, nil, fmt.Errorf("%w: meta is not an object", errNotResource)
	}
	return resourceType, meta, nil
}

// appendMember appends "key":value, compacting the value if it had
// whitespace.
func appendMember(dst []byte, m *topMember) []byte {
	dst = append(dst, '"')
	dst = append(dst, m.key...)
	dst = append(dst, '"', ':')
	if !m.spaced {
		return append(dst, m.raw...)
	}
	return appendCompact(dst, m.raw)
}

// appendCompact appends valid JSON without the whitespace between tokens.
// Strings, numbers and literals are copied byte for byte.
func appendCompact(dst, raw []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			for i < len(raw) && raw[i] != '"' && raw[i] != '\\' {
				i++
			}
			if i < len(raw) && raw[i] == '\\' {
				i++ // skip the escaped character
				continue
			}
			inString = false
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, raw[start:i]...)
			start = i + 1
		}
	}
	return append(dst, raw[start:]...)
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
