package search

import (
	"slices"
	"testing"
)

func TestAppendTokenKeys(t *testing.T) {
	for _, c := range []struct {
		system, code string
		want         []string
	}{
		{"http://loinc.org", "8867-4", []string{"http://loinc.org|8867-4", "*|8867-4", "http://loinc.org|*"}},
		{"", "8867-4", []string{"|8867-4", "*|8867-4"}},
		{"http://loinc.org", "", []string{"http://loinc.org|*"}},
		{"", "", nil},
	} {
		got := appendTokenKeys([]string{"before"}, c.system, c.code)
		if !slices.Equal(got, append([]string{"before"}, c.want...)) {
			t.Errorf("appendTokenKeys(%q, %q) = %q, want %q after before", c.system, c.code, got, c.want)
		}
		if !slices.Equal(TokenKeys(c.system, c.code), c.want) {
			t.Errorf("TokenKeys(%q, %q) = %q, want %q", c.system, c.code, TokenKeys(c.system, c.code), c.want)
		}
	}
}
