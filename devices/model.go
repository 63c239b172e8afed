package devices

import (
	"encoding/json"
	"strconv"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// This file builds Observation.Model, the golang-fhir-models struct of the
// Observation whose JSON observation.go writes, from the same inputs. The
// store reads search values from the model; building it here costs a few
// allocations where decoding the JSON again cost about a hundred.
// TestModelIsTheDecodedJSON holds the two to each other for every type,
// unit and optional field of the table.

// modelShared holds the strings every Observation of one reading points
// to, so that they are made once per reading.
type modelShared struct {
	systemReading, systemCategory, systemUCUM string
	vitalSigns, vitalSignsDisplay             string
	observationType                           string
	subject, device, effective                string
}

func newModelShared(w *obsWriter) *modelShared {
	return &modelShared{
		systemReading: SystemReading, systemCategory: SystemObservationCategory, systemUCUM: SystemUCUM,
		vitalSigns: "vital-signs", vitalSignsDisplay: "Vital Signs", observationType: "Observation",
		subject:   "Patient/" + w.patientID,
		device:    "Device/" + w.deviceID,
		effective: w.at.Format(time.RFC3339Nano),
	}
}

// modelArena is one Observation's model with the parts it points to, in
// one allocation.
type modelArena struct {
	obs      fm.Observation
	ident    [1]fm.Identifier
	category [1]fm.CodeableConcept
	catCode  [1]fm.Coding
	codes    [4]fm.Coding // Observation.code: the LOINC codings, then MDC
	subject  fm.Reference
	device   fm.Reference
	qty      fm.Quantity
	value    json.Number
	derived  [1]fm.Reference
	derivedI fm.Identifier
	key      string
	mainKey  string
	strs     [24]string // copies of table strings the model points to: a panel needs 23
	n        int
}

// str returns a pointer to a copy of s. Past the arena's slots it
// allocates: the model must never point into the code table.
func (a *modelArena) str(s string) *string {
	if a.n < len(a.strs) {
		a.strs[a.n] = s
		a.n++
		return &a.strs[a.n-1]
	}
	p := new(string) // not &s, which would move every s to the heap
	*p = s
	return p
}

// codings returns the model of the codings of a CodeableConcept, the
// LOINC ones then mdc, in dst when they fit.
func (a *modelArena) codings(dst []fm.Coding, loinc []Coding, mdc Coding) []fm.Coding {
	out := dst[:0]
	if len(loinc)+1 > cap(dst) {
		out = make([]fm.Coding, 0, len(loinc)+1)
	}
	for _, c := range loinc {
		out = append(out, a.coding(c))
	}
	return append(out, a.coding(mdc))
}

func (a *modelArena) coding(c Coding) fm.Coding {
	return fm.Coding{System: a.str(c.System), Code: a.str(c.Code), Display: a.str(c.Display)}
}

// quantity fills q with the model of a valueQuantity, v formatted as the
// JSON writes it.
func (a *modelArena) quantity(q *fm.Quantity, n *json.Number, sh *modelShared, v float64, u *Unit) {
	*n = json.Number(strconv.FormatFloat(v, 'f', -1, 64))
	q.Value, q.Unit, q.System, q.Code = n, a.str(u.Display), &sh.systemUCUM, a.str(u.UCUM)
}

// model builds everything obsWriter.begin and device write: identifier,
// status, category, code, subject, effectiveDateTime and device.
func (sh *modelShared) model(key string, loinc []Coding, mdc Coding, text string) *modelArena {
	a := &modelArena{key: key}
	o := &a.obs
	a.ident[0] = fm.Identifier{System: &sh.systemReading, Value: &a.key}
	o.Identifier = a.ident[:]
	o.Status = fm.ObservationStatusFinal
	a.catCode[0] = fm.Coding{System: &sh.systemCategory, Code: &sh.vitalSigns, Display: &sh.vitalSignsDisplay}
	a.category[0] = fm.CodeableConcept{Coding: a.catCode[:], Text: &sh.vitalSignsDisplay}
	o.Category = a.category[:]
	o.Code.Coding = a.codings(a.codes[:], loinc, mdc)
	if text != "" {
		o.Code.Text = a.str(text)
	}
	a.subject.Reference = &sh.subject
	o.Subject = &a.subject
	o.EffectiveDateTime = &sh.effective
	a.device.Reference = &sh.device
	o.Device = &a.device
	return a
}

// valueModel sets valueQuantity.
func (sh *modelShared) valueModel(a *modelArena, v float64, u *Unit) {
	a.quantity(&a.qty, &a.value, sh, v, u)
	a.obs.ValueQuantity = &a.qty
}

// componentModel appends the model of one component of a panel.
func (sh *modelShared) componentModel(a *modelArena, f *Field, q Quantity) {
	u, _ := f.Unit(q.Unit)
	type part struct {
		quantity fm.Quantity
		value    json.Number
		coding   [3]fm.Coding
	}
	p := &part{}
	a.quantity(&p.quantity, &p.value, sh, q.Value, u)
	a.obs.Component = append(a.obs.Component, fm.ObservationComponent{
		Code:          fm.CodeableConcept{Coding: a.codings(p.coding[:], f.LOINC, f.MDC[0])},
		ValueQuantity: &p.quantity,
	})
}

// derivedModel sets derivedFrom to the panel keyed mainKey.
func (sh *modelShared) derivedModel(a *modelArena, mainKey, mainText string) {
	a.mainKey = mainKey
	a.derivedI = fm.Identifier{System: &sh.systemReading, Value: &a.mainKey}
	a.derived[0] = fm.Reference{Type: &sh.observationType, Identifier: &a.derivedI, Display: a.str(mainText)}
	a.obs.DerivedFrom = a.derived[:]
}
