package devices

import "strconv"

// compactFields are the members of one compact item; bit k of has says
// whether member k of compactMembers was present.
type compactFields struct {
	strs [4]string  // id, t, type, unit
	nums [5]float64 // value, systolic, diastolic, mean, pulse
	has  uint16
}

// Indexes of the string members in compactFields.strs, and of the first
// numeric member among compactMembers.
const (
	memberID = iota
	memberT
	memberType
	memberUnit
	firstNumber
)

// compactMembers are the members of a compact item, strings then numbers.
// The numbers are the Values keys.
func compactMembers() [9]string {
	return [9]string{"id", "t", "type", "unit", ValueField, "systolic", "diastolic", "mean", "pulse"}
}

func (it *compactFields) present(member int) bool { return it.has&(1<<member) != 0 }

// scan reads raw, a compact item, without encoding/json when it is in the
// plain form devices send: one object of distinct known members, strings
// of printable ASCII without escapes, numbers that fit a float64. It
// reports false, having decided nothing, for anything else (escapes,
// null, other types, unknown, duplicate or differently cased members,
// trailing data): decode then gives what encoding/json makes of it. Where
// scan says true, decode would fill the same fields (FuzzCompactScan).
func (it *compactFields) scan(raw []byte) bool {
	*it = compactFields{}
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return skipSpace(raw, i+1) == len(raw)
	}
	for {
		ks, ke, ok := plainString(raw, i)
		if !ok {
			return false
		}
		i = skipSpace(raw, ke+1)
		if i == len(raw) || raw[i] != ':' {
			return false
		}
		i = skipSpace(raw, i+1)
		k := compactMember(raw[ks:ke])
		if k < 0 || it.present(k) {
			return false
		}
		it.has |= 1 << k
		var end int
		if k < firstNumber {
			vs, ve, ok := plainString(raw, i)
			if !ok {
				return false
			}
			it.strs[k] = string(raw[vs:ve])
			end = ve + 1
		} else {
			ne, ok := jsonNumber(raw, i)
			if !ok {
				return false
			}
			v, err := strconv.ParseFloat(string(raw[i:ne]), 64)
			if err != nil {
				return false
			}
			it.nums[k-firstNumber] = v
			end = ne
		}
		i = skipSpace(raw, end)
		switch {
		case i == len(raw):
			return false
		case raw[i] == ',':
			i = skipSpace(raw, i+1)
		case raw[i] == '}':
			return skipSpace(raw, i+1) == len(raw)
		default:
			return false
		}
	}
}

// compactMember returns the index of a member name as written, -1 when
// unknown.
func compactMember(name []byte) int {
	for k, n := range compactMembers() {
		if n == string(name) {
			return k
		}
	}
	return -1
}

// skipSpace skips JSON whitespace from i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString returns the bounds of the contents of the string at i and
// true when it is one of printable ASCII without escapes; end is the
// closing quote.
func plainString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c < 0x20 || c == '\\' || c >= 0x7f:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// jsonNumber returns the end of the JSON number (RFC 8259 §6) at i.
func jsonNumber(b []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
