package devices

import "time"

// Reading is one measurement decoded from a device payload, whatever the
// format: the one type every decoder returns and Observations maps.
type Reading struct {
	// Type is the compact type name, a ReadingType.Name of Table.
	Type string
	// ID is the device's id of the reading, "" when it sent none. It makes
	// the idempotency key (see Key).
	ID string
	// At is when it was measured, with the offset the device gave (UTC
	// when it gave none).
	At time.Time
	// Values holds the field values by Field.Name: {"value": ...} or
	// {"systolic": ..., "diastolic": ..., "pulse": ...}. Units are UCUM
	// codes.
	Values map[string]Quantity
	// Index is the position in the payload of the item the reading came
	// from: array element, first SenML record, Bundle entry.
	Index int
	// MDC is the MDC code the device gave the reading (FHIR payloads),
	// kept in the Observation beside LOINC; "" writes the table's first.
	MDC string
	// Subject and Device are Observation.subject and Observation.device as
	// a FHIR payload sent them, for FHIRPayload.CheckPatient; zero for
	// the other formats. The Observation Vidda writes always names the
	// bound Patient and the publishing Device instead.
	Subject Ref
	Device  Ref

	// spec is the table row the decoder found, so that mapping does not
	// build it again; nil in a Reading made by hand.
	spec *ReadingType
}

// row returns the reading's table row: the decoder's, or a fresh lookup
// when there is none or Type was changed since.
func (r *Reading) row() (*ReadingType, bool) {
	if r.spec != nil && r.spec.Name == r.Type {
		return r.spec, true
	}
	return lookup(r.Type)
}

// Quantity is a value with its UCUM unit.
type Quantity struct {
	Value float64
	Unit  string
}

// Ref is a FHIR Reference as sent: a literal reference ("Patient/p1",
// "urn:uuid:…", "Patient?identifier=s|v") and/or a logical one.
type Ref struct {
	Reference  string
	Identifier Identifier
}

// IsZero reports whether the reference is absent.
func (r Ref) IsZero() bool { return r.Reference == "" && r.Identifier == Identifier{} }

// Identifier is a FHIR Identifier's system and value.
type Identifier struct {
	System string
	Value  string
}

// maxReadingID bounds a reading id, so that a key stays a short index
// entry.
const maxReadingID = 128

// validReadingID reports whether s can be a reading id: 1 to 128 visible
// ASCII characters without "/", which separates the parts of a key (so
// that no id can make another reading's key).
func validReadingID(s string) bool {
	if s == "" || len(s) > maxReadingID {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}
