package fhir

import (
	"bytes"
	"fmt"
)

// WithMeta and Summary only rewrite the top level of a resource: they need
// the members and the exact bytes of their values, not a tree. The scanner
// here checks the syntax of everything it skips, so their input is still
// validated in full.

// skip checks the syntax of one value without building a tree; WithMeta
// and Summary use it for the members they copy as they are.
func (s *scanner) skip() (jsonKind, error) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0, s.fail("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return jsonObject, s.skipContainer('}', true)
	case c == '[':
		return jsonArray, s.skipContainer(']', false)
	case c == '"':
		_, err := s.string()
		return jsonString, err
	case c == '-' || (c >= '0' && c <= '9'):
		return jsonNumber, s.number()
	default:
		n, err := s.value() // literals: nothing to build
		return n.kind, err
	}
}

// skipContainer checks an object (members true) or array up to its closer.
func (s *scanner) skipContainer(closer byte, members bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // opener
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == closer {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if members {
			s.skipSpace()
			if s.pos >= len(s.data) || s.data[s.pos] != '"' {
				return s.fail("expected a member name")
			}
			if _, err := s.string(); err != nil {
				return err
			}
			s.skipSpace()
			if s.pos >= len(s.data) || s.data[s.pos] != ':' {
				return s.fail("expected ':' after a member name")
			}
			s.pos++
		}
		if _, err := s.skip(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("unterminated object or array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case closer:
			s.pos++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or %q", closer)
		}
	}
}

// topMember is a member of the top-level object with its raw value and
// whether that value contains insignificant whitespace.
type topMember struct {
	key    []byte // the name as written, without quotes
	esc    bool   // key contains escapes
	raw    []byte
	kind   jsonKind
	spaced bool
}

// name returns the decoded member name.
func (m *topMember) name() string {
	if !m.esc {
		return string(m.key)
	}
	return unescape(m.key)
}

// is reports whether the member is called name, without allocating for the
// usual unescaped names.
func (m *topMember) is(name string) bool {
	if !m.esc {
		return string(m.key) == name
	}
	return unescape(m.key) == name
}

// sameName reports whether two members have the same decoded name.
func sameName(a, b *topMember) bool {
	if !a.esc && !b.esc {
		return bytes.Equal(a.key, b.key)
	}
	return a.name() == b.name()
}

// scanTop reads a document that must be one object and returns its members
// without building trees for their values; it checks the whole document's
// syntax and refuses duplicate member names.
func scanTop(data []byte) ([]topMember, error) {
	return scanTopInto(data, make([]topMember, 0, 24))
}

// scanTopInto is scanTop appending to members: a caller that keeps the
// members only while it runs passes an array on its stack, so that the
// ingest path does not allocate them per reading.
func scanTopInto(data []byte, members []topMember) ([]topMember, error) {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", errSyntax)
	}
	s.pos++
	s.depth = 1
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return members, s.end()
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return nil, s.fail("expected a member name")
		}
		keyStart := s.pos + 1
		esc, err := s.string()
		if err != nil {
			return nil, err
		}
		m := topMember{key: s.data[keyStart : s.pos-1], esc: esc}
		for i := range members {
			if sameName(&members[i], &m) {
				return nil, fmt.Errorf("%w: duplicate member %q", errSyntax, m.name())
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return nil, s.fail("expected ':' after a member name")
		}
		s.pos++
		s.skipSpace()
		s.spaced = false
		start := s.pos
		kind, err := s.skip()
		if err != nil {
			return nil, err
		}
		m.raw, m.kind, m.spaced = s.data[start:s.pos], kind, s.spaced
		members = append(members, m)
		s.skipSpace()
		if s.pos >= len(s.data) {
			return nil, s.fail("unterminated object")
		}
		if s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.data[s.pos] != '}' {
			return nil, s.fail("expected ',' or '}' in an object")
		}
		s.pos++
		return members, s.end()
	}
}
