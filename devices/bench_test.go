package devices

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecodeAndMapCompact is the hot path of ingestion: one compact
// blood-pressure payload (the most expensive type: two Observations)
// decoded, checked against the time limits and mapped. It reports
// readings/s of one core beside ns/op; ingestion must sustain 25,000
// readings/s.
func BenchmarkDecodeAndMapCompact(b *testing.B) {
	payload := readTestdata(b, "compact/blood-pressure.json")
	lim, now := DefaultLimits(), received()
	b.ReportAllocs()
	for b.Loop() {
		readings, err := DecodeCompact(payload)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range readings {
			if err := lim.Check(r, now); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Observations("dev-1", "pat-1"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkTable is the cost of building the code table, paid once per
// payload and once per mapped reading.
func BenchmarkTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Table()
	}
}

// BenchmarkDecodeAndMapCompactBaseline is the same work done the obvious
// way, in the same run: encoding/json into a map and out of nested maps.
// It is the yardstick for BenchmarkDecodeAndMapCompact on a noisy machine.
func BenchmarkDecodeAndMapCompactBaseline(b *testing.B) {
	payload := readTestdata(b, "compact/blood-pressure.json")
	coding := func(system, code, display string) map[string]any {
		return map[string]any{"system": system, "code": code, "display": display}
	}
	b.ReportAllocs()
	for b.Loop() {
		var in map[string]any
		if err := json.Unmarshal(payload, &in); err != nil {
			b.Fatal(err)
		}
		for _, v := range []string{"systolic", "diastolic", "pulse"} {
			obs := map[string]any{
				"resourceType":      "Observation",
				"identifier":        []any{map[string]any{"system": SystemReading, "value": "dev-1/" + in["id"].(string) + "/" + v}},
				"status":            "final",
				"category":          []any{map[string]any{"coding": []any{coding(SystemObservationCategory, "vital-signs", "Vital Signs")}}},
				"code":              map[string]any{"coding": []any{coding(SystemLOINC, "85354-9", "Blood pressure panel"), coding(SystemMDC, "150020", "MDC_PRESS_BLD_NONINV")}},
				"subject":           map[string]any{"reference": "Patient/pat-1"},
				"device":            map[string]any{"reference": "Device/dev-1"},
				"effectiveDateTime": in["t"],
				"valueQuantity":     map[string]any{"value": in[v], "unit": "mmHg", "system": SystemUCUM, "code": "mm[Hg]"},
			}
			if _, err := json.Marshal(obs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
