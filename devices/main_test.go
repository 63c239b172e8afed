package devices

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vidda/vidda/fhir"

	goldenfile "github.com/vidda/vidda/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// received is when the test payloads arrived: after every measurement in
// testdata, within the default limits.
func received() time.Time { return time.Date(2026, 11, 20, 7, 35, 0, 0, time.UTC) }

// registry is built once per test binary run by the callers that need it;
// building one is the slow part of fhir.
func registry(tb testing.TB) *fhir.Registry {
	tb.Helper()
	return fhir.NewRegistry()
}

// readTestdata returns testdata/name.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// golden compares got with testdata/golden/name, or rewrites it under
// -update. Golden files are indented for review; the comparison is on the
// compact form.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.JSON(t, name, got, *update)
}

// mustObservations maps a reading or fails the test.
func mustObservations(tb testing.TB, r Reading, deviceID, patientID string) []Observation {
	tb.Helper()
	obs, err := r.Observations(deviceID, patientID)
	if err != nil {
		tb.Fatalf("Observations(%+v): %v", r, err)
	}
	return obs
}

// reasonOf returns the reason of the only rejection err carries.
func reasonOf(tb testing.TB, err error) Reason {
	tb.Helper()
	rej := Rejections(err)
	if len(rej) != 1 {
		tb.Fatalf("want one rejection, got %d: %v", len(rej), err)
	}
	return rej[0].Reason
}
