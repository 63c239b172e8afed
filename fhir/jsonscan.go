package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxDepth is how deeply objects and arrays may nest in a body Parse
// accepts, the resource itself being level 1. Real resources stay far
// below it: an extension inside an extension costs two levels, a nested
// Questionnaire item two, a contained resource two. Deeper input is refused
// with a 400 before it costs a walk (OWASP API4:2023, unrestricted resource
// consumption).
const MaxDepth = 64

// maxDepth bounds nesting for every document the scanner reads, stored ones
// included, so that hostile input cannot grow the stack without limit.
const maxDepth = 200

// jsonKind is the JSON type of a value.
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonObject
	jsonArray
)

// String names the kind the way diagnostics talk about it.
func (k jsonKind) String() string {
	switch k {
	case jsonNull:
		return "null"
	case jsonBool:
		return "boolean"
	case jsonNumber:
		return "number"
	case jsonString:
		return "string"
	case jsonObject:
		return "object"
	case jsonArray:
		return "array"
	}
	return "unknown"
}

// jsonNode is one JSON value. raw aliases the input, so nothing is copied
// until a string is actually needed.
type jsonNode struct {
	kind    jsonKind
	esc     bool   // a string value that contains escapes
	raw     []byte // the value's exact bytes; strings include their quotes
	members []jsonMember
	elems   []jsonNode
}

// jsonMember is one "name": value pair of an object, in document order.
type jsonMember struct {
	key  []byte // the name without quotes, still escaped when kesc
	kesc bool
	val  jsonNode
}

// name returns the decoded member name.
func (m *jsonMember) name() string {
	if !m.kesc {
		return string(m.key)
	}
	return unescape(m.key)
}

// str returns the decoded value of a string node ("" for other kinds).
func (n *jsonNode) str() string {
	if n.kind != jsonString || len(n.raw) < 2 {
		return ""
	}
	if !n.esc {
		return string(n.raw[1 : len(n.raw)-1])
	}
	return unescape(n.raw[1 : len(n.raw)-1])
}

// member returns the value of the first member called name, or nil.
func (n *jsonNode) member(name string) *jsonNode {
	for i := range n.members {
		m := &n.members[i]
		if (!m.kesc && string(m.key) == name) || (m.kesc && m.name() == name) {
			return &m.val
		}
	}
	return nil
}

// unescape decodes the content of a JSON string that the scanner already
// checked, so the decoder cannot fail on it.
func unescape(content []byte) string {
	quoted := make([]byte, 0, len(content)+2)
	quoted = append(quoted, '"')
	quoted = append(quoted, content...)
	quoted = append(quoted, '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return string(content)
	}
	return s
}

// errSyntax is wrapped by every scanner error.
var errSyntax = errors.New("invalid JSON")

// errTooDeep is wrapped, beside errSyntax, by the error of input nested
// deeper than the scanner's limit.
var errTooDeep = errors.New("too deeply nested")

// scanner is a strict RFC 8259 reader that also refuses what PostgreSQL's
// jsonb cannot store (invalid UTF-8, \u0000, unpaired surrogates), because a
// body accepted here must be storable as sent.
type scanner struct {
	data   []byte
	pos    int
	depth  int
	limit  int  // deepest nesting allowed; 0 means maxDepth
	spaced bool // whitespace was skipped since the flag was last cleared
}

func (s *scanner) fail(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
			s.spaced = true
		default:
			return
		}
	}
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.fail("unexpected data after the top-level value")
	}
	return nil
}

// value reads one value into a tree.
func (s *scanner) value() (jsonNode, error) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return jsonNode{}, s.fail("unexpected end of input")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		esc, err := s.string()
		if err != nil {
			return jsonNode{}, err
		}
		return jsonNode{kind: jsonString, esc: esc, raw: s.data[start:s.pos]}, nil
	case c == 't':
		return s.literal("true", jsonBool)
	case c == 'f':
		return s.literal("false", jsonBool)
	case c == 'n':
		return s.literal("null", jsonNull)
	case c == '-' || (c >= '0' && c <= '9'):
		if err := s.number(); err != nil {
			return jsonNode{}, err
		}
		return jsonNode{kind: jsonNumber, raw: s.data[start:s.pos]}, nil
	default:
		return jsonNode{}, s.fail("unexpected character %q", c)
	}
}

func (s *scanner) literal(word string, kind jsonKind) (jsonNode, error) {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return jsonNode{}, s.fail("invalid literal")
	}
	start := s.pos
	s.pos += len(word)
	return jsonNode{kind: kind, raw: s.data[start:s.pos]}, nil
}

func (s *scanner) enter() error {
	s.depth++
	limit := s.limit
	if limit <= 0 || limit > maxDepth {
		limit = maxDepth
	}
	if s.depth > limit {
		return fmt.Errorf("%w at offset %d: %w: nested deeper than %d levels", errSyntax, s.pos, errTooDeep, limit)
	}
	return nil
}

func (s *scanner) object() (jsonNode, error) {
	if err := s.enter(); err != nil {
		return jsonNode{}, err
	}
	start := s.pos
	s.pos++ // '{'
	n := jsonNode{kind: jsonObject}
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		n.raw = s.data[start:s.pos]
		return n, nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return jsonNode{}, s.fail("expected a member name")
		}
		keyStart := s.pos + 1
		esc, err := s.string()
		if err != nil {
			return jsonNode{}, err
		}
		key := s.data[keyStart : s.pos-1]
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return jsonNode{}, s.fail("expected ':' after a member name")
		}
		s.pos++
		v, err := s.value()
		if err != nil {
			return jsonNode{}, err
		}
		n.members = append(n.members, jsonMember{key: key, kesc: esc, val: v})
		s.skipSpace()
		if s.pos >= len(s.data) {
			return jsonNode{}, s.fail("unterminated object")
		}
		if s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.data[s.pos] != '}' {
			return jsonNode{}, s.fail("expected ',' or '}' in an object")
		}
		s.pos++
		s.depth--
		n.raw = s.data[start:s.pos]
		return n, nil
	}
}

func (s *scanner) array() (jsonNode, error) {
	if err := s.enter(); err != nil {
		return jsonNode{}, err
	}
	start := s.pos
	s.pos++ // '['
	n := jsonNode{kind: jsonArray}
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		n.raw = s.data[start:s.pos]
		return n, nil
	}
	for {
		v, err := s.value()
		if err != nil {
			return jsonNode{}, err
		}
		n.elems = append(n.elems, v)
		s.skipSpace()
		if s.pos >= len(s.data) {
			return jsonNode{}, s.fail("unterminated array")
		}
		if s.data[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.data[s.pos] != ']' {
			return jsonNode{}, s.fail("expected ',' or ']' in an array")
		}
		s.pos++
		s.depth--
		n.raw = s.data[start:s.pos]
		return n, nil
	}
}

// string reads a string starting at its opening quote and reports whether it
// contains escapes.
func (s *scanner) string() (bool, error) {
	s.pos++ // opening quote
	esc := false
	for s.pos < len(s.data) {
		// Fast path: plain ASCII runs, with the index in a local.
		i, data := s.pos, s.data
		for i < len(data) && data[i] >= 0x20 && data[i] < utf8.RuneSelf && data[i] != '"' && data[i] != '\\' {
			i++
		}
		s.pos = i
		if s.pos >= len(s.data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return esc, nil
		case c == '\\':
			esc = true
			if err := s.escape(); err != nil {
				return false, err
			}
		case c < 0x20:
			return false, s.fail("control character in a string")
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size <= 1 {
				return false, s.fail("invalid UTF-8 in a string")
			}
			s.pos += size
		}
	}
	return false, s.fail("unterminated string")
}

func (s *scanner) escape() error {
	if s.pos+1 >= len(s.data) {
		return s.fail("unterminated escape")
	}
	switch s.data[s.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos += 2
		return nil
	case 'u':
	default:
		return s.fail("invalid escape")
	}
	r, ok := hex4(s.data, s.pos+2)
	if !ok {
		return s.fail("invalid \\u escape")
	}
	switch {
	case r == 0:
		return s.fail("\\u0000 is not allowed")
	case r >= 0xDC00 && r <= 0xDFFF:
		return s.fail("unpaired surrogate in \\u escape")
	case r >= 0xD800 && r <= 0xDBFF:
		// A high surrogate must be followed by an escaped low surrogate.
		next := s.pos + 6
		if next+1 >= len(s.data) || s.data[next] != '\\' || s.data[next+1] != 'u' {
			return s.fail("unpaired surrogate in \\u escape")
		}
		low, ok := hex4(s.data, next+2)
		if !ok || low < 0xDC00 || low > 0xDFFF {
			return s.fail("unpaired surrogate in \\u escape")
		}
		s.pos += 12
		return nil
	}
	s.pos += 6
	return nil
}

// hex4 decodes four hex digits at data[at:].
func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.pos < len(s.data) && s.data[s.pos] >= '1' && s.data[s.pos] <= '9':
		s.digits()
	default:
		return s.fail("invalid number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.fail("invalid number: no digits after '.'")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.fail("invalid number: no digits in the exponent")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

// parseTree reads a whole document into a tree.
func parseTree(data []byte) (jsonNode, error) {
	return parseTreeLimit(data, maxDepth)
}

// parseTreeLimit is parseTree allowing at most limit levels of nesting.
func parseTreeLimit(data []byte, limit int) (jsonNode, error) {
	s := scanner{data: data, limit: limit}
	n, err := s.value()
	if err != nil {
		return jsonNode{}, err
	}
	if err := s.end(); err != nil {
		return jsonNode{}, err
	}
	return n, nil
}
