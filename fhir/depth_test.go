package fhir

import (
	"errors"
	"strings"
	"testing"
)

// nestedExtensions is a Patient whose extension holds an extension holding
// ... levels deep: each level is an array and an object.
func nestedExtensions(levels int) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	for range levels {
		b.WriteString(`,"extension":[{"url":"http://example.org/x"`)
	}
	b.WriteString(`,"valueString":"v"`)
	for range levels {
		b.WriteString(`}]`)
	}
	b.WriteString(`}`)
	return b.String()
}

// depthOf is the nesting of nestedExtensions(levels).
func depthOf(levels int) int { return 1 + 2*levels }

func TestParseLimitsNesting(t *testing.T) {
	r := NewRegistry()
	deepest := (MaxDepth - 1) / 2 // the most extension levels within MaxDepth
	tests := []struct {
		name    string
		body    string
		tooDeep bool
	}{
		{"extensions nested ten deep are a real resource", nestedExtensions(10), false},
		{"the deepest nesting allowed", nestedExtensions(deepest), false},
		{"one level past the limit", nestedExtensions(deepest + 1), true},
		{"a bomb of arrays", `{"resourceType":"Patient","x":` + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + `}`, true},
		{"an unterminated bomb", `{"resourceType":"Patient","x":` + strings.Repeat(`{"a":`, 100_000), true},
	}
	if depthOf(deepest) > MaxDepth || depthOf(deepest+1) <= MaxDepth {
		t.Fatalf("test cases miss the limit: %d, %d levels around %d", depthOf(deepest), depthOf(deepest+1), MaxDepth)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Parse("Patient", []byte(tt.body))
			if !tt.tooDeep {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Semantic || len(ve.Issues) != 1 {
				t.Fatalf("err = %v, want one 400 issue", err)
			}
			if is := ve.Issues[0]; is.Code != IssueStructure || !strings.Contains(is.Diagnostics, "too deeply nested") {
				t.Errorf("issue = %+v, want structure saying too deeply nested", is)
			}
		})
	}
}

// FuzzParseNesting puts a fuzzed run of containers into a resource and
// checks the limit exactly: deeper than MaxDepth is refused as too deeply
// nested and nothing else is, whatever the mix of objects and arrays.
func FuzzParseNesting(f *testing.F) {
	f.Add(uint8(3), []byte("[{["))
	f.Add(uint8(63), []byte("["))
	f.Add(uint8(64), []byte("{"))
	f.Add(uint8(200), []byte("{["))
	f.Add(uint8(255), []byte("[[[{"))
	r := NewRegistry()
	f.Fuzz(func(t *testing.T, n uint8, kinds []byte) {
		if len(kinds) == 0 {
			kinds = []byte("[")
		}
		var open, closeRev strings.Builder
		closers := make([]byte, 0, int(n))
		for i := range int(n) {
			if kinds[i%len(kinds)]&1 == 0 {
				open.WriteString("[")
				closers = append(closers, ']')
			} else {
				open.WriteString(`{"a":`)
				closers = append(closers, '}')
			}
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closeRev.WriteByte(closers[i])
		}
		body := `{"resourceType":"Patient","x":` + open.String() + `1` + closeRev.String() + `}`
		_, err := r.Parse("Patient", []byte(body))
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("Parse(%q) = %v, want a ValidationError (x is not a Patient element)", body, err)
		}
		tooDeep := strings.Contains(ve.Issues[0].Diagnostics, "too deeply nested")
		if want := 1+int(n) > MaxDepth; tooDeep != want {
			t.Fatalf("depth %d: too deeply nested = %v, want %v (%v)", 1+int(n), tooDeep, want, ve.Issues)
		}
	})
}
