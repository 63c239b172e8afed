package web

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/vidda/vidda/internal/care"
)

// What the pages read of stored resources: just the elements they show,
// decoded from the stored JSON with encoding/json. Writes go through the
// FHIR registry's parser (validated like any client's).

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type codeable struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

// code is the first coding's code, or "".
func (c codeable) code() string {
	if len(c.Coding) == 0 {
		return ""
	}
	return c.Coding[0].Code
}

type reference struct {
	Reference string `json:"reference"`
}

// id returns the id of a reference "Type/id" to typ, or "".
func (r *reference) id(typ string) string {
	if r == nil {
		return ""
	}
	id, ok := strings.CutPrefix(r.Reference, typ+"/")
	if !ok || strings.Contains(id, "/") {
		return ""
	}
	return id
}

type quantity struct {
	Value *float64 `json:"value"`
}

// reading is one Observation as the pages show it.
type reading struct {
	ID   string
	Code string
	At   time.Time
	// V are the values: one, or one per part of the measure (systolic,
	// diastolic); NaN where the Observation has none.
	V []float64
	// Interp is the Observation's interpretation code (N, H, L, HH, LL, A),
	// "" when it has none.
	Interp string
}

type observationJSON struct {
	ID                string                  `json:"id"`
	Code              codeable                `json:"code"`
	EffectiveDateTime string                  `json:"effectiveDateTime"`
	EffectiveInstant  string                  `json:"effectiveInstant"`
	EffectivePeriod   *struct{ Start string } `json:"effectivePeriod"`
	ValueQuantity     *quantity               `json:"valueQuantity"`
	Interpretation    []codeable              `json:"interpretation"`
	Component         []struct {
		Code          codeable  `json:"code"`
		ValueQuantity *quantity `json:"valueQuantity"`
	} `json:"component"`
}

// decodeReading reads an Observation of a known measure; ok is false for
// one the pages cannot show (unknown code, no time).
func (p *Pages) decodeReading(content []byte) (reading, *measure, bool) {
	var o observationJSON
	if err := json.Unmarshal(content, &o); err != nil {
		return reading{}, nil, false
	}
	r := reading{ID: o.ID, Code: o.Code.code()}
	m := p.measures.of(r.Code)
	if m == nil {
		return reading{}, nil, false
	}
	eff := o.EffectiveDateTime
	if eff == "" {
		eff = o.EffectiveInstant
	}
	if eff == "" && o.EffectivePeriod != nil {
		eff = o.EffectivePeriod.Start
	}
	at, err := p.fhirTime(eff)
	if err != nil {
		return reading{}, nil, false
	}
	r.At = at
	if len(o.Interpretation) > 0 {
		r.Interp = o.Interpretation[0].code()
	}
	if len(m.Parts) == 0 {
		if o.ValueQuantity == nil || o.ValueQuantity.Value == nil {
			return reading{}, nil, false
		}
		r.V = []float64{*o.ValueQuantity.Value}
		return r, m, true
	}
	r.V = make([]float64, len(m.Parts))
	found := false
	for i, pt := range m.Parts {
		r.V[i] = nan()
		for _, c := range o.Component {
			if c.Code.code() == pt.Code && c.ValueQuantity != nil && c.ValueQuantity.Value != nil {
				r.V[i] = *c.ValueQuantity.Value
				found = true
			}
		}
	}
	return r, m, found
}

// fhirTime reads a FHIR date, dateTime or instant as the time it starts
// at: a dateTime's own time, a date alone its midnight, UTC. It is
// fhir/search's parser, the one the store indexes dates with.
func (p *Pages) fhirTime(s string) (time.Time, error) {
	r, err := p.dates.Parse(s) // on error, r is zero and err names s
	return r.Start, err
}

// patientJSON is what the pages show of a Patient.
type patientJSON struct {
	ID   string `json:"id"`
	Name []struct {
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	BirthDate string `json:"birthDate"`
}

// displayName is "Given Family", the name's text, or the id.
func (p *patientJSON) displayName() string {
	for _, n := range p.Name {
		if n.Text != "" {
			return n.Text
		}
		if s := strings.TrimSpace(strings.Join(append(append([]string(nil), n.Given...), n.Family), " ")); s != "" {
			return s
		}
	}
	return p.ID
}

// taskJSON is what the pages read of a Task.
type taskJSON struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Priority     string     `json:"priority"`
	Code         codeable   `json:"code"`
	Description  string     `json:"description"`
	For          *reference `json:"for"`
	AuthoredOn   string     `json:"authoredOn"`
	LastModified string     `json:"lastModified"`
	Owner        *reference `json:"owner"`
	Note         []struct {
		Text string `json:"text"`
		Time string `json:"time"`
	} `json:"note"`
	Reason *codeable `json:"reasonCode"`
	// TaskReadingRefs are its focus and further readings, read in the
	// same pass as the rest.
	care.TaskReadingRefs

	// readings are the ids of the Observations the Task is about, oldest
	// first (see decodeTask).
	readings []string
}

// decodeTask reads a stored Task, with the Observations it is about as
// internal/care records them (care.TaskReadingRefs: the focus, then
// further readings), in one pass over its JSON.
func decodeTask(content []byte) (taskJSON, bool) {
	var t taskJSON
	if json.Unmarshal(content, &t) != nil {
		return taskJSON{}, false
	}
	for _, ref := range t.Readings() {
		if id := (&reference{Reference: ref}).id("Observation"); id != "" {
			t.readings = append(t.readings, id)
		}
	}
	return t, true
}

// openTaskStatuses is the search of open Tasks: internal/care's
// statuses of work still to do.
func openTaskStatuses() string { return strings.Join(care.OpenTaskStatuses(), ",") }

// priorityRank orders Task priorities most urgent first (R4
// request-priority, as care.Priority orders them); none comes last.
func priorityRank(p string) int {
	pr, _ := care.ParsePriority(p)
	return -int(pr)
}

// measureCode is the LOINC code a Task is about, when it says so itself
// (a missed-measurement Task names the measure in reasonCode or in the
// code's second coding); "" otherwise.
func (t *taskJSON) measureCode() string {
	if t.Reason != nil {
		for _, c := range t.Reason.Coding {
			if c.System == loincSystem {
				return c.Code
			}
		}
	}
	for _, c := range t.Code.Coding {
		if c.System == loincSystem {
			return c.Code
		}
	}
	return ""
}

// appointmentJSON is what the pages read of an Appointment.
type appointmentJSON struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Start       string `json:"start"`
	End         string `json:"end"`
	Description string `json:"description"`
}
