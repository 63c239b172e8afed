package devices

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reason is the machine-readable cause of a rejection, sent to the device's
// errors topic and kept with the dead letter.
type Reason string

// Rejection reasons. New reasons may be added; existing ones are never
// renamed, since devices and operators match on them.
const (
	// ReasonMalformed: not the format the topic promises (bad JSON, a
	// field of the wrong JSON type, an unknown field, a bad id or name).
	ReasonMalformed Reason = "malformed"
	// ReasonUnknownType: the reading type (compact "type", SenML name,
	// FHIR code) is not in the code table.
	ReasonUnknownType Reason = "unknown-type"
	// ReasonWrongUnit: the unit is missing or not one the type accepts.
	ReasonWrongUnit Reason = "wrong-unit"
	// ReasonMissingValue: a value the type requires is absent (blood
	// pressure without diastolic, an Observation without valueQuantity).
	ReasonMissingValue Reason = "missing-value"
	// ReasonImpossibleValue: a value outside the type's plausible range,
	// or values that contradict each other (systolic not above diastolic).
	ReasonImpossibleValue Reason = "impossible-value"
	// ReasonMissingTime: no measurement time, or one without time of day
	// and offset.
	ReasonMissingTime Reason = "missing-time"
	// ReasonFutureTime: measured further in the future than Limits allow.
	ReasonFutureTime Reason = "future-time"
	// ReasonTooOld: measured longer ago than Limits allow.
	ReasonTooOld Reason = "too-old"
	// ReasonPatientMismatch: a FHIR payload names a Patient other than the
	// one the device is bound to.
	ReasonPatientMismatch Reason = "patient-mismatch"
	// ReasonUnsupported: well-formed but not something Vidda takes from a
	// device (a Bundle type other than transaction/batch, an Observation
	// status other than final/amended/corrected, a comparator, a resource
	// type other than Observation, Patient and Device).
	ReasonUnsupported Reason = "unsupported"
)

// WholePayload is the RejectError.Index of a rejection that concerns the
// payload as a whole rather than one item of it.
const WholePayload = -1

// RejectError says why a payload, or one item of it, was refused.
type RejectError struct {
	// Reason is the machine-readable cause.
	Reason Reason
	// Message explains it to a human. It names fields, units and ranges
	// but never the measured values, so the error may be logged (health
	// data stays out of logs).
	Message string
	// Index is the position of the refused item in the payload: the array
	// element (compact), the first record of the reading (SenML) or the
	// Bundle entry (FHIR); WholePayload when the payload as a whole was
	// refused.
	Index int
	// ID is the device's reading id of the refused item, "" when unknown.
	ID string
	// Err is the underlying error, if any (e.g. a *fhir.ValidationError).
	Err error
}

// Error reads like "item 2 (id r-7): impossible-value: spo2 value is
// outside 0–100 %".
func (e *RejectError) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		b.WriteString("item ")
		b.WriteString(strconv.Itoa(e.Index))
		if e.ID != "" {
			b.WriteString(" (id ")
			b.WriteString(e.ID)
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(string(e.Reason))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *RejectError) Unwrap() error { return e.Err }

// RejectErrors lists the items of a payload that were refused while others
// were accepted; decoders return it together with the accepted readings.
// errors.As finds each *RejectError in it.
type RejectErrors []*RejectError

// Error summarises the first rejection and how many follow it.
func (e RejectErrors) Error() string {
	switch len(e) {
	case 0:
		return "no rejections"
	case 1:
		return e[0].Error()
	}
	return fmt.Sprintf("%s (and %d more)", e[0].Error(), len(e)-1)
}

// Unwrap returns the rejections.
func (e RejectErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, r := range e {
		out[i] = r
	}
	return out
}

// Rejections returns every rejection err carries: the list of a
// RejectErrors, the one *RejectError, or nil when err is neither (nil, or
// an error that is not about the payload).
func Rejections(err error) []*RejectError {
	if err == nil {
		return nil // errors.As would cost an allocation
	}
	var many RejectErrors
	if errors.As(err, &many) {
		return many
	}
	var one *RejectError
	if errors.As(err, &one) {
		return []*RejectError{one}
	}
	return nil
}

// reject builds a RejectError with a formatted message.
func reject(reason Reason, index int, id, format string, args ...any) *RejectError {
	return &RejectError{Reason: reason, Index: index, ID: id, Message: fmt.Sprintf(format, args...)}
}

// asReject returns err as a *RejectError at index, converting other errors
// to a malformed rejection.
func asReject(err error, index int, id string) *RejectError {
	var re *RejectError
	if errors.As(err, &re) {
		out := *re
		out.Index, out.ID = index, id
		return &out
	}
	return &RejectError{Reason: ReasonMalformed, Index: index, ID: id, Message: err.Error(), Err: err}
}

// result returns the accepted readings with the rejections as an error, or
// nil when nothing was refused.
func result(readings []Reading, rejected RejectErrors) ([]Reading, error) {
	if len(rejected) > 0 {
		return readings, rejected
	}
	return readings, nil
}
