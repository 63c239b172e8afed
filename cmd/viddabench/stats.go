package main

import (
	"math"
	"slices"
	"time"
)

// worker is what one client of a phase recorded. Each client owns its
// worker; the phase merges them after every client has stopped.
type worker struct {
	lat      []time.Duration // one per successful request
	errors   int
	firstErr string
	ids      []string // ids created, in the create phase
}

func (w *worker) fail(msg string) {
	if w.errors == 0 {
		w.firstErr = msg
	}
	w.errors++
}

// summary is the outcome of one phase.
type summary struct {
	Clients    int     `json:"clients"`
	Count      int     `json:"count"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// CPUBusyPct is how busy all of the machine's CPUs were in the phase
	// (bench, PostgreSQL and vidda share them).
	CPUBusyPct float64 `json:"cpu_busy_pct"`
}

// summarize merges the clients of a phase that took elapsed.
func summarize(elapsed time.Duration, workers []worker) summary {
	s := summary{Clients: len(workers), Seconds: elapsed.Seconds()}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		if w.errors > 0 && s.Errors == 0 {
			s.FirstError = w.firstErr
		}
		s.Errors += w.errors
	}
	s.Count = len(all)
	if elapsed > 0 {
		s.PerSecond = float64(s.Count) / elapsed.Seconds()
	}
	slices.Sort(all)
	s.P50ms = ms(percentile(all, 50))
	s.P90ms = ms(percentile(all, 90))
	s.P99ms = ms(percentile(all, 99))
	if len(all) > 0 {
		s.MaxMs = ms(all[len(all)-1])
	}
	return s
}

// percentile is the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
