package devices

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// checkReading compares the parts of a reading a decoder sets.
func checkReading(t *testing.T, got, want Reading) {
	t.Helper()
	_, gotOff := got.At.Zone()
	_, wantOff := want.At.Zone()
	if got.Type != want.Type || got.ID != want.ID || !got.At.Equal(want.At) || gotOff != wantOff ||
		!reflect.DeepEqual(got.Values, want.Values) || got.MDC != want.MDC {
		t.Errorf("reading\n got %+v (offset %d)\nwant %+v (offset %d)", got, gotOff, want, wantOff)
	}
}

func TestDecodeCompactReadsEveryTypeAndUnit(t *testing.T) {
	cet := time.FixedZone("", 3600)
	at := time.Date(2026, 11, 20, 7, 31, 0, 0, cet)
	q := func(v float64, unit string) map[string]Quantity { return map[string]Quantity{ValueField: {v, unit}} }
	tests := []struct {
		name    string
		payload string
		want    Reading
		codes   []string // primary LOINC code of each Observation
	}{
		{
			"a blood pressure in mmHg with a pulse gives a panel and a heart rate",
			`{"id":"r-1","t":"2026-11-20T07:31:00+01:00","type":"blood-pressure","systolic":142,"diastolic":91,"pulse":71,"unit":"mmHg"}`,
			Reading{Type: "blood-pressure", ID: "r-1", At: at, Values: map[string]Quantity{
				"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
			}},
			[]string{"85354-9", "8867-4"},
		},
		{
			"a blood pressure in the UCUM mm[Hg] with a mean and no pulse gives one panel",
			`{"id":"r-2","t":"2026-11-20T07:31:00+01:00","type":"blood-pressure","systolic":128,"diastolic":82,"mean":97,"unit":"mm[Hg]"}`,
			Reading{Type: "blood-pressure", ID: "r-2", At: at, Values: map[string]Quantity{
				"systolic": {128, "mm[Hg]"}, "diastolic": {82, "mm[Hg]"}, "mean": {97, "mm[Hg]"},
			}},
			[]string{"85354-9"},
		},
		{
			"an spo2 in % is coded 59408-5",
			`{"id":"r-3","t":"2026-11-20T07:31:00+01:00","type":"spo2","value":96,"unit":"%"}`,
			Reading{Type: "spo2", ID: "r-3", At: at, Values: q(96, "%")},
			[]string{"59408-5"},
		},
		{
			"a heart rate in /min is coded 8867-4",
			`{"id":"r-4","t":"2026-11-20T07:31:00+01:00","type":"heart-rate","value":74,"unit":"/min"}`,
			Reading{Type: "heart-rate", ID: "r-4", At: at, Values: q(74, "/min")},
			[]string{"8867-4"},
		},
		{
			"a heart rate in beat/min is taken as /min",
			`{"id":"r-4b","t":"2026-11-20T07:31:00+01:00","type":"heart-rate","value":74,"unit":"beat/min"}`,
			Reading{Type: "heart-rate", ID: "r-4b", At: at, Values: q(74, "/min")},
			[]string{"8867-4"},
		},
		{
			"a weight in kg is coded 29463-7",
			`{"id":"r-5","t":"2026-11-20T07:31:00+01:00","type":"weight","value":72.35,"unit":"kg"}`,
			Reading{Type: "weight", ID: "r-5", At: at, Values: q(72.35, "kg")},
			[]string{"29463-7"},
		},
		{
			"a temperature in Cel is coded 8310-5",
			`{"id":"r-6","t":"2026-11-20T07:31:00+01:00","type":"temperature","value":37.8,"unit":"Cel"}`,
			Reading{Type: "temperature", ID: "r-6", At: at, Values: q(37.8, "Cel")},
			[]string{"8310-5"},
		},
		{
			"a respiratory rate in /min is coded 9279-1",
			`{"id":"r-7","t":"2026-11-20T07:31:00+01:00","type":"respiratory-rate","value":18,"unit":"/min"}`,
			Reading{Type: "respiratory-rate", ID: "r-7", At: at, Values: q(18, "/min")},
			[]string{"9279-1"},
		},
		{
			"a respiratory rate in 1/min is taken as /min",
			`{"id":"r-7b","t":"2026-11-20T07:31:00+01:00","type":"respiratory-rate","value":18,"unit":"1/min"}`,
			Reading{Type: "respiratory-rate", ID: "r-7b", At: at, Values: q(18, "/min")},
			[]string{"9279-1"},
		},
		{
			"a glucose in mg/dL is coded 2339-0",
			`{"id":"r-8","t":"2026-11-20T07:31:00+01:00","type":"glucose","value":112,"unit":"mg/dL"}`,
			Reading{Type: "glucose", ID: "r-8", At: at, Values: q(112, "mg/dL")},
			[]string{"2339-0"},
		},
		{
			"a glucose in mmol/L is coded 15074-8",
			`{"id":"r-9","t":"2026-11-20T07:31:00+01:00","type":"glucose","value":6.2,"unit":"mmol/L"}`,
			Reading{Type: "glucose", ID: "r-9", At: at, Values: q(6.2, "mmol/L")},
			[]string{"15074-8"},
		},
		{
			"a reading without id keeps fractional seconds and a UTC time",
			`{"t":"2026-11-20T06:31:00.25Z","type":"weight","value":80,"unit":"kg"}`,
			Reading{Type: "weight", At: time.Date(2026, 11, 20, 6, 31, 0, 250e6, time.UTC), Values: q(80, "kg")},
			[]string{"29463-7"},
		},
	}
	reg := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, err := DecodeCompact([]byte(tt.payload))
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

func TestDecodeCompactRejects(t *testing.T) {
	const ok = `"t":"2026-11-20T07:31:00+01:00"`
	tests := []struct {
		name    string
		payload string
		reason  Reason
		whole   bool // the payload as a whole, not an item
	}{
		{"a payload that is not JSON is malformed", `{"id":`, ReasonMalformed, false},
		{"an empty payload is malformed", ``, ReasonMalformed, true},
		{"a JSON string is malformed", `"spo2"`, ReasonMalformed, true},
		{"an array that does not parse is malformed", `[{"type":"spo2"},`, ReasonMalformed, true},
		{"data after the object is malformed", `{"type":"spo2","value":96,"unit":"%",` + ok + `} {}`, ReasonMalformed, false},
		{"an unknown member is malformed, not dropped", `{"type":"spo2","value":96,"unit":"%","battery":80,` + ok + `}`, ReasonMalformed, false},
		{"a value given as a string is malformed", `{"type":"spo2","value":"96","unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"a value too large for a number is malformed", `{"type":"spo2","value":1e999,"unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"an id with a slash is malformed", `{"id":"a/b","type":"spo2","value":96,"unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"an empty id is malformed", `{"id":"","type":"spo2","value":96,"unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"a reading without type is malformed", `{"value":96,"unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"a time without offset is malformed", `{"type":"spo2","value":96,"unit":"%","t":"2026-11-20T07:31:00"}`, ReasonMalformed, false},
		{"a blood pressure with a value is malformed", `{"type":"blood-pressure","value":120,"systolic":120,"diastolic":80,"unit":"mmHg",` + ok + `}`, ReasonMalformed, false},
		{"an spo2 with a systolic is malformed", `{"type":"spo2","value":96,"systolic":120,"unit":"%",` + ok + `}`, ReasonMalformed, false},
		{"an unknown type is unknown-type", `{"type":"steps","value":9000,"unit":"1",` + ok + `}`, ReasonUnknownType, false},
		{"a blood pressure in kPa is wrong-unit", `{"type":"blood-pressure","systolic":16,"diastolic":11,"unit":"kPa",` + ok + `}`, ReasonWrongUnit, false},
		{"a weight in pounds is wrong-unit", `{"type":"weight","value":160,"unit":"[lb_av]",` + ok + `}`, ReasonWrongUnit, false},
		{"a temperature in Fahrenheit is wrong-unit", `{"type":"temperature","value":99.5,"unit":"[degF]",` + ok + `}`, ReasonWrongUnit, false},
		{"a glucose in mg/dl spelled lower-case is wrong-unit", `{"type":"glucose","value":112,"unit":"mg/dl",` + ok + `}`, ReasonWrongUnit, false},
		{"a reading without unit is wrong-unit", `{"type":"weight","value":72,` + ok + `}`, ReasonWrongUnit, false},
		{"a blood pressure without diastolic is missing-value", `{"type":"blood-pressure","systolic":120,"unit":"mmHg",` + ok + `}`, ReasonMissingValue, false},
		{"an spo2 without value is missing-value", `{"type":"spo2","unit":"%",` + ok + `}`, ReasonMissingValue, false},
		{"an spo2 of null is missing-value", `{"type":"spo2","value":null,"unit":"%",` + ok + `}`, ReasonMissingValue, false},
		{"an spo2 above 100 % is impossible", `{"type":"spo2","value":101,"unit":"%",` + ok + `}`, ReasonImpossibleValue, false},
		{"an spo2 below 0 % is impossible", `{"type":"spo2","value":-1,"unit":"%",` + ok + `}`, ReasonImpossibleValue, false},
		{"a systolic below the diastolic is impossible", `{"type":"blood-pressure","systolic":80,"diastolic":120,"unit":"mmHg",` + ok + `}`, ReasonImpossibleValue, false},
		{"a systolic equal to the diastolic is impossible", `{"type":"blood-pressure","systolic":100,"diastolic":100,"unit":"mmHg",` + ok + `}`, ReasonImpossibleValue, false},
		{"a mean above the systolic is impossible", `{"type":"blood-pressure","systolic":120,"diastolic":80,"mean":130,"unit":"mmHg",` + ok + `}`, ReasonImpossibleValue, false},
		{"a pulse of 400 is impossible", `{"type":"blood-pressure","systolic":120,"diastolic":80,"pulse":400,"unit":"mmHg",` + ok + `}`, ReasonImpossibleValue, false},
		{"a negative weight is impossible", `{"type":"weight","value":-70,"unit":"kg",` + ok + `}`, ReasonImpossibleValue, false},
		{"a temperature of 46 Cel is impossible", `{"type":"temperature","value":46,"unit":"Cel",` + ok + `}`, ReasonImpossibleValue, false},
		{"a temperature of 24 Cel is impossible", `{"type":"temperature","value":24,"unit":"Cel",` + ok + `}`, ReasonImpossibleValue, false},
		{"a glucose of 60 mmol/L is impossible", `{"type":"glucose","value":60,"unit":"mmol/L",` + ok + `}`, ReasonImpossibleValue, false},
		{"a respiratory rate of 0 is impossible", `{"type":"respiratory-rate","value":0,"unit":"/min",` + ok + `}`, ReasonImpossibleValue, false},
		{"a reading without t is missing-time", `{"type":"spo2","value":96,"unit":"%"}`, ReasonMissingTime, false},
		{"a reading with an empty t is missing-time", `{"type":"spo2","value":96,"unit":"%","t":""}`, ReasonMissingTime, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readings, err := DecodeCompact([]byte(tt.payload))
			if len(readings) != 0 {
				t.Errorf("accepted %+v", readings)
			}
			if got := reasonOf(t, err); got != tt.reason {
				t.Errorf("reason %s, want %s (%v)", got, tt.reason, err)
			}
			var one *RejectError
			if !errors.As(err, &one) || (one.Index == WholePayload) != tt.whole || one.Message == "" {
				t.Errorf("rejection %#v: whole payload should be %v", one, tt.whole)
			}
		})
	}
}

func TestDecodeCompactArray(t *testing.T) {
	t.Run("an array keeps the good items and names the bad ones by index and id", func(t *testing.T) {
		payload := `[
			{"id":"a","t":"2026-11-20T07:31:00Z","type":"spo2","value":96,"unit":"%"},
			{"id":"b","t":"2026-11-20T07:31:00Z","type":"spo2","value":160,"unit":"%"},
			{"id":"c","t":"2026-11-20T07:31:00Z","type":"weight","value":72,"unit":"kg"},
			{"id":"d","t":"2026-11-20T07:31:00Z","type":"weight","value":72,"unit":"lb"}
		]`
		readings, err := DecodeCompact([]byte(payload))
		if len(readings) != 2 || readings[0].ID != "a" || readings[1].ID != "c" || readings[1].Index != 2 {
			t.Errorf("readings %+v", readings)
		}
		var many RejectErrors
		if !errors.As(err, &many) || len(many) != 2 {
			t.Fatalf("want two rejections, got %v", err)
		}
		if many[0].Index != 1 || many[0].ID != "b" || many[0].Reason != ReasonImpossibleValue ||
			many[1].Index != 3 || many[1].ID != "d" || many[1].Reason != ReasonWrongUnit {
			t.Errorf("rejections %+v %+v", many[0], many[1])
		}
		if len(Rejections(err)) != 2 {
			t.Errorf("Rejections(err) = %v", Rejections(err))
		}
	})
	t.Run("an empty array is no readings and no error", func(t *testing.T) {
		readings, err := DecodeCompact([]byte(" [ ] "))
		if len(readings) != 0 || err != nil {
			t.Errorf("%v %v", readings, err)
		}
	})
	t.Run("an array element that is not an object is refused alone", func(t *testing.T) {
		readings, err := DecodeCompact([]byte(`[7, {"t":"2026-11-20T07:31:00Z","type":"spo2","value":96,"unit":"%"}]`))
		if len(readings) != 1 || reasonOf(t, err) != ReasonMalformed || Rejections(err)[0].Index != 0 {
			t.Errorf("%v %v", readings, err)
		}
	})
}
