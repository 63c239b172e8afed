package devices

import (
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
