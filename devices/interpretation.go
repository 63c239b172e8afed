package devices

import (
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// SystemInterpretation is HL7 v3 ObservationInterpretation, the code
// system of Observation.interpretation (N, H, L, HH, LL, A).
const SystemInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

// SystemReadingFlag tags Observations with facts about how the reading
// arrived: code "late" in meta.tag marks a reading that arrived long after
// it was measured (a gateway's backlog) and was judged by the limits in
// force when it was measured.
const SystemReadingFlag = "urn:vidda:reading-flag"

const (
	flagLate        = "late"
	flagLateDisplay = "Arrived late; judged by its measurement time"
)

// Judge interprets readings as they are mapped to Observations, before
// their JSON is written (so what is stored carries the interpretation).
// devices declares it; the clinical-review engine (internal/care)
// implements it and cmd connects the two. Judge runs on the ingestion
// path: it must answer from memory or a quick lookup, never wait long.
type Judge interface {
	// Judge fills v.Flag, v.Late and the components' Flag.
	Judge(v *Verdict)
}

// Verdict is one Observation to judge: what it holds, filled by
// JudgedObservations, and the judgement, filled by the Judge.
type Verdict struct {
	// PatientID is the Patient the reading is about.
	PatientID string
	// Code is the Observation's primary LOINC code.
	Code string
	// At is when it was measured; Received when vidda received it.
	At, Received time.Time
	// Value is the valueQuantity's value (in the unit of Code) when the
	// Observation has one; Components is empty then.
	Value float64
	// Components are a panel's components, in the order written.
	Components []ComponentVerdict

	// Flag is the v3 ObservationInterpretation code of the Observation
	// (for a panel, the worst of its components'): "N", "H", "L", "HH",
	// "LL", "A"; "" writes no interpretation.
	Flag string
	// Late marks a reading judged long after it was measured.
	Late bool
}

// ComponentVerdict is one component of a panel.
type ComponentVerdict struct {
	Code  string
	Value float64
	// Flag is the component's interpretation, set by the Judge.
	Flag string
}

// judgeMain judges the reading's main Observation; nil without a Judge.
func (w *obsWriter) judgeMain(code string, t *ReadingType, values map[string]Quantity, single bool) *Verdict {
	if w.judge == nil {
		return nil
	}
	if single {
		return w.judgeValue(code, values[ValueField].Value)
	}
	v := &Verdict{PatientID: w.patientID, Code: code, At: w.at, Received: w.received}
	v.Components = make([]ComponentVerdict, 0, len(values))
	for i := range t.Fields {
		f := &t.Fields[i]
		if q, ok := values[f.Name]; ok && f.Split == "" {
			v.Components = append(v.Components, ComponentVerdict{Code: f.LOINC[0].Code, Value: q.Value})
		}
	}
	w.judge.Judge(v)
	return v
}

// judgeValue judges an Observation with a valueQuantity; nil without a
// Judge.
func (w *obsWriter) judgeValue(code string, value float64) *Verdict {
	if w.judge == nil {
		return nil
	}
	v := &Verdict{PatientID: w.patientID, Code: code, At: w.at, Received: w.received, Value: value}
	w.judge.Judge(v)
	return v
}

// interpretation writes Observation.interpretation, in JSON and in m.
func (w *obsWriter) interpretation(b []byte, m *modelArena, v *Verdict) []byte {
	if v == nil {
		return b
	}
	return appendInterpretation(b, v.Flag, &m.obs.Interpretation)
}

// metaModel sets the model's meta.tag when v marks the reading late.
func (w *obsWriter) metaModel(m *modelArena, v *Verdict) {
	if v == nil || !v.Late {
		return
	}
	tag := &struct {
		meta                  fm.Meta
		coding                [1]fm.Coding
		system, code, display string
	}{system: SystemReadingFlag, code: flagLate, display: flagLateDisplay}
	tag.coding[0] = fm.Coding{System: &tag.system, Code: &tag.code, Display: &tag.display}
	tag.meta.Tag = tag.coding[:]
	m.obs.Meta = &tag.meta
}

// appendInterpretation writes `,"interpretation":[...]` of flag ("" writes
// nothing) and sets *model to the same.
func appendInterpretation(b []byte, flag string, model *[]fm.CodeableConcept) []byte {
	if flag == "" {
		return b
	}
	display := interpretationDisplay(flag)
	b = append(b, `,"interpretation":[{"coding":[{"system":"`+SystemInterpretation+`","code":`...)
	b = appendString(b, flag)
	if display != "" {
		b = append(b, `,"display":`...)
		b = appendString(b, display)
	}
	b = append(b, "}]}]"...)
	in := &struct {
		concept               [1]fm.CodeableConcept
		coding                [1]fm.Coding
		system, code, display string
	}{system: SystemInterpretation, code: flag, display: display}
	in.coding[0] = fm.Coding{System: &in.system, Code: &in.code}
	if display != "" {
		in.coding[0].Display = &in.display
	}
	in.concept[0].Coding = in.coding[:]
	*model = in.concept[:]
	return b
}

// interpretationDisplay is the v3 display of the codes a Judge gives.
func interpretationDisplay(code string) string {
	switch code {
	case "N":
		return "Normal"
	case "H":
		return "High"
	case "L":
		return "Low"
	case "HH":
		return "Critical high"
	case "LL":
		return "Critical low"
	case "A":
		return "Abnormal"
	}
	return ""
}
