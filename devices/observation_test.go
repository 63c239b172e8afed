package devices

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// keysOf decodes payload with decode and maps it for device deviceID.
func keysOf(t *testing.T, decode func([]byte) ([]Reading, error), payload, deviceID string) []string {
	t.Helper()
	readings, err := decode([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range readings {
		for _, o := range mustObservations(t, r, deviceID, "pat-1") {
			keys = append(keys, o.Key)
		}
	}
	return keys
}

func TestIdempotencyKeys(t *testing.T) {
	reg := registry(t)
	senml := func(b []byte) ([]Reading, error) { return DecodeSenML(b, received()) }
	fhirReadings := func(b []byte) ([]Reading, error) {
		p, err := DecodeFHIR(b, reg)
		if err != nil {
			return nil, err
		}
		return p.Readings, nil
	}
	payloads := []struct {
		format string
		decode func([]byte) ([]Reading, error)
		file   string
	}{
		{"compact", DecodeCompact, "compact/blood-pressure.json"},
		{"compact", DecodeCompact, "compact/array-without-ids.json"},
		{"senml", senml, "senml/blood-pressure.json"},
		{"senml", senml, "senml/glucose.json"},
		{"fhir", fhirReadings, "fhir/phd-bundle-blood-pressure.json"},
	}
	for _, p := range payloads {
		payload := string(readTestdata(t, p.file))
		t.Run("the "+p.file+" payload sent twice gives the same keys", func(t *testing.T) {
			first, again := keysOf(t, p.decode, payload, "dev-1"), keysOf(t, p.decode, payload, "dev-1")
			if strings.Join(first, " ") != strings.Join(again, " ") || len(first) == 0 {
				t.Errorf("%v then %v", first, again)
			}
		})
		t.Run("the "+p.file+" payload from two devices gives different keys", func(t *testing.T) {
			one, two := keysOf(t, p.decode, payload, "dev-1"), keysOf(t, p.decode, payload, "dev-2")
			for i := range one {
				if one[i] == two[i] {
					t.Errorf("both devices have key %s", one[i])
				}
			}
		})
	}

	t.Run("a reading with an id is keyed device/id, its pulse device/id/pulse", func(t *testing.T) {
		keys := keysOf(t, DecodeCompact, string(readTestdata(t, "compact/blood-pressure.json")), "dev-1")
		if strings.Join(keys, " ") != "dev-1/r-1 dev-1/r-1/pulse" {
			t.Errorf("keys %v", keys)
		}
	})
	t.Run("a reading without id is keyed device/code/UTC time, whatever offset it was sent in", func(t *testing.T) {
		a := keysOf(t, DecodeCompact, `{"t":"2026-11-20T07:31:00+01:00","type":"weight","value":72,"unit":"kg"}`, "dev-1")
		b := keysOf(t, DecodeCompact, `{"t":"2026-11-20T06:31:00Z","type":"weight","value":72.1,"unit":"kg"}`, "dev-1")
		if a[0] != "dev-1/29463-7/2026-11-20T06:31:00Z" || a[0] != b[0] {
			t.Errorf("keys %v and %v", a, b)
		}
	})
	t.Run("glucose in mg/dL and in mmol/L at one time have different keys", func(t *testing.T) {
		keys := keysOf(t, DecodeCompact, `[{"t":"2026-11-20T06:31:00Z","type":"glucose","value":112,"unit":"mg/dL"},
			{"t":"2026-11-20T06:31:00Z","type":"glucose","value":6.2,"unit":"mmol/L"}]`, "dev-1")
		if keys[0] == keys[1] {
			t.Errorf("keys %v", keys)
		}
	})
	t.Run("Key gives the key of the first Observation", func(t *testing.T) {
		readings, _ := DecodeCompact(readTestdata(t, "compact/array-without-ids.json"))
		for _, r := range readings {
			if r.Key("dev-1") != mustObservations(t, r, "dev-1", "pat-1")[0].Key {
				t.Errorf("Key %s", r.Key("dev-1"))
			}
		}
		if k := (Reading{Type: "nonsense", ID: "x"}).Key("dev-1"); k != "dev-1/x" {
			t.Errorf("key of an unknown type with id: %s", k)
		}
	})
}

// obsView is the part of an Observation the mapping tests read.
type obsView struct {
	Identifier []struct{ System, Value string } `json:"identifier"`
	Status     string                           `json:"status"`
	Category   []struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"category"`
	Code struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"code"`
	Subject           struct{ Reference string } `json:"subject"`
	Device            struct{ Reference string } `json:"device"`
	EffectiveDateTime string                     `json:"effectiveDateTime"`
	ValueQuantity     *struct {
		Value        float64
		Unit, System string
		Code         string
	} `json:"valueQuantity"`
	Component []struct {
		Code struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"code"`
	} `json:"component"`
	DerivedFrom []struct {
		Type       string
		Identifier struct{ System, Value string }
	} `json:"derivedFrom"`
}

func TestObservationsMapping(t *testing.T) {
	readings, err := DecodeCompact(readTestdata(t, "compact/blood-pressure.json"))
	if err != nil {
		t.Fatal(err)
	}
	obs := mustObservations(t, readings[0], "dev-1", "pat-1")
	var bp, hr obsView
	if err := json.Unmarshal(obs[0].JSON, &bp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(obs[1].JSON, &hr); err != nil {
		t.Fatal(err)
	}
	t.Run("the Observation is a final vital sign of the bound patient from the device", func(t *testing.T) {
		if bp.Status != "final" || bp.Category[0].Coding[0].System != SystemObservationCategory ||
			bp.Category[0].Coding[0].Code != "vital-signs" || bp.Subject.Reference != "Patient/pat-1" ||
			bp.Device.Reference != "Device/dev-1" {
			t.Errorf("%+v", bp)
		}
	})
	t.Run("the effective time keeps the device's offset", func(t *testing.T) {
		if bp.EffectiveDateTime != "2026-11-20T07:31:00+01:00" || !obs[0].Effective.Equal(readings[0].At) {
			t.Errorf("effective %s", bp.EffectiveDateTime)
		}
	})
	t.Run("the identifier carries the key in urn:vidda:reading", func(t *testing.T) {
		if len(bp.Identifier) != 1 || bp.Identifier[0].System != SystemReading || bp.Identifier[0].Value != obs[0].Key {
			t.Errorf("identifier %+v", bp.Identifier)
		}
	})
	t.Run("the code is LOINC with MDC beside it, the components systolic then diastolic", func(t *testing.T) {
		c := bp.Code.Coding
		if len(c) != 2 || c[0].System != SystemLOINC || c[0].Code != "85354-9" || c[1].System != SystemMDC || c[1].Code != "150020" {
			t.Errorf("code %+v", c)
		}
		if len(bp.Component) != 2 || bp.Component[0].Code.Coding[0].Code != "8480-6" || bp.Component[1].Code.Coding[0].Code != "8462-4" {
			t.Errorf("components %+v", bp.Component)
		}
	})
	t.Run("the pulse is a heart rate in /min derived from the panel", func(t *testing.T) {
		if obs[1].Code != "8867-4" || obs[1].Type != "heart-rate" || hr.ValueQuantity == nil ||
			hr.ValueQuantity.Code != "/min" || hr.ValueQuantity.System != SystemUCUM || hr.ValueQuantity.Value != 71 {
			t.Errorf("%+v %+v", obs[1], hr.ValueQuantity)
		}
		if len(hr.DerivedFrom) != 1 || hr.DerivedFrom[0].Type != "Observation" || hr.DerivedFrom[0].Identifier.Value != obs[0].Key {
			t.Errorf("derivedFrom %+v", hr.DerivedFrom)
		}
	})
	t.Run("the ids of the Observation are the reading's and the caller's", func(t *testing.T) {
		for _, o := range obs {
			if o.ReadingID != "r-1" || o.DeviceID != "dev-1" || o.PatientID != "pat-1" {
				t.Errorf("%+v", o)
			}
		}
	})
	t.Run("a spo2 is coded 59408-5 and 2708-6", func(t *testing.T) {
		rs, _ := DecodeCompact(readTestdata(t, "compact/spo2.json"))
		var v obsView
		if err := json.Unmarshal(mustObservations(t, rs[0], "dev-1", "pat-1")[0].JSON, &v); err != nil {
			t.Fatal(err)
		}
		if c := v.Code.Coding; len(c) != 3 || c[0].Code != "59408-5" || c[1].Code != "2708-6" || c[2].Code != "150456" {
			t.Errorf("code %+v", c)
		}
	})
	t.Run("ids that are not FHIR ids are an error, not a rejection", func(t *testing.T) {
		for _, ids := range [][2]string{{"", "pat-1"}, {"dev-1", "pat/1"}} {
			_, err := readings[0].Observations(ids[0], ids[1])
			if err == nil || Rejections(err) != nil {
				t.Errorf("%v: %v", ids, err)
			}
		}
	})
	t.Run("a reading made by hand is validated before it is mapped", func(t *testing.T) {
		r := Reading{Type: "spo2", At: received(), Values: map[string]Quantity{ValueField: {120, "%"}}}
		_, err := r.Observations("dev-1", "pat-1")
		var rej *RejectError
		if !errors.As(err, &rej) || rej.Reason != ReasonImpossibleValue {
			t.Errorf("%v", err)
		}
	})
	t.Run("a reading whose type was changed after decoding is mapped by its new type", func(t *testing.T) {
		rs, _ := DecodeCompact(readTestdata(t, "compact/heart-rate.json"))
		r := rs[0]
		r.Type = "respiratory-rate"
		r.Values = map[string]Quantity{ValueField: {18, "/min"}}
		if o := mustObservations(t, r, "dev-1", "pat-1"); o[0].Code != "9279-1" {
			t.Errorf("coded %s", o[0].Code)
		}
	})
}

func TestValidate(t *testing.T) {
	at := received()
	tests := []struct {
		name   string
		r      Reading
		reason Reason // "" for valid
	}{
		{"a complete spo2 is valid", Reading{Type: "spo2", At: at, Values: map[string]Quantity{ValueField: {97, "%"}}}, ""},
		{"a unit spelled as devices do is valid", Reading{Type: "blood-pressure", At: at, Values: map[string]Quantity{"systolic": {120, "mmHg"}, "diastolic": {80, "mm[Hg]"}}}, ""},
		{"an unknown type is unknown-type", Reading{Type: "steps", At: at}, ReasonUnknownType},
		{"an MDC code of another type is unknown-type", Reading{Type: "spo2", MDC: "188736", At: at, Values: map[string]Quantity{ValueField: {97, "%"}}}, ReasonUnknownType},
		{"a reading without time is missing-time", Reading{Type: "spo2", Values: map[string]Quantity{ValueField: {97, "%"}}}, ReasonMissingTime},
		{"a time in year 10000 is malformed", Reading{Type: "spo2", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Values: map[string]Quantity{ValueField: {97, "%"}}}, ReasonMalformed},
		{"an offset beyond 14 hours is malformed", Reading{Type: "spo2", At: at.In(time.FixedZone("", 15*3600)), Values: map[string]Quantity{ValueField: {97, "%"}}}, ReasonMalformed},
		{"an id with a space is malformed", Reading{Type: "spo2", ID: "a b", At: at, Values: map[string]Quantity{ValueField: {97, "%"}}}, ReasonMalformed},
		{"a field the type lacks is malformed", Reading{Type: "spo2", At: at, Values: map[string]Quantity{ValueField: {97, "%"}, "pulse": {60, "/min"}}}, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if tt.reason == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if got := reasonOf(t, err); got != tt.reason {
				t.Errorf("reason %s, want %s (%v)", got, tt.reason, err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	now := received()
	at := func(d time.Duration) Reading { return Reading{Type: "spo2", ID: "r", Index: 3, At: now.Add(d)} }
	tests := []struct {
		name   string
		lim    Limits
		r      Reading
		reason Reason
	}{
		{"a reading 4 minutes ahead passes the default 5 minutes", Limits{}, at(4 * time.Minute), ""},
		{"a reading 6 minutes ahead is future-time", Limits{}, at(6 * time.Minute), ReasonFutureTime},
		{"a reading 29 days old passes the default 30 days", Limits{}, at(-29 * 24 * time.Hour), ""},
		{"a reading 31 days old is too-old", Limits{}, at(-31 * 24 * time.Hour), ReasonTooOld},
		{"a reading 2 days old is too-old under a 1-day window", Limits{MaxAge: 24 * time.Hour}, at(-48 * time.Hour), ReasonTooOld},
		{"a reading 20 minutes ahead passes a 30-minute tolerance", Limits{MaxFuture: 30 * time.Minute}, at(20 * time.Minute), ""},
		{"a reading without time is missing-time", Limits{}, Reading{Type: "spo2"}, ReasonMissingTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lim.Check(tt.r, now)
			if tt.reason == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if got := reasonOf(t, err); got != tt.reason {
				t.Errorf("reason %s, want %s", got, tt.reason)
			}
			if rej := Rejections(err)[0]; rej.Index != tt.r.Index || rej.ID != tt.r.ID {
				t.Errorf("rejection names item %d id %q", rej.Index, rej.ID)
			}
		})
	}
	t.Run("Filter keeps the readings in the window and refuses the others", func(t *testing.T) {
		kept, err := DefaultLimits().Filter([]Reading{at(0), at(time.Hour), at(-time.Hour)}, now)
		if len(kept) != 2 || len(Rejections(err)) != 1 || Rejections(err)[0].Reason != ReasonFutureTime {
			t.Errorf("kept %v, %v", kept, err)
		}
		if _, err := DefaultLimits().Filter([]Reading{at(0)}, now); err != nil {
			t.Errorf("%v", err)
		}
	})
	t.Run("negative limits are refused by Validate, the defaults accepted", func(t *testing.T) {
		if (Limits{MaxAge: -1}).Validate() == nil || DefaultLimits().Validate() != nil || (Limits{}).Validate() != nil {
			t.Error("Validate")
		}
	})
}

func TestRejectErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"an item rejection names its index and id", &RejectError{Reason: ReasonTooOld, Index: 2, ID: "r-7", Message: "old"}, "item 2 (id r-7): too-old: old"},
		{"a whole-payload rejection names no item", &RejectError{Reason: ReasonMalformed, Index: WholePayload, Message: "not JSON"}, "malformed: not JSON"},
		{"a list of rejections counts the rest", RejectErrors{{Reason: ReasonMalformed, Index: 0}, {Reason: ReasonTooOld, Index: 1}}, "item 0: malformed (and 1 more)"},
		{"an empty list says so", RejectErrors{}, "no rejections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
	t.Run("a rejection unwraps to its cause", func(t *testing.T) {
		cause := errors.New("cause")
		if !errors.Is(&RejectError{Err: cause}, cause) {
			t.Error("not unwrapped")
		}
		if Rejections(cause) != nil || Rejections(nil) != nil {
			t.Error("Rejections of other errors")
		}
	})
}
