package devices

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// checkModel fails unless o.Model is what decoding o.JSON gives.
func checkModel(tb testing.TB, o Observation) {
	tb.Helper()
	var want fm.Observation
	if err := json.Unmarshal(o.JSON, &want); err != nil {
		tb.Fatalf("decode %s: %v", o.JSON, err)
	}
	if o.Model == nil || !reflect.DeepEqual(*o.Model, want) {
		got, _ := json.Marshal(o.Model)
		again, _ := json.Marshal(want)
		tb.Fatalf("Observation %s: the model is not the decoded JSON\nmodel:   %s\ndecoded: %s", o.Key, got, again)
	}
}

// modelReadings are readings of every type, unit and MDC code of the
// table, with and without the optional fields, an id that needs escaping
// and times and values with unusual formatting.
func modelReadings() []Reading {
	at := time.Date(2026, 11, 20, 7, 31, 0, 123456789, time.FixedZone("", -(3*3600+30*60)))
	var out []Reading
	for _, t := range Table() {
		for _, mdc := range append([]Coding{{}}, t.MDC...) {
			if t.Name == "blood-pressure" {
				for _, extra := range []map[string]Quantity{
					{},
					{"mean": {95, "mm[Hg]"}},
					{"pulse": {71, "/min"}},
					{"mean": {95.5, "mm[Hg]"}, "pulse": {71, "/min"}},
				} {
					values := map[string]Quantity{"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}}
					for k, v := range extra {
						values[k] = v
					}
					out = append(out, Reading{Type: t.Name, ID: `r-"1\<&>`, At: at, Values: values, MDC: mdc.Code})
				}
				continue
			}
			for _, u := range t.Fields[0].Units {
				for _, v := range []float64{u.Min, u.Min + (u.Max-u.Min)/3, u.Max} {
					out = append(out,
						Reading{Type: t.Name, At: at, Values: map[string]Quantity{ValueField: {v, u.UCUM}}, MDC: mdc.Code},
						Reading{Type: t.Name, ID: "x", At: at.UTC(), Values: map[string]Quantity{ValueField: {v, u.UCUM}}, MDC: mdc.Code})
				}
			}
		}
	}
	return out
}

func TestModelIsTheDecodedJSON(t *testing.T) {
	t.Run("for every type, unit, MDC code and optional field of the table", func(t *testing.T) {
		for _, r := range modelReadings() {
			for _, o := range mustObservations(t, r, "dev-1", "pat-1") {
				checkModel(t, o)
			}
		}
	})
	t.Run("for every payload in testdata", func(t *testing.T) {
		reg := registry(t)
		for format, decode := range map[string]func([]byte) ([]Reading, error){
			"compact": DecodeCompact,
			"senml":   func(b []byte) ([]Reading, error) { return DecodeSenML(b, received()) },
			"fhir": func(b []byte) ([]Reading, error) {
				p, err := DecodeFHIR(b, reg)
				if err != nil {
					return nil, err
				}
				return p.Readings, nil
			},
		} {
			files, _ := filepath.Glob(filepath.Join("testdata", format, "*.json"))
			for _, file := range files {
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				readings, err := decode(b)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				for _, r := range readings {
					for _, o := range mustObservations(t, r, "dev-1", "pat-1") {
						checkModel(t, o)
					}
				}
			}
		}
	})
	t.Run("the Observations of one reading share no mutable part", func(t *testing.T) {
		r := Reading{Type: "blood-pressure", At: time.Now(), Values: map[string]Quantity{
			"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
		}}
		obs := mustObservations(t, r, "dev-1", "pat-1")
		if len(obs) != 2 || obs[0].Model == obs[1].Model || &obs[0].Model.Code.Coding[0] == &obs[1].Model.Code.Coding[0] {
			t.Fatalf("models %p and %p share their codings", obs[0].Model, obs[1].Model)
		}
	})
}
