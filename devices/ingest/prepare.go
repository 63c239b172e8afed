package ingest

import (
	"fmt"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/fhir"
)

// Reasons for refusing a whole message that belong to the pipeline, not to
// a payload format.
const (
	ReasonUnknownDevice  devices.Reason = "unknown-device"
	ReasonUnboundDevice  devices.Reason = "unbound-device"
	ReasonInactiveDevice devices.Reason = "inactive-device"
)

// prepare decodes and maps m, sent by the device b (lookupErr is
// errUnknownDevice when none is registered), and has the sink prepare its
// rows; whatever it refuses becomes a dead letter.
func (p *Pipeline) prepare(m Message, b Binding, lookupErr error) *job {
	j := &job{msg: m}
	readings, patientID, err := p.decode(m, b, lookupErr)
	rejected := devices.Rejections(err)
	if err != nil && rejected == nil {
		// Not about the payload: keep it so nothing is lost, and say so.
		rejected = []*devices.RejectError{{Reason: devices.ReasonMalformed, Index: devices.WholePayload, Message: "could not be processed: " + err.Error()}}
	}
	for _, r := range readings {
		obs, err := r.JudgedObservations(m.DeviceID, patientID, m.Received, p.cfg.Judge)
		if err != nil {
			rejected = append(rejected, rejection(err, r))
			continue
		}
		for _, o := range obs {
			row := Row{Key: o.Key, Resource: &fhir.Resource{Type: "Observation", Model: o.Model, Raw: o.JSON}}
			if err := p.sink.Prepare(&row); err != nil {
				rejected = append(rejected, rejection(err, r))
				continue
			}
			row.Resource = nil // the prepared row holds what the commit needs
			j.rows = append(j.rows, row)
			j.readingIDs = append(j.readingIDs, r.ID)
		}
	}
	if len(rejected) > 0 {
		j.rejected = rejected
		for _, r := range rejected {
			p.metrics.rejected.WithLabelValues(string(r.Reason)).Inc()
		}
		j.dead = &DeadLetter{
			ReceivedAt: m.Received, DeviceID: m.DeviceID, Topic: m.Topic, Payload: m.Payload,
			Reason: string(rejected[0].Reason), Detail: devices.RejectErrors(rejected).Error(),
		}
	}
	return j
}

// decode returns the message's readings that pass every check, the bound
// patient, and the rejections (a devices.RejectErrors or *RejectError).
func (p *Pipeline) decode(m Message, b Binding, lookupErr error) ([]devices.Reading, string, error) {
	switch {
	case lookupErr != nil:
		return nil, "", whole(ReasonUnknownDevice, "no device %s is registered", m.DeviceID)
	case b.PatientID == "":
		return nil, "", whole(ReasonUnboundDevice, "device %s is not bound to a patient", m.DeviceID)
	case !b.Active:
		return nil, "", whole(ReasonInactiveDevice, "device %s is not active", m.DeviceID)
	}
	var readings []devices.Reading
	var rejected devices.RejectErrors
	var err error
	switch m.Kind {
	case devices.KindReadings:
		readings, err = p.decoder.Compact(m.Payload)
	case devices.KindSenML:
		readings, err = p.decoder.SenML(m.Payload, m.Received)
	case devices.KindFHIR:
		readings, err = p.decodeFHIR(m, b)
	default:
		return nil, "", whole(devices.ReasonUnsupported, "unknown payload format %q", string(m.Kind))
	}
	rejected = append(rejected, devices.Rejections(err)...)
	if err != nil && len(devices.Rejections(err)) == 0 {
		return nil, "", fmt.Errorf("decode: %w", err)
	}
	readings, err = p.cfg.Limits.Filter(readings, m.Received)
	rejected = append(rejected, devices.Rejections(err)...)
	if len(rejected) > 0 {
		return readings, b.PatientID, rejected
	}
	return readings, b.PatientID, nil
}

func whole(reason devices.Reason, format string, args ...any) error {
	return &devices.RejectError{Reason: reason, Index: devices.WholePayload, Message: fmt.Sprintf(format, args...)}
}

func rejection(err error, r devices.Reading) *devices.RejectError {
	if rs := devices.Rejections(err); len(rs) > 0 {
		return rs[0]
	}
	return &devices.RejectError{Reason: devices.ReasonMalformed, Index: r.Index, ID: r.ID, Message: err.Error(), Err: err}
}

// decodeFHIR decodes a FHIR payload and refuses it whole when it names a
// patient other than the bound one.
func (p *Pipeline) decodeFHIR(m Message, b Binding) ([]devices.Reading, error) {
	payload, err := p.decoder.FHIR(m.Payload, p.types)
	if payload == nil {
		return nil, err
	}
	if cerr := payload.CheckPatient(b.PatientID, b.PatientIdentifiers); cerr != nil {
		return nil, cerr
	}
	if payload.Transaction {
		// FHIR makes a transaction all or nothing, the time window too.
		if _, ferr := p.cfg.Limits.Filter(payload.Readings, m.Received); ferr != nil {
			return nil, ferr
		}
	}
	return payload.Readings, err
}
