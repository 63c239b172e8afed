package fhir

import (
	"regexp"
	"testing"
	"time"
)

// The R4 regular expressions (datatypes §2.24.0.1), anchored, as the
// reference the hand-written checkers must agree with.
const (
	reDate     = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`
	reDateTime = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])` +
		`(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`
	reInstant = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])` +
		`T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`
	reTime = `^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$`
	reID   = `^[A-Za-z0-9\-\.]{1,64}$`
)

func TestValidID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"letters, digits, dash and dot are allowed", "Ab-1.9", true},
		{"a uuid is allowed", "9d3b2f0a-1c4e-4a8f-9e57-3c9b0d6f2a11", true},
		{"64 characters are allowed", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"65 characters are too many", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"empty is not an id", "", false},
		{"an underscore is not allowed", "a_b", false},
		{"a slash is not allowed", "a/b", false},
		{"a space is not allowed", "a b", false},
		{"non-ASCII letters are not allowed", "Ø", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidID(tt.in); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDateSyntax(t *testing.T) {
	tests := []struct {
		name   string
		syntax primitiveSyntax
		in     string
		want   bool
	}{
		{"a year is a date", syntaxDate, "1948", true},
		{"a year and month is a date", syntaxDate, "1948-03", true},
		{"a full date is a date", syntaxDate, "1948-03-13", true},
		{"year zero is not a date", syntaxDate, "0000", false},
		{"month 13 is not a date", syntaxDate, "1948-13", false},
		{"February 29 is a date in a leap year", syntaxDate, "2000-02-29", true},
		{"February 29 is not a date in 1900", syntaxDate, "1900-02-29", false},
		{"April 31 is not a date", syntaxDate, "2026-04-31", false},
		{"a two-digit year is not a date", syntaxDate, "48-03-13", false},
		{"a date with time is not a date", syntaxDate, "1948-03-13T00:00:00Z", false},
		{"a dateTime may be a year", syntaxDateTime, "2026", true},
		{"a dateTime with zone offset", syntaxDateTime, "2026-11-23T07:42:10+01:00", true},
		{"a dateTime with fraction and Z", syntaxDateTime, "2026-11-23T07:42:10.123456Z", true},
		{"a dateTime without zone is not valid", syntaxDateTime, "2026-11-23T07:42:10", false},
		{"a dateTime without seconds is not valid", syntaxDateTime, "2026-11-23T07:42Z", false},
		{"a dateTime with zone +14:00", syntaxDateTime, "2026-11-23T07:42:10+14:00", true},
		{"a dateTime with zone +14:30 is not valid", syntaxDateTime, "2026-11-23T07:42:10+14:30", false},
		{"a dateTime with hour 24 is not valid", syntaxDateTime, "2026-11-23T24:00:00Z", false},
		{"a dateTime with a lower-case t is not valid", syntaxDateTime, "2026-11-23t07:42:10Z", false},
		{"an instant needs a full date and time", syntaxInstant, "2026-11-23T07:42:10.5Z", true},
		{"an instant may not be a date", syntaxInstant, "2026-11-23", false},
		{"an instant needs a zone", syntaxInstant, "2026-11-23T07:42:10", false},
		{"a time has seconds", syntaxTime, "07:42:10", true},
		{"a time with a fraction", syntaxTime, "23:59:60.999", true},
		{"a time has no zone", syntaxTime, "07:42:10Z", false},
		{"a time without seconds is not valid", syntaxTime, "07:42", false},
		{"a dangling fraction dot is not valid", syntaxTime, "07:42:10.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.syntax.valid(tt.in); got != tt.want {
				t.Errorf("%s.valid(%q) = %v, want %v", tt.syntax, tt.in, got, tt.want)
			}
		})
	}
}

// FuzzPrimitiveSyntax checks the hand-written checkers against the R4
// regular expressions; they may only be stricter where a calendar day does
// not exist.
func FuzzPrimitiveSyntax(f *testing.F) {
	for _, s := range []string{"1948", "1948-03-13", "2024-02-29T23:59:60.5+14:00", "07:42:10", "0000", "2026-04-31", "a-b.c"} {
		f.Add(s)
	}
	res := map[primitiveSyntax]*regexp.Regexp{
		syntaxDate: regexp.MustCompile(reDate), syntaxDateTime: regexp.MustCompile(reDateTime),
		syntaxInstant: regexp.MustCompile(reInstant), syntaxTime: regexp.MustCompile(reTime), syntaxID: regexp.MustCompile(reID),
	}
	f.Fuzz(func(t *testing.T, s string) {
		for syntax, re := range res {
			got, want := syntax.valid(s), re.MatchString(s)
			if got == want {
				continue
			}
			if want && !got && len(s) >= 10 && !realDay(s[:10]) {
				continue // the regex allows 2023-02-30; the checker does not
			}
			t.Errorf("%s.valid(%q) = %v, regex says %v", syntax, s, got, want)
		}
	})
}

func realDay(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

func TestIntegerAndCodeSyntax(t *testing.T) {
	ints := map[string]bool{"0": true, "-1": true, "2147483647": true, "2147483648": false, "1.0": false, "1e2": false, "-2147483648": true}
	for lit, want := range ints {
		if got := validInteger([]byte(lit)); got != want {
			t.Errorf("validInteger(%s) = %v, want %v", lit, got, want)
		}
	}
	codes := map[string]bool{"final": true, "entered-in-error": true, "a b": true, "": false, " a": false, "a ": false, "a  b": false, "a\tb": true}
	for code, want := range codes {
		if got := validCodeSyntax(code); got != want {
			t.Errorf("validCodeSyntax(%q) = %v, want %v", code, got, want)
		}
	}
}
