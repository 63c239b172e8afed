package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	goldenfile "github.com/vidda/vidda/internal/golden"
)

func TestMain(m *testing.M) {
	flag.Bool("update", false, "rewrite the golden files under testdata/golden")
	flag.Parse()
	os.Exit(m.Run())
}

// updating reports whether the test run was started with -update.
func updating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	on, _ := g.Get().(bool)
	return on
}

// readTestdata returns the contents of testdata/name.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// golden compares got with testdata/golden/name, or rewrites the file under
// -update. Golden files hold the output indented for review; the
// comparison is on the compact form.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.JSON(t, name, got, updating())
}

// decodeNumbers decodes JSON into interface values, keeping numbers as
// their literal text.
func decodeNumbers(tb testing.TB, b []byte) any {
	tb.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		tb.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// mustMarshal marshals v or fails the test.
func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// equalJSON compares decoded JSON values.
func equalJSON(a, b any) bool {
	return reflect.DeepEqual(a, b)
}
