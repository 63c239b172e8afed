package fhir

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestSummaryMatchesTheGoldenFiles(t *testing.T) {
	r := NewRegistry()
	tests := []struct{ name, typ, file string }{
		{"a patient keeps identifier, name, birthDate with its extension, deceased and link", "Patient", "patient.json"},
		{"a practitioner drops qualification and communication", "Practitioner", "practitioner.json"},
		{"an organization drops alias, telecom, address, contact and endpoint", "Organization", "organization.json"},
		{"a device keeps only udiCarrier and status", "Device", "device.json"},
		{"a blood-pressure panel keeps code, subject, effective and components", "Observation", "observation-bp.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Summary(tt.typ, readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "summary-"+tt.file, got)
		})
	}
}

func TestSummaryKeepsOnlySummaryElements(t *testing.T) {
	r := NewRegistry()
	got, err := r.Summary("Patient", readTestdata(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := decodeNumbers(t, got).(map[string]any)
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{
		"_birthDate", "active", "address", "birthDate", "deceasedBoolean", "gender", "id", "identifier",
		"link", "managingOrganization", "meta", "name", "resourceType", "telecom",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("members = %v, want %v", keys, want)
	}
	if !bytes.HasPrefix(got, []byte(`{"resourceType":"Patient","id":"pat-1","meta":{`)) {
		t.Errorf("output does not start with resourceType, id, meta: %.80s", got)
	}
}

func TestSummaryTagsTheResultSubsetted(t *testing.T) {
	r := NewRegistry()
	tests := []struct{ name, in, wantMeta string }{
		{
			"a resource without meta gets one with the tag",
			`{"resourceType":"Device","status":"active","note":[{"text":"x"}]}`,
			`{"tag":[` + subsettedTag + `]}`,
		},
		{
			"existing tags and other meta members are kept",
			`{"resourceType":"Device","meta":{"versionId":"2","tag":[{"system":"s","code":"c"}],"profile":["p"]}}`,
			`{"versionId":"2","profile":["p"],"tag":[{"system":"s","code":"c"},` + subsettedTag + `]}`,
		},
		{
			"an empty tag list gets the tag",
			`{"resourceType":"Device","meta":{"tag":[ ]}}`,
			`{"tag":[` + subsettedTag + `]}`,
		},
		{
			"a resource already tagged is not tagged twice",
			`{"resourceType":"Device","meta":{"tag":[{"code":"SUBSETTED","system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}]}}`,
			`{"tag":[{"code":"SUBSETTED","system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Summary("Device", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			doc, _ := decodeNumbers(t, got).(map[string]any)
			want := decodeNumbers(t, []byte(tt.wantMeta))
			if g := decodeNumbers(t, mustMarshal(t, doc["meta"])); !equalJSON(g, want) {
				t.Errorf("meta = %v, want %v", doc["meta"], want)
			}
			if _, ok := doc["note"]; ok {
				t.Errorf("note is not a summary element of Device: %s", got)
			}
		})
	}
}

func TestSummaryIsIdempotent(t *testing.T) {
	r := NewRegistry()
	once, err := r.Summary("Observation", readTestdata(t, "observation-bp.json"))
	if err != nil {
		t.Fatal(err)
	}
	twice, err := r.Summary("Observation", once)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once, twice) {
		t.Errorf("summary of a summary differs:\n%s\n%s", once, twice)
	}
}

func TestSummaryRefusesWhatItCannotSummarise(t *testing.T) {
	r := NewRegistry()
	tests := []struct{ name, typ, in string }{
		{"a type the server does not serve", "Medication", `{"resourceType":"Medication"}`},
		{"a resource of another type", "Patient", `{"resourceType":"Device"}`},
		{"a meta that is not an object", "Patient", `{"resourceType":"Patient","meta":1}`},
		{"a meta.tag that is not an array", "Patient", `{"resourceType":"Patient","meta":{"tag":{}}}`},
		{"a body that is not JSON", "Patient", `{"resourceType":"Patient"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := r.Summary(tt.typ, []byte(tt.in)); err == nil {
				t.Errorf("Summary = %s, want an error", got)
			}
		})
	}
	if _, err := r.Summary("Medication", []byte(`{}`)); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("Summary of an unserved type = %v, want ErrUnsupportedType", err)
	}
}
