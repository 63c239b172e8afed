package devices

import (
	"fmt"
	"strconv"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/vidda/vidda/fhir"
)

// Observation is a reading mapped to a FHIR R4 vital-signs Observation,
// ready to store.
type Observation struct {
	// Key is the idempotency key (see Reading.Key), also written as the
	// Observation's identifier with system SystemReading. The store keeps
	// the first Observation of a key and drops re-sent ones.
	Key string
	// JSON is the Observation, without id and meta (the store sets them).
	JSON []byte
	// Model is the same Observation as the golang-fhir-models struct, what
	// decoding JSON gives, for the store's search values: built beside
	// JSON so that nothing is decoded again. It shares no memory with
	// other Observations' models but may with the other Observations of
	// the same reading; read it, do not change it.
	Model *fm.Observation
	// Code is the primary LOINC code, e.g. "85354-9".
	Code string
	// Type is the reading type the Observation holds: the reading's, or
	// the Split type of a field that became its own Observation.
	Type string
	// ReadingID is the device's reading id ("" when none), for the ack.
	ReadingID string
	// DeviceID and PatientID are the Device and Patient referenced.
	DeviceID  string
	PatientID string
	// Effective is the measurement time.
	Effective time.Time
}

// Key returns the idempotency key of the reading from device deviceID:
// deviceID/readingID, or when the reading has no id,
// deviceID/<primary LOINC code>/<measurement time in UTC, RFC 3339>. A
// device re-sending a reading (after a lost ack) gets the same key; two
// devices never share one. An Observation split off a field (the pulse of
// a blood pressure) has the key Key + "/" + field name.
//
// A SenML reading with a relative time (RFC 8428 §4.5.3) is placed
// relative to when it was received, so a re-sent one gets another time and
// key; devices that buffer should send absolute times.
func (r Reading) Key(deviceID string) string {
	t, ok := r.row()
	if !ok {
		return r.key(deviceID, r.Type)
	}
	return r.key(deviceID, r.primaryCode(t))
}

func (r Reading) key(deviceID, code string) string {
	if r.ID != "" {
		return deviceID + "/" + r.ID
	}
	return deviceID + "/" + code + "/" + r.At.UTC().Format(time.RFC3339Nano)
}

// primaryCode is the first LOINC code of the reading's Observation.
func (r Reading) primaryCode(t *ReadingType) string {
	if codes := t.LOINCFor(r.mainUnit(t)); len(codes) > 0 {
		return codes[0].Code
	}
	return t.Name
}

// mainUnit is the UCUM unit of the reading's "value", "" for a panel.
func (r Reading) mainUnit(t *ReadingType) string {
	f, ok := t.Field(ValueField)
	if !ok {
		return ""
	}
	if u, ok := f.Unit(r.Values[ValueField].Unit); ok {
		return u.UCUM
	}
	return ""
}

// Observations maps a valid reading from device deviceID, bound to
// patient patientID, to Observations: one, plus one per field that splits
// off (a blood pressure with a pulse gives the panel and a heart rate).
//
// Each is a vital-signs Observation with status final, the LOINC code(s)
// and the MDC code beside them, subject Patient/patientID, device
// Device/deviceID, effectiveDateTime the measurement time with the
// device's offset, a UCUM valueQuantity (or components), and the
// idempotency key as identifier. An invalid reading gives a *RejectError
// (see Validate); ids that are not FHIR ids give a plain error.
func (r Reading) Observations(deviceID, patientID string) ([]Observation, error) {
	return r.JudgedObservations(deviceID, patientID, time.Time{}, nil)
}

// JudgedObservations is Observations with each Observation judged by j
// (nil: none) before it is written, for a reading received at received:
// what j says becomes Observation.interpretation (and
// component.interpretation), and a late reading carries the meta tag
// SystemReadingFlag|late (see Judge).
func (r Reading) JudgedObservations(deviceID, patientID string, received time.Time, j Judge) ([]Observation, error) {
	if !fhir.ValidID(deviceID) || !fhir.ValidID(patientID) {
		return nil, fmt.Errorf("map reading: device %q and patient %q must be FHIR ids", deviceID, patientID)
	}
	t, _ := r.row()
	if err := r.validate(t); err != nil {
		return nil, err
	}
	w := obsWriter{deviceID: deviceID, patientID: patientID, at: r.At, received: received, judge: j}
	mainCodes := t.LOINCFor(r.mainUnit(t))
	main := Observation{
		Key: r.key(deviceID, mainCodes[0].Code), Code: mainCodes[0].Code, Type: t.Name,
		ReadingID: r.ID, DeviceID: deviceID, PatientID: patientID, Effective: r.At,
	}
	mdc := t.MDC[0]
	for _, c := range t.MDC {
		if c.Code == r.MDC {
			mdc = c
		}
	}
	w.shared = newModelShared(&w)
	f, single := t.Field(ValueField)
	v := w.judgeMain(main.Code, t, r.Values, single)
	b := w.begin(main.Key, mainCodes, mdc, t.Text, v)
	m := w.shared.model(main.Key, mainCodes, mdc, t.Text)
	w.metaModel(m, v)
	var split []*Field
	if single {
		u, _ := f.Unit(r.Values[ValueField].Unit)
		b = w.quantity(append(b, `,"valueQuantity":`...), r.Values[ValueField].Value, u)
		w.shared.valueModel(m, r.Values[ValueField].Value, u)
		b = w.interpretation(b, m, v)
		b = w.device(b)
	} else {
		b = w.interpretation(b, m, v)
		b = w.device(b)
		b, split = w.components(b, m, t, r.Values, v)
	}
	b = append(b, '}')
	main.JSON, main.Model = b, &m.obs
	out := make([]Observation, 1, 1+len(split))
	out[0] = main
	for _, f := range split {
		out = append(out, w.split(main, f, r.Values[f.Name], t.Text))
	}
	return out, nil
}

// components writes the component array of a panel, in JSON and in m, and
// returns the fields that split off instead.
func (w *obsWriter) components(b []byte, m *modelArena, t *ReadingType, values map[string]Quantity, v *Verdict) ([]byte, []*Field) {
	var split []*Field
	m.obs.Component = make([]fm.ObservationComponent, 0, len(values))
	b = append(b, `,"component":[`...)
	n := 0
	for i := range t.Fields {
		f := &t.Fields[i]
		q, ok := values[f.Name]
		switch {
		case !ok:
			continue
		case f.Split != "":
			split = append(split, f)
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = w.codeable(append(b, `{"code":`...), f.LOINC, f.MDC[0], "")
		u, _ := f.Unit(q.Unit)
		b = w.quantity(append(b, `,"valueQuantity":`...), q.Value, u)
		w.shared.componentModel(m, f, q)
		if v != nil && n <= len(v.Components) {
			c := &m.obs.Component[len(m.obs.Component)-1]
			b = appendInterpretation(b, v.Components[n-1].Flag, &c.Interpretation)
		}
		b = append(b, '}')
	}
	return append(b, ']'), split
}

// split maps field f of the reading behind main to its own Observation,
// derived from main (found by its identifier: the store assigns ids).
func (w *obsWriter) split(main Observation, f *Field, q Quantity, mainText string) Observation {
	u, _ := f.Unit(q.Unit)
	o := main
	o.Key, o.Code, o.Type = main.Key+"/"+f.Name, f.LOINC[0].Code, f.Split
	v := w.judgeValue(o.Code, q.Value)
	b := w.begin(o.Key, f.LOINC, f.MDC[0], f.LOINC[0].Display, v)
	m := w.shared.model(o.Key, f.LOINC, f.MDC[0], f.LOINC[0].Display)
	w.metaModel(m, v)
	b = w.quantity(append(b, `,"valueQuantity":`...), q.Value, u)
	w.shared.valueModel(m, q.Value, u)
	b = w.interpretation(b, m, v)
	b = w.device(b)
	b = append(b, `,"derivedFrom":[{"type":"Observation","identifier":{"system":"`+SystemReading+`","value":`...)
	b = appendString(b, main.Key)
	b = append(b, `},"display":`...)
	b = appendString(b, mainText)
	b = append(b, "}]}"...)
	w.shared.derivedModel(m, main.Key, mainText)
	o.JSON, o.Model = b, &m.obs
	return o
}

// obsWriter appends the parts of an Observation's JSON. Element order is
// R4's.
type obsWriter struct {
	deviceID, patientID string
	at, received        time.Time
	shared              *modelShared // the strings the models point to
	judge               Judge        // nil: no interpretation
}

// begin writes everything up to and including effectiveDateTime, with the
// late tag when v says so.
func (w *obsWriter) begin(key string, loinc []Coding, mdc Coding, text string, v *Verdict) []byte {
	b := make([]byte, 0, 1024)
	b = append(b, `{"resourceType":"Observation",`...)
	if v != nil && v.Late {
		b = append(b, `"meta":{"tag":[{"system":"`+SystemReadingFlag+`","code":"`+flagLate+`","display":"`+flagLateDisplay+`"}]},`...)
	}
	b = append(b, `"identifier":[{"system":"`+SystemReading+`","value":`...)
	b = appendString(b, key)
	b = append(b, `}],"status":"final","category":[{"coding":[{"system":"`+SystemObservationCategory+
		`","code":"vital-signs","display":"Vital Signs"}],"text":"Vital Signs"}],"code":`...)
	b = w.codeable(b, loinc, mdc, text)
	b = append(b, `,"subject":{"reference":"Patient/`...)
	b = append(b, w.patientID...) // a FHIR id: nothing to escape
	b = append(b, `"},"effectiveDateTime":"`...)
	b = w.at.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// codeable writes a CodeableConcept of the LOINC codings and the MDC one.
func (w *obsWriter) codeable(b []byte, loinc []Coding, mdc Coding, text string) []byte {
	b = append(b, `{"coding":[`...)
	for _, c := range loinc {
		b = appendCoding(b, c)
		b = append(b, ',')
	}
	b = appendCoding(b, mdc)
	b = append(b, ']')
	if text != "" {
		b = append(b, `,"text":`...)
		b = appendString(b, text)
	}
	return append(b, '}')
}

func (w *obsWriter) quantity(b []byte, v float64, u *Unit) []byte {
	b = append(b, `{"value":`...)
	b = strconv.AppendFloat(b, v, 'f', -1, 64)
	b = append(b, `,"unit":`...)
	b = appendString(b, u.Display)
	b = append(b, `,"system":"`+SystemUCUM+`","code":`...)
	b = appendString(b, u.UCUM)
	return append(b, '}')
}

func (w *obsWriter) device(b []byte) []byte {
	b = append(b, `,"device":{"reference":"Device/`...)
	b = append(b, w.deviceID...) // a FHIR id: nothing to escape
	return append(b, `"}`...)
}

func appendCoding(b []byte, c Coding) []byte {
	b = append(b, `{"system":`...)
	b = appendString(b, c.System)
	b = append(b, `,"code":`...)
	b = appendString(b, c.Code)
	b = append(b, `,"display":`...)
	b = appendString(b, c.Display)
	return append(b, '}')
}

// appendString appends s as a JSON string. Control characters are escaped;
// other bytes are copied (s is valid UTF-8: table text or a reading id of
// visible ASCII).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	clean := true
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		b = append(b, s...)
		return append(b, '"')
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
