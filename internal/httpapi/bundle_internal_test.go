package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
)

// writeString's fast path writes plain strings as they are; anything else
// goes through encoding/json, so the result is always the JSON string.
func TestWriteStringIsAJSONString(t *testing.T) {
	for _, s := range []string{
		"", "https://vidda.test/fhir/Observation?_count=50&patient=p1&_cursor=eyJz",
		`quote " and backslash \`, "tab\tnewline\n", "Åsen ünïcode", "\u2028", "<script>&",
	} {
		var buf bytes.Buffer
		writeString(&buf, s)
		var got string
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil || got != s {
			t.Errorf("writeString(%q) = %s: %v", s, buf.Bytes(), err)
		}
	}
}

// A grown bundle holds the same JSON as one that grew as it went.
func TestABundleIsValidJSONWithItsLinksAndEntries(t *testing.T) {
	total := int64(2)
	for _, hint := range []int{0, 1 << 16} {
		b := newBundle("searchset")
		b.grow(hint)
		b.total = &total
		b.link("self", "https://vidda.test/fhir/Observation?code=a%7Cb&patient=p1")
		b.entry("https://vidda.test/fhir/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1"}`), `"search":{"mode":"match"}`)
		b.entry("", nil, `"search":{"mode":"outcome"}`)
		var got struct {
			Type  string `json:"type"`
			Total int64  `json:"total"`
			Link  []struct {
				Relation, URL string
			} `json:"link"`
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		out := b.bytes()
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("grow(%d): %v\n%s", hint, err, out)
		}
		if got.Type != "searchset" || got.Total != 2 || len(got.Link) != 1 || len(got.Entry) != 2 ||
			got.Entry[0].FullURL != "https://vidda.test/fhir/Observation/o1" || got.Entry[1].Resource != nil {
			t.Errorf("grow(%d): %s", hint, out)
		}
	}
}
