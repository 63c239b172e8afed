// Package obstest reads metrics back in tests: what a test did must show
// in the registry vidda serves.
package obstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sum sums the samples of the metric name whose labels include the
// label/value pairs want: a counter's or gauge's value, a histogram's
// count. A name the registry does not gather fails the test, so that a
// check for zero cannot pass on a misspelt or unregistered metric.
func Sum(tb testing.TB, reg prometheus.Gatherer, name string, want ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		found = true
	samples:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(want); i += 2 {
				has := false
				for _, l := range m.GetLabel() {
					has = has || (l.GetName() == want[i] && l.GetValue() == want[i+1])
				}
				if !has {
					continue samples
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !found {
		tb.Fatalf("obstest: no metric %s is gathered", name)
	}
	return sum
}
