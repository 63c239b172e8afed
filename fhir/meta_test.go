package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWithMetaSetsIDAndMetaAndKeepsEverythingElse(t *testing.T) {
	at := time.Date(2026, 11, 23, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		in   string
		// want is the expected document: in with id and meta set as the
		// server sets them.
		want string
		// literals must appear verbatim in the output.
		literals []string
	}{
		{
			name: "a body without id or meta gets both",
			in:   `{"resourceType":"Patient","active":true}`,
			want: `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z"},"active":true}`,
		},
		{
			name: "the client's id and versionId are replaced, profile, tag, security and source kept",
			in: `{"meta":{"versionId":"99","lastUpdated":"2001-01-01T00:00:00Z","profile":["http://x/p"],"tag":[{"code":"t"}],` +
				`"security":[{"code":"R"}],"source":"#src","_versionId":{"id":"v"}},"id":"client-id","_id":{"id":"i"},"resourceType":"Patient"}`,
			want: `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z",` +
				`"profile":["http://x/p"],"tag":[{"code":"t"}],"security":[{"code":"R"}],"source":"#src"}}`,
		},
		{
			name: "primitive extensions keep their values",
			in:   `{"resourceType":"Patient","birthDate":"1948-03-13","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}}`,
			want: `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z"},` +
				`"birthDate":"1948-03-13","_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}}`,
			literals: []string{`"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}`},
		},
		{
			name: "numbers keep their literal text",
			in: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[` +
				`{"code":{"text":"a"},"valueQuantity":{"value":1.50}},{"code":{"text":"b"},"valueQuantity":{"value":1e2}},` +
				`{"code":{"text":"c"},"valueQuantity":{"value":120.000}},{"code":{"text":"d"},"valueQuantity":{"value":-0.0000000000000000000001}}]}`,
			want: `{"resourceType":"Observation","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z"},"status":"final","code":{"text":"x"},"component":[` +
				`{"code":{"text":"a"},"valueQuantity":{"value":1.50}},{"code":{"text":"b"},"valueQuantity":{"value":1e2}},` +
				`{"code":{"text":"c"},"valueQuantity":{"value":120.000}},{"code":{"text":"d"},"valueQuantity":{"value":-0.0000000000000000000001}}]}`,
			literals: []string{`1.50}`, `1e2}`, `120.000}`, `-0.0000000000000000000001}`},
		},
		{
			name: "unicode and escapes are kept as written while whitespace goes",
			in: "{\n  \"resourceType\" : \"Patient\",\n  \"name\" : [ { \"family\" : \"\u00d8deg\u00e5rd\", \"given\" : [ \"\\u00c5sa\", \"a \\\"b\\\" c\" ] } ],\n" +
				"  \"text\" : { \"status\" : \"generated\", \"div\" : \"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">\u00c5 \U0001F600</div>\" }\n}\n",
			want: `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z"},` +
				`"name":[{"family":"Ødegård","given":["Åsa","a \"b\" c"]}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Å 😀</div>"}}`,
			literals: []string{`"\u00c5sa"`, `"a \"b\" c"`},
		},
		{
			name: "nested member order does not matter but values do",
			in:   `{"resourceType":"Device","meta":{"tag":[{"code":"b","system":"s"}]},"patient":{"display":"A","reference":"Patient/1"}}`,
			want: `{"resourceType":"Device","id":"p1","meta":{"versionId":"3","lastUpdated":"2026-11-23T10:00:00.123Z","tag":[{"system":"s","code":"b"}]},"patient":{"reference":"Patient/1","display":"A"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WithMeta([]byte(tt.in), "p1", "3", at)
			if err != nil {
				t.Fatalf("WithMeta: %v", err)
			}
			if !json.Valid(got) {
				t.Fatalf("output is not JSON: %s", got)
			}
			if !bytes.HasPrefix(got, []byte(`{"resourceType":`)) {
				t.Errorf("output does not start with resourceType: %s", got)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, got); err != nil || !bytes.Equal(compact.Bytes(), got) {
				t.Errorf("output is not compact: %s", got)
			}
			if g, w := decodeNumbers(t, got), decodeNumbers(t, []byte(tt.want)); !reflect.DeepEqual(g, w) {
				t.Errorf("WithMeta =\n%s\nwant\n%s", got, tt.want)
			}
			for _, lit := range tt.literals {
				if !strings.Contains(string(got), lit) {
					t.Errorf("output lost the literal %s: %s", lit, got)
				}
			}
		})
	}
}

func TestWithMetaKeepsTheTestdataResources(t *testing.T) {
	for _, file := range []string{"patient.json", "practitioner.json", "organization.json", "device.json", "observation-bp.json"} {
		t.Run("the resource in "+file+" keeps every member but id and meta", func(t *testing.T) {
			in := readTestdata(t, file)
			got, err := WithMeta(in, "new-id", "1", time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := decodeNumbers(t, in).(map[string]any)
			out, _ := decodeNumbers(t, got).(map[string]any)
			meta, _ := out["meta"].(map[string]any)
			if out["id"] != "new-id" || meta["versionId"] != "1" || meta["lastUpdated"] != "1970-01-01T00:00:00.000Z" {
				t.Errorf("id/meta not set: %v %v", out["id"], meta)
			}
			oldMeta, _ := want["meta"].(map[string]any)
			for k, v := range oldMeta {
				if k != "versionId" && k != "lastUpdated" && !reflect.DeepEqual(meta[k], v) {
					t.Errorf("meta.%s = %v, want %v", k, meta[k], v)
				}
			}
			for _, k := range []string{"id", "meta"} {
				delete(want, k)
				delete(out, k)
			}
			if !reflect.DeepEqual(out, want) {
				t.Errorf("members changed:\n%v\nwant\n%v", out, want)
			}
		})
	}
}

func TestWithMetaRefusesWhatItCannotStamp(t *testing.T) {
	ok := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in, id, version string
		at                    time.Time
	}{
		{"an id that is not a FHIR id", `{"resourceType":"Patient"}`, "a/b", "1", ok},
		{"an empty version", `{"resourceType":"Patient"}`, "p", "", ok},
		{"a time after year 9999", `{"resourceType":"Patient"}`, "p", "1", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"a body that is not an object", `["resourceType"]`, "p", "1", ok},
		{"a body that is not JSON", `{"resourceType":"Patient"`, "p", "1", ok},
		{"a body with data after the object", `{"resourceType":"Patient"}x`, "p", "1", ok},
		{"a body without resourceType", `{"id":"p"}`, "p", "1", ok},
		{"a resourceType that is not a string", `{"resourceType":{}}`, "p", "1", ok},
		{"a meta that is not an object", `{"resourceType":"Patient","meta":[]}`, "p", "1", ok},
		{"a duplicate top-level member", `{"resourceType":"Patient","id":"a","id":"b"}`, "p", "1", ok},
		{"a duplicate member in meta", `{"resourceType":"Patient","meta":{"source":"a","source":"b"}}`, "p", "1", ok},
		{"invalid JSON deep inside", `{"resourceType":"Patient","name":[{"family":"a",}]}`, "p", "1", ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := WithMeta([]byte(tt.in), tt.id, tt.version, tt.at); err == nil {
				t.Errorf("WithMeta = %s, want an error", got)
			}
		})
	}
}
