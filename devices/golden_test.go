package devices

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGolden walks testdata/{compact,senml,fhir}: every payload decodes
// without rejections, and the Observations it maps to (device dev-1,
// patient pat-1) are the golden file testdata/golden/<format>-<name>, a
// JSON array; each of them is a valid FHIR Observation.
func TestGolden(t *testing.T) {
	reg := registry(t)
	decoders := map[string]func([]byte) ([]Reading, error){
		"compact": DecodeCompact,
		"senml":   func(b []byte) ([]Reading, error) { return DecodeSenML(b, received()) },
		"fhir": func(b []byte) ([]Reading, error) {
			p, err := DecodeFHIR(b, reg)
			if err != nil {
				return nil, err
			}
			return p.Readings, nil
		},
	}
	for format, decode := range decoders {
		files, err := filepath.Glob(filepath.Join("testdata", format, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no testdata for %s: %v", format, err)
		}
		for _, file := range files {
			name := strings.TrimSuffix(filepath.Base(file), ".json")
			t.Run("the "+format+" payload "+name+" maps to its golden Observations", func(t *testing.T) {
				payload, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				readings, err := decode(payload)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if len(readings) == 0 {
					t.Fatal("no readings")
				}
				out := []byte{'['}
				for _, r := range readings {
					for _, o := range mustObservations(t, r, "dev-1", "pat-1") {
						if _, err := reg.Parse("Observation", o.JSON); err != nil {
							t.Errorf("Observation %s is not valid FHIR: %v\n%s", o.Key, err, o.JSON)
						}
						if len(out) > 1 {
							out = append(out, ',')
						}
						out = append(out, o.JSON...)
					}
				}
				golden(t, format+"-"+name+".json", append(out, ']'))
			})
		}
	}
}
