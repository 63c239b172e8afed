package fhir

import (
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkParseObservation(b *testing.B) {
	r := NewRegistry()
	body := readTestdata(b, "observation-bp.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse("Observation", body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkUnmarshalObservation is the baseline: json.Unmarshal into the
// model alone, which Parse does after its own walk.
func BenchmarkUnmarshalObservation(b *testing.B) {
	r := NewRegistry()
	body := readTestdata(b, "observation-bp.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := jsonUnmarshalModel(r, "Observation", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePatient(b *testing.B) {
	r := NewRegistry()
	body := readTestdata(b, "patient.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse("Patient", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWithMeta(b *testing.B) {
	body := readTestdata(b, "observation-bp.json")
	at := time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WithMeta(body, "0c8a7f3e-5d0b-4b1e-9a51-1f2d3c4b5a69", "1", at); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkWithMetaCompact stamps a body that is already compact, as the
// ingestion path produces it.
func BenchmarkWithMetaCompact(b *testing.B) {
	body, err := WithMeta(readTestdata(b, "observation-bp.json"), "x", "1", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WithMeta(body, "0c8a7f3e-5d0b-4b1e-9a51-1f2d3c4b5a69", "2", at); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSummaryPatient(b *testing.B) {
	r := NewRegistry()
	body := readTestdata(b, "patient.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Summary("Patient", body); err != nil {
			b.Fatal(err)
		}
	}
}

func jsonUnmarshalModel(r *Registry, typ string, body []byte) error {
	return json.Unmarshal(body, r.types[typ].newModel())
}
