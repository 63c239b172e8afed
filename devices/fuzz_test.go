package devices

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// knownReasons are the Reason constants.
func knownReasons() map[Reason]bool {
	return map[Reason]bool{
		ReasonMalformed: true, ReasonUnknownType: true, ReasonWrongUnit: true, ReasonMissingValue: true,
		ReasonImpossibleValue: true, ReasonMissingTime: true, ReasonFutureTime: true, ReasonTooOld: true,
		ReasonPatientMismatch: true, ReasonUnsupported: true,
	}
}

// seed adds testdata/<dir>/*.json and extra to the corpus.
func seed(f *testing.F, dir string, extra ...string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// checkDecoded holds for whatever a decoder returns: every rejection is
// well formed, every reading valid and mappable to valid JSON whose model
// is the decoded JSON, and decoding again gives the same keys.
func checkDecoded(t *testing.T, readings []Reading, err error, items int, again func() []Reading) {
	t.Helper()
	reasons := knownReasons()
	rejections := Rejections(err)
	if err != nil && rejections == nil {
		t.Fatalf("an error that is no rejection: %v", err)
	}
	for _, rej := range rejections {
		if !reasons[rej.Reason] || rej.Message == "" || rej.Index < WholePayload || (items >= 0 && rej.Index >= items) {
			t.Fatalf("bad rejection %#v (items %d)", rej, items)
		}
		_ = rej.Error()
	}
	var keys []string
	for _, r := range readings {
		if err := r.Validate(); err != nil {
			t.Fatalf("a decoded reading is invalid: %v\n%+v", err, r)
		}
		obs, err := r.Observations("dev-1", "pat-1")
		if err != nil {
			t.Fatalf("a decoded reading does not map: %v\n%+v", err, r)
		}
		for _, o := range obs {
			if !json.Valid(o.JSON) {
				t.Fatalf("invalid JSON: %s", o.JSON)
			}
			checkModel(t, o)
			keys = append(keys, o.Key)
		}
	}
	var keysAgain []string
	for _, r := range again() {
		obs, _ := r.Observations("dev-1", "pat-1")
		for _, o := range obs {
			keysAgain = append(keysAgain, o.Key)
		}
	}
	if len(keys) != len(keysAgain) {
		t.Fatalf("decoding again gives %d keys, not %d", len(keysAgain), len(keys))
	}
	for i := range keys {
		if keys[i] != keysAgain[i] {
			t.Fatalf("decoding again gives key %s, not %s", keysAgain[i], keys[i])
		}
	}
}

func FuzzDecodeCompact(f *testing.F) {
	seed(f, "compact",
		`[{"t":"2026-11-20T07:31:00Z","type":"spo2","value":96,"unit":"%"},7,null,{"type":"x"}]`,
		`{"id":"r\"1","t":"2026-11-20T07:31:00.123456789-14:00","type":"heart-rate","value":1e2,"unit":"beat/min"}`,
		`{"t":"0001-01-01T00:00:00Z","type":"weight","value":0.2,"unit":"kg"}`,
		`{"t":"9999-12-31T23:59:59+14:00","type":"glucose","value":55.5,"unit":"mmol/L"}`,
	)
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, payload []byte) {
		readings, err := DecodeCompact(payload)
		checkDecoded(t, readings, err, -1, func() []Reading { r, _ := DecodeCompact(payload); return r })
		withTable, errWithTable := d.Compact(payload)
		sameDecoding(t, readings, err, withTable, errWithTable)
	})
}

// sameDecoding fails unless a Decoder decoded as the function did.
func sameDecoding(t *testing.T, readings []Reading, err error, withTable []Reading, errWithTable error) {
	t.Helper()
	if !reflect.DeepEqual(readings, withTable) || fmt.Sprint(err) != fmt.Sprint(errWithTable) {
		t.Fatalf("the function decodes %+v, %v; the Decoder %+v, %v", readings, err, withTable, errWithTable)
	}
}

// FuzzCompactScan holds the plain-form scanner of compact items to
// encoding/json: whatever it reads, encoding/json reads the same way.
func FuzzCompactScan(f *testing.F) {
	seed(f, "compact",
		`{"id":"a","t":"x","type":"weight","value":-0.5e+3,"unit":"kg"} `,
		`{"ID":"a"}`, `{"id":"a","id":"b"}`, `{"value":1e999}`, `{"t":null}`, `{} x`, `{"pulse":01}`,
	)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast, slow compactFields
		if !fast.scan(raw) {
			return
		}
		if rej := slow.decode(raw, 0); rej != nil {
			t.Fatalf("scan read %q, encoding/json refuses it: %v", raw, rej)
		}
		if fast != slow {
			t.Fatalf("%q: scan read %+v, encoding/json %+v", raw, fast, slow)
		}
	})
}

func FuzzDecodeSenML(f *testing.F) {
	seed(f, "senml",
		`[{"bver":10,"bn":"a:","bt":-1e9,"bu":"%","bv":50,"n":"spo2","v":1,"t":1e9},{"n":"spo2","x_":1}]`,
		`[{"n":"systolic","u":"mmHg","v":120,"t":268435455},{"n":"diastolic","u":"mmHg","v":80,"t":268435455}]`,
		`[{"bn":"x","n":"/pulse","u":"1/min","v":60},{"vs":"a"},{}]`,
	)
	now := received()
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, payload []byte) {
		readings, err := DecodeSenML(payload, now)
		checkDecoded(t, readings, err, -1, func() []Reading { r, _ := DecodeSenML(payload, now); return r })
		withTable, errWithTable := d.SenML(payload, now)
		sameDecoding(t, readings, err, withTable, errWithTable)
	})
}

func FuzzDecodeFHIR(f *testing.F) {
	spo2 := coding(loincCoding, "59408-5")
	seed(f, "fhir",
		observationJSON(spo2, `,"valueQuantity":`+quantityJSON("96", "%")),
		observationJSON(coding(mdcCoding, "150020"), `,"component":[]`),
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/p"}},null,{}]}`,
	)
	reg := registry(f)
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := DecodeFHIR(payload, reg)
		var readings []Reading
		if p != nil {
			readings = p.Readings
			_ = p.CheckPatient("pat-1", []Identifier{{"s", "v"}})
		}
		pt, errWithTable := d.FHIR(payload, reg)
		if (p == nil) != (pt == nil) || (p != nil && !reflect.DeepEqual(*p, *pt)) || fmt.Sprint(err) != fmt.Sprint(errWithTable) {
			t.Fatalf("the function decodes %+v, %v; the Decoder %+v, %v", p, err, pt, errWithTable)
		}
		again := func() []Reading {
			p, _ := DecodeFHIR(payload, reg)
			if p == nil {
				return nil
			}
			return p.Readings
		}
		checkDecoded(t, readings, err, -1, again)
		for _, r := range readings {
			for _, o := range mustObservations(t, r, "dev-1", "pat-1") {
				if _, err := reg.Parse("Observation", o.JSON); err != nil {
					t.Fatalf("mapped Observation is not valid FHIR: %v\n%s", err, o.JSON)
				}
			}
		}
	})
}
