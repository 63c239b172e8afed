package devices

import (
	"time"

	"github.com/vidda/vidda/fhir"
)

// Decoder decodes device payloads as DecodeCompact, DecodeSenML and
// DecodeFHIR do, with a code table it builds once: for a caller that
// decodes many payloads (the ingest pipeline), where the functions build
// the rows they need on every call. Readings it decodes share its table
// rows, which nothing changes. A Decoder is safe for concurrent use.
type Decoder struct {
	table []ReadingType
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder { return &Decoder{table: Table()} }

// Compact is DecodeCompact.
func (d *Decoder) Compact(payload []byte) ([]Reading, error) { return decodeCompact(payload, d.table) }

// SenML is DecodeSenML.
func (d *Decoder) SenML(payload []byte, now time.Time) ([]Reading, error) {
	return decodeSenML(payload, now, d.table)
}

// FHIR is DecodeFHIR.
func (d *Decoder) FHIR(payload []byte, reg *fhir.Registry) (*FHIRPayload, error) {
	return decodeFHIR(payload, reg, d.table)
}
