package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seedResources adds every testdata/*.json file to the corpus.
func seedResources(f *testing.F, add func([]byte)) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

func FuzzParse(f *testing.F) {
	seedResources(f, func(b []byte) { f.Add(b) })
	for _, s := range []string{
		`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"x","valueDate":"2020"}]},"name":[{"given":["a",null],"_given":[null,{"id":"g"}]}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1","type":"Patient"}}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Observation","status":"x"}]}`,
		`{"resourceType":"Device","status":"active","udiCarrier":[{"entryType":"rfid"}]}`,
		`{"resourceType":"Observation","status":"fin\u0061l","code":{}}`,
	} {
		f.Add([]byte(s))
	}
	r := NewRegistry()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := r.Parse("", body)
		if err != nil {
			checkParseError(t, err)
			return
		}
		if !json.Valid(body) || !bytes.Equal(res.Raw, body) || res.Model == nil {
			t.Fatalf("accepted %q but Raw/Model are wrong", body)
		}
		// What Parse accepts, the server can stamp, summarise and accept again.
		stamped, err := WithMeta(body, "id-1", "1", at)
		if err != nil {
			t.Fatalf("WithMeta of an accepted body: %v\n%s", err, body)
		}
		if _, err := r.Parse(res.Type, stamped); err != nil {
			t.Fatalf("Parse of the stamped body: %v\n%s", err, stamped)
		}
		summary, err := r.Summary(res.Type, stamped)
		if err != nil {
			t.Fatalf("Summary of an accepted body: %v\n%s", err, stamped)
		}
		if _, err := r.Parse(res.Type, summary); err != nil {
			t.Fatalf("Parse of the summary: %v\n%s", err, summary)
		}
	})
}

// FuzzParseElement puts one fuzzed member into an otherwise valid resource,
// so that the fuzzer spends its time on element values rather than on JSON
// syntax. The same properties as FuzzParse must hold.
func FuzzParseElement(f *testing.F) {
	for _, seed := range []struct {
		at          uint8
		name, value string
	}{
		{0, "status", `"final"`},
		{0, "effectiveDateTime", `"2026-11-23T07:42:10+01:00"`},
		{0, "subject", `{"reference":"Patient/1"}`},
		{1, "valueQuantity", `{"value":1.50,"unit":"mmHg"}`},
		{1, "_valueString", `{"extension":[{"url":"u","valueInteger":1}]}`},
		{2, "comparator", `"<"`},
		{3, "birthDate", `"1948-03-13"`},
		{3, "_given", `[null,{"id":"x"}]`},
		{4, "contained", `[{"resourceType":"Device","status":"active"}]`},
	} {
		f.Add(seed.at, seed.name, seed.value)
	}
	r := NewRegistry()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, where uint8, name, value string) {
		member := strconv.Quote(name) + ":" + value
		var body string
		switch where % 5 {
		case 0:
			body = `{"resourceType":"Observation","status":"final","code":{"text":"bp"},` + member + `}`
		case 1:
			body = `{"resourceType":"Observation","status":"final","code":{"text":"bp"},"component":[{"code":{"text":"s"},` + member + `}]}`
		case 2:
			body = `{"resourceType":"Observation","status":"final","code":{"text":"bp"},"valueQuantity":{"value":1,` + member + `}}`
		case 3:
			body = `{"resourceType":"Patient","name":[{"given":["a","b"],` + member + `}],` + member + `}`
		default:
			body = `{"resourceType":"Patient",` + member + `}`
		}
		res, err := r.Parse("", []byte(body))
		if err != nil {
			checkParseError(t, err)
			return
		}
		stamped, err := WithMeta(res.Raw, "id-1", "1", at)
		if err != nil {
			t.Fatalf("WithMeta of an accepted body: %v\n%s", err, body)
		}
		if _, err := r.Parse(res.Type, stamped); err != nil {
			t.Fatalf("Parse of the stamped body: %v\n%s", err, stamped)
		}
		summary, err := r.Summary(res.Type, stamped)
		if err != nil {
			t.Fatalf("Summary of an accepted body: %v\n%s", err, stamped)
		}
		if _, err := r.Parse(res.Type, summary); err != nil {
			t.Fatalf("Parse of the summary: %v\n%s", err, summary)
		}
	})
}

func checkParseError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrUnsupportedType) {
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error %v is neither ErrUnsupportedType nor *ValidationError", err)
	}
	if len(ve.Issues) == 0 {
		t.Fatal("ValidationError without issues")
	}
	for _, is := range ve.Issues {
		if strings.HasPrefix(is.Diagnostics, "model: ") {
			t.Fatalf("the walk accepted what the model refused: %s", is.Diagnostics)
		}
	}
	if !json.Valid(OperationOutcome(ve.Issues...)) {
		t.Fatal("OperationOutcome is not JSON")
	}
}

func FuzzWithMeta(f *testing.F) {
	seedResources(f, func(b []byte) { f.Add(b, "id-1", "1", int64(0)) })
	f.Add([]byte(`{"resourceType":"X","meta":{"versionId":"a","_lastUpdated":{}},"_id":{},"v":1.50}`), "a.b", "2", int64(1<<62))
	f.Add([]byte(` { "resourceType" : "X" , "a" : [ 1 , { "b" : "c d" } ] } `), "x", "y", int64(-1))
	f.Fuzz(func(t *testing.T, raw []byte, id, version string, nanos int64) {
		at := time.Unix(0, nanos)
		out, err := WithMeta(raw, id, version, at)
		if err != nil {
			return
		}
		if !json.Valid(out) || !bytes.HasPrefix(out, []byte(`{"resourceType":`)) {
			t.Fatalf("WithMeta(%q) = %q: not JSON or not resourceType first", raw, out)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, out); err != nil || !bytes.Equal(compact.Bytes(), out) {
			t.Fatalf("WithMeta(%q) = %q is not compact", raw, out)
		}
		in, _ := decodeNumbers(t, raw).(map[string]any)
		got, _ := decodeNumbers(t, out).(map[string]any)
		meta, _ := got["meta"].(map[string]any)
		if got["id"] != id || meta["versionId"] != version || meta["lastUpdated"] != at.UTC().Format(instantLayout) {
			t.Fatalf("id/meta not set: %q", out)
		}
		inMeta, _ := in["meta"].(map[string]any)
		if inMeta == nil {
			inMeta = map[string]any{}
		}
		for _, k := range []string{"versionId", "lastUpdated", "_versionId", "_lastUpdated"} {
			delete(inMeta, k)
			delete(meta, k)
		}
		if !reflect.DeepEqual(inMeta, meta) {
			t.Fatalf("meta members changed: %v -> %v", inMeta, meta)
		}
		for _, k := range []string{"id", "_id", "meta"} {
			delete(in, k)
			delete(got, k)
		}
		if !reflect.DeepEqual(in, got) {
			t.Fatalf("members changed:\n%q\n%q", raw, out)
		}
	})
}
