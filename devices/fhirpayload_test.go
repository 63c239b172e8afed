package devices

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Codings and a builder for test Observations.
const (
	mdcCoding   = `{"system":"urn:iso:std:iso:11073:10101","code":"%s"}`
	loincCoding = `{"system":"http://loinc.org","code":"%s"}`
)

func coding(format, code string) string { return strings.Replace(format, "%s", code, 1) }

func quantityJSON(v, code string) string {
	return `{"value":` + v + `,"system":"http://unitsofmeasure.org","code":"` + code + `"}`
}

// observationJSON is a final Observation with the given codings, at
// 07:31+01:00, and rest (more members, with a leading comma).
func observationJSON(codings, rest string) string {
	return `{"resourceType":"Observation","status":"final","code":{"coding":[` + codings + `]},` +
		`"effectiveDateTime":"2026-11-20T07:31:00+01:00"` + rest + `}`
}

func TestDecodeFHIRObservation(t *testing.T) {
	at := time.Date(2026, 11, 20, 7, 31, 0, 0, time.FixedZone("", 3600))
	q := func(v float64, unit string) map[string]Quantity { return map[string]Quantity{ValueField: {v, unit}} }
	bpComponents := `,"component":[` +
		`{"code":{"coding":[` + coding(loincCoding, "8480-6") + `]},"valueQuantity":` + quantityJSON("142", "mm[Hg]") + `},` +
		`{"code":{"coding":[` + coding(mdcCoding, "150022") + `]},"valueQuantity":` + quantityJSON("91", "mm[Hg]") + `},` +
		`{"code":{"coding":[` + coding(loincCoding, "8867-4") + `]},"valueQuantity":` + quantityJSON("71", "/min") + `}]`
	tests := []struct {
		name    string
		payload string
		want    Reading
		mdc     string // the MDC code in the Observation written
	}{
		{
			"a heart rate coded MDC_PULS_OXIM_PULS_RATE keeps that MDC code beside 8867-4",
			string(readTestdata(t, "fhir/observation-heart-rate.json")),
			Reading{
				Type: "heart-rate", ID: "FEEDABEEDEADBEEF-149530-20261120063210", MDC: "149530",
				At: time.Date(2026, 11, 20, 7, 32, 10, 0, time.FixedZone("", 3600)), Values: q(74, "/min"),
			},
			"149530",
		},
		{
			"a glucose coded in MDC only, in mmol/L, is coded 15074-8",
			string(readTestdata(t, "fhir/observation-glucose-mdc-only.json")),
			Reading{
				Type: "glucose", MDC: "160188",
				At: time.Date(2026, 11, 20, 6, 40, 0, 0, time.FixedZone("", 3600)), Values: q(6.2, "mmol/L"),
			},
			"160188",
		},
		{
			"an spo2 coded 2708-6 only is an spo2",
			observationJSON(coding(loincCoding, "2708-6"), `,"valueQuantity":`+quantityJSON("95", "%")),
			Reading{Type: "spo2", At: at, Values: q(95, "%")},
			"150456",
		},
		{
			"a weight coded in LOINC with the unit in unit only is a weight",
			observationJSON(coding(loincCoding, "29463-7"), `,"valueQuantity":{"value":72.4,"unit":"kg"}`),
			Reading{Type: "weight", At: at, Values: q(72.4, "kg")},
			"188736",
		},
		{
			"a temperature coded MDC_TEMP_BODY is a temperature",
			observationJSON(coding(mdcCoding, "150364"), `,"valueQuantity":`+quantityJSON("37.2", "Cel")),
			Reading{Type: "temperature", MDC: "150364", At: at, Values: q(37.2, "Cel")},
			"150364",
		},
		{
			"a respiratory rate coded in both systems is a respiratory rate",
			observationJSON(coding(loincCoding, "9279-1")+","+coding(mdcCoding, "151562"), `,"valueQuantity":`+quantityJSON("16", "/min")),
			Reading{Type: "respiratory-rate", MDC: "151562", At: at, Values: q(16, "/min")},
			"151562",
		},
		{
			"a glucose coded 2339-0 in mg/dL is a glucose",
			observationJSON(coding(loincCoding, "2339-0"), `,"valueQuantity":`+quantityJSON("112", "mg/dL")),
			Reading{Type: "glucose", At: at, Values: q(112, "mg/dL")},
			"160184",
		},
		{
			"a blood pressure panel with a heart-rate component has its pulse split off",
			observationJSON(coding(loincCoding, "85354-9"), bpComponents),
			Reading{Type: "blood-pressure", At: at, Values: map[string]Quantity{
				"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
			}},
			"150020",
		},
		{
			"the time may come from effectivePeriod.start and the id from the resource id",
			`{"resourceType":"Observation","id":"obs-9","status":"amended","code":{"coding":[` + coding(loincCoding, "8867-4") + `]},` +
				`"effectivePeriod":{"start":"2026-11-20T07:31:00+01:00","end":"2026-11-20T07:32:00+01:00"},"valueQuantity":` + quantityJSON("70", "/min") + `}`,
			Reading{Type: "heart-rate", ID: "obs-9", At: at, Values: q(70, "/min")},
			"147842",
		},
	}
	reg := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeFHIR([]byte(tt.payload), reg)
			if err != nil || len(p.Readings) != 1 {
				t.Fatalf("decode: %v", err)
			}
			checkReading(t, p.Readings[0], tt.want)
			obs := mustObservations(t, p.Readings[0], "dev-1", "pat-1")
			if !strings.Contains(string(obs[0].JSON), `"system":"urn:iso:std:iso:11073:10101","code":"`+tt.mdc+`"`) {
				t.Errorf("MDC %s not kept:\n%s", tt.mdc, obs[0].JSON)
			}
			for _, o := range obs {
				if _, err := reg.Parse("Observation", o.JSON); err != nil {
					t.Errorf("not valid FHIR: %v\n%s", err, o.JSON)
				}
			}
		})
	}
}

func TestDecodeFHIRPHDBundle(t *testing.T) {
	reg := registry(t)
	p, err := DecodeFHIR(readTestdata(t, "fhir/phd-bundle-blood-pressure.json"), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the MDC-coded blood pressure and pulse rate are readings", func(t *testing.T) {
		if len(p.Readings) != 2 {
			t.Fatalf("readings %+v", p.Readings)
		}
		bp, hr := p.Readings[0], p.Readings[1]
		if bp.Type != "blood-pressure" || bp.MDC != "150020" || bp.Index != 2 || bp.Values["mean"].Value != 108 ||
			bp.ID != "FEEDABEEDEADBEEF-150020-20261120063100" {
			t.Errorf("blood pressure %+v", bp)
		}
		if hr.Type != "heart-rate" || hr.MDC != "149546" || hr.Index != 3 {
			t.Errorf("heart rate %+v", hr)
		}
		if bp.Subject.Reference != "urn:uuid:3f0e2a4c-6d1b-4e8a-9c2f-1a2b3c4d5e01" ||
			bp.Device.Reference != "urn:uuid:3f0e2a4c-6d1b-4e8a-9c2f-1a2b3c4d5e02" {
			t.Errorf("references %+v %+v", bp.Subject, bp.Device)
		}
	})
	t.Run("the Device and Patient entries are named with their identifiers", func(t *testing.T) {
		if len(p.Devices) != 1 || len(p.Patients) != 1 {
			t.Fatalf("devices %+v patients %+v", p.Devices, p.Patients)
		}
		d := p.Devices[0]
		if d.Index != 1 || d.SerialNumber != "BPM-1001" || d.Method != http.MethodPost ||
			d.Identifiers[0] != (Identifier{"urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680", "FE-ED-AB-EE-DE-AD-BE-EF"}) ||
			!strings.HasPrefix(d.IfNoneExist, "identifier=") {
			t.Errorf("device %+v", d)
		}
		if pt := p.Patients[0]; pt.Index != 0 || pt.FullURL != "urn:uuid:3f0e2a4c-6d1b-4e8a-9c2f-1a2b3c4d5e01" ||
			pt.Identifiers[0] != (Identifier{"urn:oid:2.16.578.1.12.4.1.4.1", "12034112345"}) {
			t.Errorf("patient %+v", pt)
		}
	})
	t.Run("the coincident time stamp is skipped, not refused", func(t *testing.T) {
		if len(p.Skipped) != 1 || p.Skipped[0] != 4 || !p.Transaction {
			t.Errorf("skipped %v, transaction %v", p.Skipped, p.Transaction)
		}
	})
	t.Run("the bound patient's identifier matches; another patient's does not", func(t *testing.T) {
		bound := []Identifier{{"urn:oid:2.16.578.1.12.4.1.4.1", "12034112345"}}
		if err := p.CheckPatient("pat-1", bound); err != nil {
			t.Errorf("bound patient refused: %v", err)
		}
		other := []Identifier{{"urn:oid:2.16.578.1.12.4.1.4.1", "30094854321"}}
		if got := reasonOf(t, p.CheckPatient("pat-2", other)); got != ReasonPatientMismatch {
			t.Errorf("reason %s", got)
		}
	})
}

func TestDecodeFHIRRejects(t *testing.T) {
	value := `,"valueQuantity":` + quantityJSON("96", "%")
	spo2 := coding(loincCoding, "59408-5")
	entry := func(resource, method string) string {
		return `{"fullUrl":"urn:uuid:1","resource":` + resource + `,"request":{"method":"` + method + `","url":"Observation"}}`
	}
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	tests := []struct {
		name    string
		payload string
		reason  Reason
		whole   bool
	}{
		{"a payload that is not JSON is malformed", `{"resourceType":`, ReasonMalformed, true},
		{"a payload without resourceType is malformed", `{"status":"final"}`, ReasonMalformed, true},
		{"a Patient alone is unsupported", `{"resourceType":"Patient"}`, ReasonUnsupported, true},
		{"a collection Bundle is unsupported", bundle("collection"), ReasonUnsupported, true},
		{"a Bundle whose entries are not an array is malformed", `{"resourceType":"Bundle","type":"batch","entry":{}}`, ReasonMalformed, true},
		{"an Observation with an element R4 does not define is malformed", observationJSON(spo2, value+`,"colour":"red"`), ReasonMalformed, false},
		{"an Observation whose codes name two types is malformed", observationJSON(spo2+","+coding(mdcCoding, "188736"), value), ReasonMalformed, false},
		{"a blood pressure with a valueQuantity is malformed", observationJSON(coding(loincCoding, "85354-9"), `,"valueQuantity":`+quantityJSON("120", "mm[Hg]")), ReasonMalformed, false},
		{"an spo2 with components is malformed", observationJSON(spo2, value+`,"component":[{"code":{"text":"x"},"valueQuantity":`+quantityJSON("1", "%")+`}]`), ReasonMalformed, false},
		{"a preliminary Observation is unsupported", strings.Replace(observationJSON(spo2, value), "final", "preliminary", 1), ReasonUnsupported, false},
		{"a value with a comparator is unsupported", observationJSON(coding(loincCoding, "2339-0"), `,"valueQuantity":{"value":600,"comparator":">","system":"http://unitsofmeasure.org","code":"mg/dL"}`), ReasonUnsupported, false},
		{"a device attribute coded beside an unknown LOINC code is unknown-type, not skipped", observationJSON(coding(mdcCoding, "67975")+","+coding(loincCoding, "8302-2"), `,"valueDateTime":"2026-11-20T07:31:00Z"`), ReasonUnknownType, false},
		{"a body height is unknown-type", observationJSON(coding(loincCoding, "8302-2"), `,"valueQuantity":`+quantityJSON("180", "cm")), ReasonUnknownType, false},
		{"an Observation coded in text only is unknown-type", `{"resourceType":"Observation","status":"final","code":{"text":"BP"},"effectiveDateTime":"2026-11-20T07:31:00Z"}`, ReasonUnknownType, false},
		{"a blood pressure component of unknown code is unknown-type", observationJSON(coding(loincCoding, "85354-9"), `,"component":[{"code":{"coding":[`+coding(loincCoding, "8357-6")+`]},"valueQuantity":`+quantityJSON("1", "mm[Hg]")+`}]`), ReasonUnknownType, false},
		{"a weight in pounds is wrong-unit", observationJSON(coding(loincCoding, "29463-7"), `,"valueQuantity":`+quantityJSON("160", "[lb_av]")), ReasonWrongUnit, false},
		{"a unit coded in another system is wrong-unit", observationJSON(spo2, `,"valueQuantity":{"value":96,"system":"urn:iso:std:iso:11073:10101","code":"262688"}`), ReasonWrongUnit, false},
		{"a glucose coded 2339-0 in mmol/L is wrong-unit", observationJSON(coding(loincCoding, "2339-0"), `,"valueQuantity":`+quantityJSON("6.2", "mmol/L")), ReasonWrongUnit, false},
		{"an Observation without value is missing-value", observationJSON(spo2, `,"dataAbsentReason":{"text":"sensor off"}`), ReasonMissingValue, false},
		{"a quantity without value is missing-value", observationJSON(spo2, `,"valueQuantity":{"unit":"%"}`), ReasonMissingValue, false},
		{"a blood pressure without diastolic component is missing-value", observationJSON(coding(mdcCoding, "150020"), `,"component":[{"code":{"coding":[`+coding(mdcCoding, "150021")+`]},"valueQuantity":`+quantityJSON("120", "mm[Hg]")+`}]`), ReasonMissingValue, false},
		{"an spo2 of 101 % is impossible", observationJSON(spo2, `,"valueQuantity":`+quantityJSON("101", "%")), ReasonImpossibleValue, false},
		{"an Observation without effective time is missing-time", `{"resourceType":"Observation","status":"final","code":{"coding":[` + spo2 + `]}` + value + `}`, ReasonMissingTime, false},
		{"an effectiveDateTime without time of day is missing-time", strings.Replace(observationJSON(spo2, value), "2026-11-20T07:31:00+01:00", "2026-11-20", 1), ReasonMissingTime, false},
		{"a Bundle entry without request is malformed", bundle("batch", `{"resource":`+observationJSON(spo2, value)+`}`), ReasonMalformed, false},
		{"a Bundle entry without resource is malformed", bundle("batch", `{"request":{"method":"POST","url":"Observation"}}`), ReasonMalformed, false},
		{"a Bundle entry that deletes is unsupported", bundle("batch", entry(observationJSON(spo2, value), "DELETE")), ReasonUnsupported, false},
		{"a Bundle entry of another resource type is unsupported", bundle("batch", entry(`{"resourceType":"Encounter","status":"finished"}`, "POST")), ReasonUnsupported, false},
		{"a Device entry that is not valid FHIR is malformed", bundle("batch", entry(`{"resourceType":"Device","serialNumber":5}`, "POST")), ReasonMalformed, false},
	}
	reg := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeFHIR([]byte(tt.payload), reg)
			if p != nil && len(p.Readings) != 0 {
				t.Errorf("accepted %+v", p.Readings)
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

	good := entry(observationJSON(spo2, value), "POST")
	bad := entry(observationJSON(spo2, `,"valueQuantity":`+quantityJSON("101", "%")), "POST")
	t.Run("a batch keeps its good entries and names the bad ones", func(t *testing.T) {
		p, err := DecodeFHIR([]byte(bundle("batch", good, bad, good)), reg)
		rej := Rejections(err)
		if p == nil || len(p.Readings) != 2 || len(rej) != 1 || rej[0].Index != 1 || p.Transaction {
			t.Errorf("payload %+v, rejections %v", p, err)
		}
	})
	t.Run("a transaction with one bad entry is refused whole, as FHIR makes it all or nothing", func(t *testing.T) {
		p, err := DecodeFHIR([]byte(bundle("transaction", good, bad, good)), reg)
		if p != nil || len(Rejections(err)) != 1 {
			t.Errorf("payload %+v, rejections %v", p, err)
		}
	})
	t.Run("an Observation coded only MDC_ATTR_TIME_ABS is skipped", func(t *testing.T) {
		p, err := DecodeFHIR([]byte(observationJSON(coding(mdcCoding, "67975"), `,"valueDateTime":"2026-11-20T07:31:00Z"`)), reg)
		if err != nil || len(p.Readings) != 0 || len(p.Skipped) != 1 || p.Skipped[0] != 0 {
			t.Errorf("payload %+v, %v", p, err)
		}
	})
	t.Run("a nil registry is an error, not a rejection", func(t *testing.T) {
		_, err := DecodeFHIR([]byte(observationJSON(spo2, value)), nil)
		if err == nil || Rejections(err) != nil {
			t.Errorf("%v", err)
		}
	})
}

func TestCheckPatient(t *testing.T) {
	bound := []Identifier{{"urn:oid:2.16.578.1.12.4.1.4.1", "12034112345"}}
	withSubject := func(ref Ref) *FHIRPayload {
		return &FHIRPayload{Readings: []Reading{{Type: "spo2", Index: 0, Subject: ref}}}
	}
	tests := []struct {
		name string
		p    *FHIRPayload
		ok   bool
	}{
		{"an Observation without subject is the bound patient's", withSubject(Ref{}), true},
		{"a subject Patient/pat-1 is the bound patient", withSubject(Ref{Reference: "Patient/pat-1"}), true},
		{"a subject given as an absolute URL of Patient/pat-1 is the bound patient", withSubject(Ref{Reference: "https://ehr.example/fhir/Patient/pat-1/_history/3"}), true},
		{"a subject Patient/pat-2 is another patient", withSubject(Ref{Reference: "Patient/pat-2"}), false},
		{"a subject that ends in /Patient/pat-1 but is no URL is another patient", withSubject(Ref{Reference: "Group/Patient/pat-1"}), false},
		{"a subject that is a Group is not the bound patient", withSubject(Ref{Reference: "Group/g-1"}), false},
		{"a conditional subject by the bound identifier is the bound patient", withSubject(Ref{Reference: "Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|12034112345"}), true},
		{"a conditional subject by another identifier is another patient", withSubject(Ref{Reference: "Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|1"}), false},
		{"a conditional subject by value alone cannot be matched", withSubject(Ref{Reference: "Patient?identifier=12034112345"}), false},
		{"a logical subject by the bound identifier is the bound patient", withSubject(Ref{Identifier: bound[0]}), true},
		{"a logical subject by another identifier is another patient", withSubject(Ref{Identifier: Identifier{"x", "y"}}), false},
		{"a subject urn:uuid that no Patient entry has is refused", withSubject(Ref{Reference: "urn:uuid:9"}), false},
		{"a Patient entry without identifiers cannot be matched", &FHIRPayload{Patients: []Entity{{Method: "POST"}}}, false},
		{"a Patient entry that updates Patient/pat-1 is the bound patient", &FHIRPayload{Patients: []Entity{{Method: "PUT", URL: "Patient/pat-1"}}}, true},
		{"a Patient entry that updates by the bound identifier is the bound patient", &FHIRPayload{Patients: []Entity{{Method: "PUT", URL: "Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|12034112345"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.CheckPatient("pat-1", bound)
			if tt.ok != (err == nil) {
				t.Fatalf("ok %v, got %v", tt.ok, err)
			}
			if err != nil && reasonOf(t, err) != ReasonPatientMismatch {
				t.Errorf("reason of %v", err)
			}
		})
	}
}
