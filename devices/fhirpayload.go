package devices

import (
	"encoding/json"
	"errors"
	"net/http"

	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/vidda/vidda/fhir"
)

// FHIRPayload is what a .../fhir payload holds: the readings of its
// Observations and the Devices and Patients a PHD-style Bundle names.
// Nothing here creates Patients or Devices: the caller matches them to the
// registered Device and its bound Patient (see CheckPatient).
type FHIRPayload struct {
	// Readings are the Observations that map onto the code table.
	Readings []Reading
	// Devices and Patients are the Bundle's Device and Patient entries.
	Devices  []Entity
	Patients []Entity
	// Skipped lists the Bundle entries that are Observations about the
	// device rather than the patient, coded only in MDC partition 1
	// (object infrastructure, MDC_ATTR_*): the coincident time stamp
	// (MDC_ATTR_TIME_ABS, 67975) a PHD gateway sends with every upload,
	// battery level and the like. They are not readings and not errors.
	Skipped []int
	// Transaction is true for a transaction Bundle: FHIR makes it all or
	// nothing, so the caller should store all its readings or none.
	Transaction bool
}

// Entity is a Device or Patient entry of a Bundle, as a PHD gateway sends
// them: usually a conditional create by identifier.
type Entity struct {
	// Index is the Bundle entry.
	Index int
	// FullURL is entry.fullUrl ("urn:uuid:…"), what Observations in the
	// Bundle reference.
	FullURL string
	// ID is the resource's id, "" when none.
	ID string
	// Identifiers are the resource's identifiers with a value.
	Identifiers []Identifier
	// Method, URL and IfNoneExist are entry.request's.
	Method      string
	URL         string
	IfNoneExist string
	// SerialNumber is Device.serialNumber ("" for a Patient).
	SerialNumber string
}

// bundle is the part of a Bundle DecodeFHIR reads; the rest is ignored.
type bundle struct {
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

// DecodeFHIR decodes the payload of vidda/v1/devices/{id}/fhir: one
// Observation, or a transaction or batch Bundle of Observations, Devices
// and Patients as an HL7 Personal Health Device (PHD) gateway uploads them.
// reg validates each resource (fhir.Registry.Parse).
//
// An Observation becomes a Reading when its code.coding holds a LOINC or
// MDC code of the table (MDC as PHD devices send it, e.g. 150020 for a
// blood pressure with components 150021/150022); the MDC code is kept.
// Its value is a UCUM valueQuantity, or components for blood pressure; its
// time effectiveDateTime, effectiveInstant or effectivePeriod.start with
// time of day and offset; its id the first identifier's value (or the
// resource id) when that is a valid reading id. Status must be final,
// amended or corrected.
//
// A payload that is not JSON, not an Observation or Bundle, or a Bundle of
// another type gives a *RejectError and no payload. Otherwise every entry
// is decoded on its own: refused entries come back as RejectErrors
// (Index = entry) beside the payload of the others, except in a
// transaction, which FHIR makes all or nothing: one refused entry refuses
// it all (nil payload). A nil reg is an error, not a rejection.
func DecodeFHIR(payload []byte, reg *fhir.Registry) (*FHIRPayload, error) {
	return decodeFHIR(payload, reg, Table())
}

func decodeFHIR(payload []byte, reg *fhir.Registry, table []ReadingType) (*FHIRPayload, error) {
	if reg == nil {
		return nil, errors.New("decode fhir payload: nil registry")
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return nil, &RejectError{
			Reason: ReasonMalformed, Index: WholePayload,
			Message: "payload is not a FHIR resource: " + jsonProblem(err), Err: err,
		}
	}
	out := &FHIRPayload{}
	switch head.ResourceType {
	case "Observation":
		r, skip, rej := observationReading(reg, table, payload, 0)
		switch {
		case rej != nil:
			return out, RejectErrors{rej}
		case skip:
			out.Skipped = append(out.Skipped, 0)
		default:
			out.Readings = append(out.Readings, r)
		}
		return out, nil
	case "Bundle":
		return decodeBundle(reg, table, payload)
	case "":
		return nil, reject(ReasonMalformed, WholePayload, "", "payload has no resourceType")
	}
	return nil, reject(ReasonUnsupported, WholePayload, "", "a device sends an Observation or a Bundle, not a %s", clip(head.ResourceType))
}

// decodeBundle decodes a transaction or batch Bundle.
func decodeBundle(reg *fhir.Registry, table []ReadingType, payload []byte) (*FHIRPayload, error) {
	var b bundle
	if err := json.Unmarshal(payload, &b); err != nil {
		return nil, &RejectError{
			Reason: ReasonMalformed, Index: WholePayload,
			Message: "Bundle: " + jsonProblem(err), Err: err,
		}
	}
	if b.Type != "transaction" && b.Type != "batch" {
		return nil, reject(ReasonUnsupported, WholePayload, "", "Bundle type must be transaction or batch")
	}
	out := &FHIRPayload{Transaction: b.Type == "transaction"}
	var rejected RejectErrors
	for i, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		switch {
		case len(e.Resource) == 0:
			rejected = append(rejected, reject(ReasonMalformed, i, "", "entry has no resource"))
			continue
		case e.Request == nil:
			rejected = append(rejected, reject(ReasonMalformed, i, "", "entry has no request"))
			continue
		case e.Request.Method != http.MethodPost && e.Request.Method != http.MethodPut:
			rejected = append(rejected, reject(ReasonUnsupported, i, "", "entry request method must be POST or PUT"))
			continue
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil {
			rejected = append(rejected, &RejectError{Reason: ReasonMalformed, Index: i, Message: "entry resource: " + jsonProblem(err), Err: err})
			continue
		}
		switch head.ResourceType {
		case "Observation":
			r, skip, rej := observationReading(reg, table, e.Resource, i)
			switch {
			case rej != nil:
				rejected = append(rejected, rej)
			case skip:
				out.Skipped = append(out.Skipped, i)
			default:
				out.Readings = append(out.Readings, r)
			}
		case "Device", "Patient":
			ent, rej := entity(reg, head.ResourceType, e.Resource, i)
			if rej != nil {
				rejected = append(rejected, rej)
				continue
			}
			ent.FullURL = e.FullURL
			ent.Method, ent.URL, ent.IfNoneExist = e.Request.Method, e.Request.URL, e.Request.IfNoneExist
			if head.ResourceType == "Device" {
				out.Devices = append(out.Devices, ent)
			} else {
				out.Patients = append(out.Patients, ent)
			}
		default:
			rejected = append(rejected, reject(ReasonUnsupported, i, "",
				"a device Bundle holds Observations, Devices and Patients, not a %s", clip(head.ResourceType)))
		}
	}
	if out.Transaction && len(rejected) > 0 {
		return nil, rejected
	}
	if len(rejected) > 0 {
		return out, rejected
	}
	return out, nil
}

// entity validates a Device or Patient entry and reads its identifiers.
func entity(reg *fhir.Registry, typ string, raw []byte, index int) (Entity, *RejectError) {
	res, err := reg.Parse(typ, raw)
	if err != nil {
		return Entity{}, &RejectError{Reason: ReasonMalformed, Index: index, Message: typ + ": " + err.Error(), Err: err}
	}
	ent := Entity{Index: index, ID: res.ID}
	var ids []fhirmodels.Identifier
	switch m := res.Model.(type) {
	case *fhirmodels.Device:
		ids = m.Identifier
		if m.SerialNumber != nil {
			ent.SerialNumber = *m.SerialNumber
		}
	case *fhirmodels.Patient:
		ids = m.Identifier
	}
	for _, id := range ids {
		if v := identifier(&id); v.Value != "" {
			ent.Identifiers = append(ent.Identifiers, v)
		}
	}
	return ent, nil
}

// identifier copies a model Identifier's system and value.
func identifier(id *fhirmodels.Identifier) Identifier {
	var out Identifier
	if id == nil {
		return out
	}
	if id.System != nil {
		out.System = *id.System
	}
	if id.Value != nil {
		out.Value = *id.Value
	}
	return out
}
