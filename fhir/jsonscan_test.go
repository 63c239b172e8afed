package fhir

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"an empty object", `{}`, true},
		{"nested values of every kind", `{"a":[1,-0.5e+3,true,false,null,"x\n\"\u00e5\ud83d\ude00"],"b":{"c":{}}}`, true},
		{"a leading zero", `{"a":01}`, false},
		{"a trailing comma in an object", `{"a":1,}`, false},
		{"a trailing comma in an array", `[1,]`, false},
		{"a single-quoted string", `{'a':1}`, false},
		{"a bare word", `{"a":nul}`, false},
		{"a missing colon", `{"a" 1}`, false},
		{"an unterminated string", `{"a":"b}`, false},
		{"a raw tab in a string", "{\"a\":\"b\tc\"}", false},
		{"a bad escape", `{"a":"\x"}`, false},
		{"a short unicode escape", `{"a":"\u12"}`, false},
		{"a dot without digits", `{"a":1.}`, false},
		{"an exponent without digits", `{"a":1e}`, false},
		{"a plus sign", `{"a":+1}`, false},
		{"nothing", ``, false},
		{"two values", `{} {}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTree([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("parseTree(%s) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if json.Valid([]byte(tt.in)) != tt.ok {
				t.Errorf("test case disagrees with encoding/json")
			}
		})
	}
}

func TestScannerRefusesWhatPostgreSQLCannotStore(t *testing.T) {
	tests := []struct{ name, in string }{
		{"a NUL escape", `{"a":"\u0000"}`},
		{"a lone high surrogate", `{"a":"\ud83d"}`},
		{"a lone low surrogate", `{"a":"\ude00"}`},
		{"a high surrogate followed by a non-surrogate", `{"a":"\ud83d\u0041"}`},
		{"invalid UTF-8", "{\"a\":\"\xc3\x28\"}"},
		{"nesting deeper than the limit", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseTree([]byte(tt.in)); err == nil {
				t.Errorf("parseTree(%q) accepted it", tt.in)
			}
		})
	}
}

// FuzzScanner checks that the scanner never accepts what encoding/json
// refuses, and only refuses valid JSON for the documented reasons.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e5"]}`, `[]`, `"\ud83d\ude00"`, `{"a":{"b":null}}`, `-0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseTree(data)
		valid := json.Valid(data)
		if err == nil && !valid {
			t.Fatalf("scanner accepted invalid JSON %q", data)
		}
		if err != nil && valid && !strings.Contains(err.Error(), `\u`) &&
			!strings.Contains(err.Error(), "UTF-8") && !strings.Contains(err.Error(), "nested deeper") {
			t.Fatalf("scanner refused valid JSON %q: %v", data, err)
		}
		if err == nil {
			if members, err := scanTop(data); err == nil {
				for _, m := range members {
					if !json.Valid(m.raw) {
						t.Fatalf("member %q raw %q is not JSON", m.name(), m.raw)
					}
				}
			}
		}
	})
}
