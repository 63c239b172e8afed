package fhir

import (
	"encoding/json"
	"fmt"
)

// Member is a top-level member WithMembers sets: Value is its JSON value,
// or nil to remove the member (and its "_name" primitive extension).
type Member struct {
	Name  string
	Value json.RawMessage
}

// StringMember is a member whose value is the JSON string s.
func StringMember(name, s string) Member {
	return Member{Name: name, Value: appendString(nil, s)}
}

// WithMembers returns raw with the given top-level members set: a member
// that exists keeps its place and gets the new value, one that does not is
// added at the end, and a nil Value removes it. Every other member keeps
// its bytes, as WithMeta keeps them; the output is compact JSON. It is how
// the server writes the few elements it owns (a Subscription's status and
// error) without re-encoding what the client sent. Values must be valid
// JSON.
func WithMembers(raw []byte, set ...Member) ([]byte, error) {
	members, err := scanTop(raw)
	if err != nil {
		return nil, fmt.Errorf("with members: %w", err)
	}
	for _, m := range set {
		if m.Value != nil && !json.Valid(m.Value) {
			return nil, fmt.Errorf("with members: %s: %w: invalid JSON value", m.Name, errSyntax)
		}
	}
	find := func(name string) (Member, bool) {
		for _, m := range set {
			if m.Name == name {
				return m, true
			}
		}
		return Member{}, false
	}
	done := make(map[string]bool, len(set))
	out := make([]byte, 0, len(raw)+64)
	out = append(out, '{')
	first := true
	sep := func() {
		if !first {
			out = append(out, ',')
		}
		first = false
	}
	for i := range members {
		m := &members[i]
		name := m.name()
		if s, ok := find(name); ok {
			done[name] = true
			if s.Value == nil {
				continue
			}
			sep()
			out = appendString(out, name)
			out = appendCompact(append(out, ':'), s.Value)
			continue
		}
		if len(name) > 1 && name[0] == '_' {
			if s, ok := find(name[1:]); ok && s.Value == nil {
				continue // the extension of a removed primitive
			}
		}
		sep()
		out = appendMember(out, m)
	}
	for _, s := range set {
		if done[s.Name] || s.Value == nil {
			continue
		}
		done[s.Name] = true
		sep()
		out = appendString(out, s.Name)
		out = appendCompact(append(out, ':'), s.Value)
	}
	return append(out, '}'), nil
}
