// Package golden compares test output with golden JSON files under
// testdata/golden, and rewrites them when a test runs with -update. It
// imports the standard library only; only tests use it.
package golden

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// JSON compares got (compact JSON) with testdata/golden/name, or writes
// it there, indented for review, when update is set.
func JSON(tb testing.TB, name string, got []byte, update bool) {
	tb.Helper()
	path := filepath.Join("testdata", "golden", name)
	if update {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, got, "", "  "); err != nil {
			tb.Fatalf("output is not JSON: %v", err)
		}
		pretty.WriteByte('\n')
		if err := os.WriteFile(path, pretty.Bytes(), 0o600); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path) //nolint:gosec // a test's own golden file
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		tb.Fatalf("golden file %s is not JSON: %v", path, err)
	}
	if !bytes.Equal(compact.Bytes(), got) {
		tb.Errorf("output differs from %s (run go test -update to accept)\n got: %s\nwant: %s", path, got, compact.Bytes())
	}
}
