package main

import (
	"crypto/rand"
	"fmt"
	"time"
)

// numPatients is how many patients the readings are spread over.
const numPatients = 100

// reading is one blood-pressure Observation (~1 KB of JSON) as a ward's
// devices send them: the subject, time and values vary per reading.
type reading struct {
	patient   string // Patient id
	device    string // Device id
	effective time.Time
	value     string // identifier value, unique per reading
	systolic  int
	diastolic int
}

// epoch anchors effective times so that runs post comparable bodies.
func epoch() time.Time { return time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC) }

// newReading is the seq-th reading of client w.
func newReading(w, seq int) reading {
	n := seq*maxClients + w
	return reading{
		patient:   fmt.Sprintf("bench-pat-%03d", n%numPatients),
		device:    fmt.Sprintf("bench-dev-%03d", n%numPatients),
		effective: epoch().Add(-time.Duration(n) * time.Second),
		value:     fmt.Sprintf("bench-%d-%d", w, seq),
		systolic:  110 + n%40,
		diastolic: 70 + n%20,
	}
}

// obsFormat is observation-bp.json from fhir/testdata, compact; the first
// verb takes the id and meta a stored version carries (empty in a create).
const obsFormat = `{"resourceType":"Observation",%s` +
	`"identifier":[{"system":"urn:vidda:reading","value":"%s"}],"status":"final",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}],"text":"Blood pressure systolic & diastolic"},` +
	`"subject":{"reference":"Patient/%s"},"effectiveDateTime":"%s","issued":"%s","performer":[{"reference":"Patient/%s"}],` +
	`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"normal"}]}],` +
	`"bodySite":{"coding":[{"system":"http://snomed.info/sct","code":"368209003","display":"Right arm"}]},` +
	`"device":{"reference":"Device/%s"},"component":[` +
	`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},"valueQuantity":{"value":%d,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"},` +
	`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N"}]}]},` +
	`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},"valueQuantity":{"value":%d,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

// createBody is the body of POST /fhir/Observation.
func (r reading) createBody() []byte { return r.json("") }

// storedBody is what the server stores for a create: the body plus id and
// meta, as the raw baseline inserts it.
func (r reading) storedBody(id string, at time.Time) []byte {
	return r.json(fmt.Sprintf(`"id":"%s","meta":{"versionId":"1","lastUpdated":"%s"},`, id, at.Format(time.RFC3339Nano)))
}

func (r reading) json(idMeta string) []byte {
	eff := r.effective.Format(time.RFC3339)
	issued := r.effective.Add(2 * time.Second).Format(time.RFC3339)
	return fmt.Appendf(nil, obsFormat, idMeta, r.value, r.patient, eff, issued, r.patient, r.device, r.systolic, r.diastolic)
}

// Search columns of a reading as fhir/search extracts them: tokens are
// "system|code", "*|code" and "system|*".
func tokens(system, code string) []string {
	return []string{system + "|" + code, "*|" + code, system + "|*"}
}

// newUUID returns a random (version 4) UUID, like the ids vidda assigns.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
