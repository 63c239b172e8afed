package fhir

import "testing"

func TestParseReference(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind refKind
		typ  string
	}{
		{"a relative reference is typed", "Patient/p-1", refTyped, "Patient"},
		{"a versioned relative reference is typed", "Patient/p-1/_history/2", refTyped, "Patient"},
		{"an absolute reference ending in Type/id is typed", "https://ehr.example/fhir/Device/d.1", refTyped, "Device"},
		{"an absolute versioned reference is typed", "http://x/Device/d/_history/9", refTyped, "Device"},
		{"an absolute reference with a query is typed by its path", "http://x/fhir/Patient/1?x=y", refTyped, "Patient"},
		{"a conditional reference is typed", "Patient?identifier=a|b", refTyped, "Patient"},
		{"a local reference is untyped", "#gp", refUntyped, ""},
		{"a urn:uuid is untyped", "urn:uuid:9d3b2f0a-1c4e-4a8f-9e57-3c9b0d6f2a11", refUntyped, ""},
		{"a urn:oid is untyped", "urn:oid:1.2.3", refUntyped, ""},
		{"an absolute URL without Type/id is untyped", "https://ehr.example/whatever", refUntyped, ""},
		{"an absolute URL with only a host and type is untyped", "https://Patient/1", refUntyped, ""},
		{"an empty reference is malformed", "", refMalformed, ""},
		{"an id alone is malformed", "p-1", refMalformed, ""},
		{"a bad id is malformed", "Patient/p 1", refMalformed, ""},
		{"an empty id is malformed", "Patient/", refMalformed, ""},
		{"a bad version is malformed", "Patient/1/_history/", refMalformed, ""},
		{"a lower-case type is malformed", "patient/1", refMalformed, ""},
		{"extra segments are malformed", "Patient/1/extra", refMalformed, ""},
		{"a conditional reference without a query is malformed", "Patient?", refMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, typ, problem := parseReference(tt.in)
			if kind != tt.kind || typ != tt.typ {
				t.Errorf("parseReference(%q) = %v %q, want %v %q", tt.in, kind, typ, tt.kind, tt.typ)
			}
			if (kind == refMalformed) != (problem != "") {
				t.Errorf("parseReference(%q) problem = %q", tt.in, problem)
			}
		})
	}
}
