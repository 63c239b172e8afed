package ingest

import (
	"context"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/fhir"
)

// Kind is the payload format, the last level of the topic.
type Kind = devices.Kind

// Message is one MQTT publish from a device.
type Message struct {
	DeviceID string
	Kind     Kind
	Topic    string
	Payload  []byte
	Received time.Time
}

// Row is one Observation to store under its idempotency key.
type Row struct {
	Key string
	// Resource is the Observation, Model included. The pipeline lets go
	// of it once the Sink has prepared the row.
	Resource *fhir.Resource
	// Prepared is what Sink.Prepare made of the row, for WriteBatch.
	Prepared any
}

// DeadLetter is input kept because it could not be stored as readings.
type DeadLetter struct {
	ReceivedAt time.Time
	DeviceID   string
	Topic      string
	Payload    []byte
	Reason     string
	Detail     string
}

// Stored says where a Row's reading is.
type Stored struct {
	Key       string
	ID        string
	Duplicate bool
}

// Sink stores readings in two steps. Prepare does the work of one row
// (its id, the stored JSON, the search values) and runs in Submit, on the
// submitting goroutine: in parallel across connections and off the commit
// path. WriteBatch commits prepared rows and dead letters in one
// transaction; nil means every one of them is durable. A failed
// WriteBatch is retried with the same rows.
type Sink interface {
	// Prepare sets r.Prepared, or says why the row cannot be stored (the
	// reading is then refused, not retried).
	Prepare(r *Row) error
	WriteBatch(ctx context.Context, rows []Row, dead []DeadLetter) ([]Stored, error)
}

// Binding is the registered Device a message came from.
type Binding struct {
	PatientID string
	// PatientIdentifiers let a FHIR payload name the patient by identifier.
	PatientIdentifiers []devices.Identifier
	Active             bool
}

// Bindings looks up registered devices; ErrUnknownDevice-wrapping errors
// (per the implementation's notFound) mean the device does not exist.
type Bindings interface {
	DeviceBinding(ctx context.Context, deviceID string) (Binding, error)
}

// Outcome is what happened to a message, given to its done callback once
// it is committed.
type Outcome struct {
	// Committed is false only when the pipeline stopped before the message
	// could be committed: the caller must not acknowledge it (the device
	// sends it again).
	Committed bool
	// Rejected is true when nothing of the message was stored as a
	// reading (it was kept as a dead letter).
	Rejected bool
	// Reply is the JSON for the device's acks topic (stored readings) or,
	// when Rejected, its errors topic.
	Reply []byte
	// Errors is the JSON for the errors topic when part of a message was
	// rejected while the rest was stored; nil otherwise.
	Errors []byte
}
