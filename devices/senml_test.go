package devices

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func TestDecodeSenMLReadsEveryTypeAndUnit(t *testing.T) {
	const bt = 1795156260 // 2026-11-20T06:31:00Z
	at := time.Unix(bt, 0).UTC()
	q := func(v float64, unit string) map[string]Quantity { return map[string]Quantity{ValueField: {v, unit}} }
	pack := func(records string) string {
		return `[{"bn":"urn:dev:mac:0024befffe804ff1:","bt":` + strconv.Itoa(bt) + `},` + records + `]`
	}
	tests := []struct {
		name    string
		payload string
		want    Reading
		codes   []string
	}{
		{
			"systolic, diastolic and pulse records at one time are one blood pressure",
			pack(`{"n":"systolic","u":"mmHg","v":142},{"n":"diastolic","u":"mmHg","v":91},{"n":"pulse","u":"beat/min","v":71}`),
			Reading{Type: "blood-pressure", At: at, Values: map[string]Quantity{
				"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
			}},
			[]string{"85354-9", "8867-4"},
		},
		{
			"an spo2 record in % is an spo2",
			pack(`{"n":"spo2","u":"%","v":96}`),
			Reading{Type: "spo2", At: at, Values: q(96, "%")},
			[]string{"59408-5"},
		},
		{
			"a heart-rate record in beat/min is a heart rate in /min",
			pack(`{"n":"heart-rate","u":"beat/min","v":74}`),
			Reading{Type: "heart-rate", At: at, Values: q(74, "/min")},
			[]string{"8867-4"},
		},
		{
			"a heart-rate record in 1/min is a heart rate in /min",
			pack(`{"n":"heart-rate","u":"1/min","v":74}`),
			Reading{Type: "heart-rate", At: at, Values: q(74, "/min")},
			[]string{"8867-4"},
		},
		{
			"a weight record in kg is a weight",
			pack(`{"n":"weight","u":"kg","v":72.35}`),
			Reading{Type: "weight", At: at, Values: q(72.35, "kg")},
			[]string{"29463-7"},
		},
		{
			"a temperature record in Cel is a temperature",
			pack(`{"n":"temperature","u":"Cel","v":37.8}`),
			Reading{Type: "temperature", At: at, Values: q(37.8, "Cel")},
			[]string{"8310-5"},
		},
		{
			"a respiratory-rate record in /min is a respiratory rate",
			pack(`{"n":"respiratory-rate","u":"/min","v":18}`),
			Reading{Type: "respiratory-rate", At: at, Values: q(18, "/min")},
			[]string{"9279-1"},
		},
		{
			"a glucose record in mg/dL is coded 2339-0",
			pack(`{"n":"glucose","u":"mg/dL","v":112}`),
			Reading{Type: "glucose", At: at, Values: q(112, "mg/dL")},
			[]string{"2339-0"},
		},
		{
			"a glucose record in mmol/L is coded 15074-8",
			pack(`{"n":"glucose","u":"mmol/L","v":6.2}`),
			Reading{Type: "glucose", At: at, Values: q(6.2, "mmol/L")},
			[]string{"15074-8"},
		},
	}
	reg := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, err := DecodeSenML([]byte(tt.payload), received())
			if err != nil || len(readings) != 1 {
				t.Fatalf("got %d readings, %v", len(readings), err)
			}
			checkReading(t, readings[0], tt.want)
			obs := mustObservations(t, readings[0], "dev-1", "pat-1")
			if len(obs) != len(tt.codes) {
				t.Fatalf("got %d Observations, want %d", len(obs), len(tt.codes))
			}
			for i, o := range obs {
				if o.Code != tt.codes[i] {
					t.Errorf("Observation %d is coded %s, want %s", i, o.Code, tt.codes[i])
				}
				if _, err := reg.Parse("Observation", o.JSON); err != nil {
					t.Errorf("not valid FHIR: %v\n%s", err, o.JSON)
				}
			}
		})
	}
}

func TestDecodeSenMLResolvesRecordsAsRFC8428Says(t *testing.T) {
	now := received()
	tests := []struct {
		name    string
		payload string
		want    []Reading
	}{
		{
			"base name, time, unit and value apply to the records that follow",
			`[{"bn":"cuff:","bt":1795156200,"bu":"mmHg","bv":100,"n":"systolic","v":40,"t":60},
			  {"n":"diastolic","v":-10,"t":60}]`,
			[]Reading{{Type: "blood-pressure", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{
				"systolic": {140, "mm[Hg]"}, "diastolic": {90, "mm[Hg]"},
			}}},
		},
		{
			"a record's own unit overrides the base unit",
			`[{"bu":"mmHg","bt":1795156260,"n":"systolic","v":120},{"n":"diastolic","v":80},{"n":"pulse","u":"/min","v":60}]`,
			[]Reading{{Type: "blood-pressure", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{
				"systolic": {120, "mm[Hg]"}, "diastolic": {80, "mm[Hg]"}, "pulse": {60, "/min"},
			}}},
		},
		{
			"times below 2^28 are relative to when the pack arrived",
			`[{"n":"spo2","u":"%","v":97,"t":-90}]`,
			[]Reading{{Type: "spo2", At: now.Add(-90 * time.Second), Values: map[string]Quantity{ValueField: {97, "%"}}}},
		},
		{
			"a record without any time was measured roughly now",
			`[{"n":"weight","u":"kg","v":72}]`,
			[]Reading{{Type: "weight", At: now, Values: map[string]Quantity{ValueField: {72, "kg"}}}},
		},
		{
			"fractional epoch seconds keep the microsecond",
			`[{"n":"weight","u":"kg","v":72,"t":1795156260.125}]`,
			[]Reading{{Type: "weight", At: time.Unix(1795156260, 125e6).UTC(), Values: map[string]Quantity{ValueField: {72, "kg"}}}},
		},
		{
			"blood pressure records at two times are two readings, in order",
			`[{"bu":"mmHg","n":"systolic","v":120,"t":1795156200},{"n":"systolic","v":130,"t":1795156260},
			  {"n":"diastolic","v":80,"t":1795156200},{"n":"diastolic","v":85,"t":1795156260}]`,
			[]Reading{
				{Type: "blood-pressure", At: time.Unix(1795156200, 0).UTC(), Values: map[string]Quantity{
					"systolic": {120, "mm[Hg]"}, "diastolic": {80, "mm[Hg]"},
				}},
				{Type: "blood-pressure", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{
					"systolic": {130, "mm[Hg]"}, "diastolic": {85, "mm[Hg]"},
				}, Index: 1},
			},
		},
		{
			"blood pressure records of two base names are two readings",
			`[{"bn":"cuff-1:","bu":"mmHg","bt":1795156260,"n":"systolic","v":120},{"n":"diastolic","v":80},
			  {"bn":"cuff-2:","n":"systolic","v":130},{"n":"diastolic","v":85}]`,
			[]Reading{
				{Type: "blood-pressure", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{
					"systolic": {120, "mm[Hg]"}, "diastolic": {80, "mm[Hg]"},
				}},
				{Type: "blood-pressure", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{
					"systolic": {130, "mm[Hg]"}, "diastolic": {85, "mm[Hg]"},
				}, Index: 2},
			},
		},
		{
			"a full name without base name ends in the type after a separator",
			`[{"n":"urn:dev:ow:10e2073a01080063/spo2","u":"%","v":95,"t":1795156260}]`,
			[]Reading{{Type: "spo2", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{ValueField: {95, "%"}}}},
		},
		{
			"a record of base fields only sets them for the records after it",
			`[{"bn":"oxi:","bt":1795156260,"bu":"%"},{"n":"spo2","v":95}]`,
			[]Reading{{Type: "spo2", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{ValueField: {95, "%"}}, Index: 1}},
		},
		{
			"unknown fields that need not be understood are ignored",
			`[{"n":"spo2","u":"%","v":95,"t":1795156260,"ut":300,"foo":"bar"}]`,
			[]Reading{{Type: "spo2", At: time.Unix(1795156260, 0).UTC(), Values: map[string]Quantity{ValueField: {95, "%"}}}},
		},
		{
			"an empty pack is no readings",
			`[]`,
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, err := DecodeSenML([]byte(tt.payload), now)
			if err != nil {
				t.Fatal(err)
			}
			if len(readings) != len(tt.want) {
				t.Fatalf("got %d readings %+v, want %d", len(readings), readings, len(tt.want))
			}
			for i := range readings {
				checkReading(t, readings[i], tt.want[i])
				if readings[i].Index != tt.want[i].Index {
					t.Errorf("reading %d has index %d, want %d", i, readings[i].Index, tt.want[i].Index)
				}
			}
		})
	}
}

func TestDecodeSenMLRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		reason  Reason
		whole   bool
	}{
		{"a pack that is not JSON is malformed", `[{"n":`, ReasonMalformed, true},
		{"a single record outside an array is malformed", `{"n":"spo2","u":"%","v":96}`, ReasonMalformed, true},
		{"a base name that is not a string spoils the pack", `[{"bn":5,"n":"spo2","u":"%","v":96}]`, ReasonMalformed, true},
		{"a base time that is not a number spoils the pack", `[{"bt":"now","n":"spo2","u":"%","v":96}]`, ReasonMalformed, true},
		{"a must-understand field is not understood", `[{"n":"spo2","u":"%","v":96,"x_":1}]`, ReasonUnsupported, true},
		{"a SenML version above 10 is not understood", `[{"bver":11,"n":"spo2","u":"%","v":96}]`, ReasonUnsupported, true},
		{"a fractional version is malformed", `[{"bver":1.5,"n":"spo2","u":"%","v":96}]`, ReasonMalformed, true},
		{"a string value is malformed", `[{"n":"spo2","u":"%","vs":"96"}]`, ReasonMalformed, false},
		{"a boolean value is malformed", `[{"n":"spo2","vb":true}]`, ReasonMalformed, false},
		{"a sum is malformed", `[{"n":"weight","u":"kg","s":72}]`, ReasonMalformed, false},
		{"a value that is a string is malformed", `[{"n":"spo2","u":"%","v":"96"}]`, ReasonMalformed, false},
		{"a name with a space is malformed", `[{"n":"my spo2","u":"%","v":96}]`, ReasonMalformed, false},
		{"a name starting with a dash is malformed", `[{"n":"-spo2","u":"%","v":96}]`, ReasonMalformed, false},
		{"a time beyond year 9999 is malformed", `[{"n":"spo2","u":"%","v":96,"t":1e12}]`, ReasonMalformed, false},
		{"a relative time centuries back is malformed", `[{"n":"spo2","u":"%","v":96,"t":-1e10}]`, ReasonMalformed, false},
		{"two systolic records at one time are malformed", `[{"bu":"mmHg","n":"systolic","v":120},{"n":"systolic","v":121},{"n":"diastolic","v":80}]`, ReasonMalformed, false},
		{"a name that is no reading type is unknown-type", `[{"n":"steps","u":"count","v":9000}]`, ReasonUnknownType, false},
		{"a name that only contains a type is unknown-type", `[{"n":"myspo2","u":"%","v":96}]`, ReasonUnknownType, false},
		{"a blood-pressure record is unknown-type: pressures are sent as systolic and diastolic", `[{"n":"blood-pressure","u":"mmHg","v":120}]`, ReasonUnknownType, false},
		{"a pulse in mmHg from the base unit is wrong-unit", `[{"bu":"mmHg","n":"systolic","v":120},{"n":"diastolic","v":80},{"n":"pulse","v":60}]`, ReasonWrongUnit, false},
		{"a record without unit is wrong-unit", `[{"n":"weight","v":72}]`, ReasonWrongUnit, false},
		{"a systolic without diastolic is missing-value", `[{"n":"systolic","u":"mmHg","v":120}]`, ReasonMissingValue, false},
		{"a pulse alone is missing-value", `[{"n":"pulse","u":"beat/min","v":60}]`, ReasonMissingValue, false},
		{"a named record without value is missing-value", `[{"n":"spo2","u":"%"}]`, ReasonMissingValue, false},
		{"an spo2 of 101 % is impossible", `[{"n":"spo2","u":"%","v":101}]`, ReasonImpossibleValue, false},
		{"a base value that adds to an impossible weight is impossible", `[{"bv":-100,"n":"weight","u":"kg","v":70}]`, ReasonImpossibleValue, false},
		{"a systolic below the diastolic is impossible", `[{"bu":"mmHg","n":"systolic","v":80},{"n":"diastolic","v":120}]`, ReasonImpossibleValue, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, err := DecodeSenML([]byte(tt.payload), received())
			if len(readings) != 0 {
				t.Errorf("accepted %+v", readings)
			}
			if got := reasonOf(t, err); got != tt.reason {
				t.Errorf("reason %s, want %s (%v)", got, tt.reason, err)
			}
			var one *RejectError
			if !errors.As(err, &one) || (one.Index == WholePayload) != tt.whole {
				t.Errorf("rejection %#v: whole payload should be %v", one, tt.whole)
			}
		})
	}
	t.Run("a bad record is refused alone, by the index of its record", func(t *testing.T) {
		readings, err := DecodeSenML([]byte(`[{"n":"spo2","u":"%","v":96},{"n":"spo2","u":"%","v":196},{"n":"weight","u":"kg","v":72}]`), received())
		rej := Rejections(err)
		if len(readings) != 2 || len(rej) != 1 || rej[0].Index != 1 {
			t.Errorf("readings %+v, rejections %v", readings, err)
		}
	})
}
