package fhir

import "strconv"

// primitiveSyntax is the FHIR primitive type of a string-valued element whose
// lexical form Parse checks. Elements typed plain string, uri, markdown and
// the like are not listed: any JSON string is a valid value for them.
type primitiveSyntax uint8

const (
	syntaxNone primitiveSyntax = iota
	syntaxID
	syntaxDate
	syntaxDateTime
	syntaxInstant
	syntaxTime
)

// String names the FHIR primitive type.
func (p primitiveSyntax) String() string {
	switch p {
	case syntaxID:
		return "id"
	case syntaxDate:
		return "date"
	case syntaxDateTime:
		return "dateTime"
	case syntaxInstant:
		return "instant"
	case syntaxTime:
		return "time"
	case syntaxNone:
	}
	return "string"
}

// valid reports whether s is a lexically valid value of the primitive type.
func (p primitiveSyntax) valid(s string) bool {
	switch p {
	case syntaxID:
		return ValidID(s)
	case syntaxDate:
		return validDate(s)
	case syntaxDateTime:
		return validDateTime(s)
	case syntaxInstant:
		return validInstant(s)
	case syntaxTime:
		return validTime(s)
	case syntaxNone:
	}
	return true
}

// ValidID reports whether s is a valid FHIR id: [A-Za-z0-9\-\.]{1,64}
// (R4 datatypes §2.24.0.1, "id").
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !idChar(c) {
			return false
		}
	}
	return true
}

func idChar(c byte) bool {
	return letter(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'
}

func letter(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// validTypeName reports whether s looks like a resource type name. Without
// the list of all R4 types at hand this is a pattern check; the reference
// tables give the closed lists where the type matters.
func validTypeName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !letter(c) {
			return false
		}
	}
	return true
}

// The date checkers below implement the R4 regular expressions (datatypes
// §2.24.0.1) by hand, because they run on every Parse, and additionally
// refuse calendar days that do not exist (2023-02-30).

// validDate: YYYY, YYYY-MM or YYYY-MM-DD.
func validDate(s string) bool {
	n, ok := datePart(s)
	return ok && n == len(s)
}

// validDateTime: a date, or a full date with time and zone.
func validDateTime(s string) bool {
	n, ok := datePart(s)
	if !ok {
		return false
	}
	if n == len(s) {
		return true
	}
	return n == 10 && s[n] == 'T' && timeZonePart(s[n+1:])
}

// validInstant: a full date, time with seconds, and zone.
func validInstant(s string) bool {
	n, ok := datePart(s)
	return ok && n == 10 && len(s) > n && s[n] == 'T' && timeZonePart(s[n+1:])
}

// validTime: hh:mm:ss(.fraction)? without a zone.
func validTime(s string) bool {
	n, ok := timePart(s)
	return ok && n == len(s)
}

// datePart validates the leading date of s and returns its length
// (4, 7 or 10).
func datePart(s string) (int, bool) {
	if len(s) < 4 || !digits(s[:4]) || s[:4] == "0000" {
		return 0, false
	}
	if len(s) == 4 || s[4] != '-' {
		return 4, true
	}
	if len(s) < 7 || !digits(s[5:7]) {
		return 0, false
	}
	month := atoi2(s[5:7])
	if month < 1 || month > 12 {
		return 0, false
	}
	if len(s) == 7 || s[7] != '-' {
		return 7, true
	}
	if len(s) < 10 || !digits(s[8:10]) {
		return 0, false
	}
	year, err := strconv.Atoi(s[:4])
	if err != nil {
		return 0, false
	}
	day := atoi2(s[8:10])
	if day < 1 || day > daysIn(year, month) {
		return 0, false
	}
	return 10, true
}

// timeZonePart validates hh:mm:ss(.fraction)?(Z|(+|-)hh:mm).
func timeZonePart(s string) bool {
	n, ok := timePart(s)
	if !ok {
		return false
	}
	zone := s[n:]
	if zone == "Z" {
		return true
	}
	if len(zone) != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' ||
		!digits(zone[1:3]) || !digits(zone[4:6]) {
		return false
	}
	h, m := atoi2(zone[1:3]), atoi2(zone[4:6])
	return (h <= 13 && m <= 59) || (h == 14 && m == 0)
}

// timePart validates the leading hh:mm:ss(.fraction)? of s and returns its
// length.
func timePart(s string) (int, bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' || !digits(s[0:2]) || !digits(s[3:5]) || !digits(s[6:8]) {
		return 0, false
	}
	if atoi2(s[0:2]) > 23 || atoi2(s[3:5]) > 59 || atoi2(s[6:8]) > 60 {
		return 0, false
	}
	n := 8
	if n < len(s) && s[n] == '.' {
		n++
		start := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == start {
			return 0, false
		}
	}
	return n, true
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// validInteger reports whether a JSON number literal is a FHIR integer: no
// fraction or exponent, within 32 bits (R4 datatypes, "integer").
func validInteger(lit []byte) bool {
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	_, err := strconv.ParseInt(string(lit), 10, 32)
	return err == nil
}

// validCodeSyntax checks the R4 code pattern [^\s]+(\s[^\s]+)*: no leading,
// trailing or doubled whitespace.
func validCodeSyntax(s string) bool {
	if s == "" {
		return false
	}
	prevSpace := true
	for i := range len(s) {
		space := s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'
		if space && prevSpace {
			return false
		}
		prevSpace = space
	}
	return !prevSpace
}
