package broker

import (
	"context"
	"time"

	"github.com/vidda/vidda/devices"
)

// Credentials checks a device's MQTT username and password. The device
// registry implements it; the broker declares it so it needs no store.
type Credentials interface {
	// CheckDevice returns the device id for a username/password, ok=false
	// when they are wrong or the device is disabled. An error means the
	// answer is unknown (the connection is refused and nothing is cached).
	CheckDevice(ctx context.Context, username, password string) (deviceID string, ok bool, err error)
}

// Kind is what a device publishes, named by the last element of its topic.
type Kind = devices.Kind

// The payload formats (see devices.Kind).
const (
	KindReadings = devices.KindReadings
	KindSenML    = devices.KindSenML
	KindFHIR     = devices.KindFHIR
)

// Message is one PUBLISH a device sent, as the Handler gets it.
type Message struct {
	// DeviceID is the authenticated device; the topic names the same id.
	DeviceID string
	// Kind is the payload format, from the topic.
	Kind Kind
	// Topic is the topic the device published to.
	Topic string
	// Payload is a copy owned by the receiver.
	Payload []byte
	// Received is when the broker read the message.
	Received time.Time
	// QoS is 0 or 1. For 0 the device gets no PUBACK.
	QoS byte
}

// MQTT 5 PUBACK reason codes (MQTT 5 §3.4.2.1) for Result.ReasonCode.
const (
	// ReasonUnspecifiedError is used when a rejection names no valid code.
	ReasonUnspecifiedError byte = 0x80
	// ReasonImplementationSpecificError: valid but refused by vidda's rules
	// (unknown reading type, value out of range, device not bound).
	ReasonImplementationSpecificError byte = 0x83
	// ReasonNotAuthorized: the device may not send this.
	ReasonNotAuthorized byte = 0x87
	// ReasonTopicNameInvalid: the topic is not one vidda reads.
	ReasonTopicNameInvalid byte = 0x90
	// ReasonQuotaExceeded: the device sent more than it may.
	ReasonQuotaExceeded byte = 0x97
	// ReasonPayloadFormatInvalid: the payload does not decode.
	ReasonPayloadFormatInvalid byte = 0x99
)

// Result is the outcome of one message, reported through the ack callback.
type Result struct {
	// Rejected means the message was kept as a dead letter, not stored.
	Rejected bool
	// ReasonCode is the MQTT 5 PUBACK reason when Rejected (one of the
	// Reason constants; anything else becomes ReasonUnspecifiedError).
	// MQTT 3.1.1 clients get a plain PUBACK.
	ReasonCode byte
	// Reply is JSON published to the device's .../acks topic (or .../errors
	// when Rejected); nil publishes nothing. The broker owns it once ack is
	// called.
	Reply []byte
	// Errors is JSON published to .../errors after Reply, for a message
	// partly stored and partly rejected; nil publishes nothing. The broker
	// owns it once ack is called.
	Errors []byte
}

// Handler takes device messages into the ingestion pipeline.
type Handler interface {
	// Handle takes a message. It must call ack exactly once, after the
	// outcome is durable, from any goroutine; the PUBACK waits for it, and
	// so do the PUBACKs of later messages on the same connection. It may
	// block to apply back-pressure: that stops the sender's read loop,
	// which is what should happen when the pipeline is full. When ctx ends
	// (the broker is stopping) Handle must return promptly. A message whose
	// outcome never became durable (the pipeline stopped first) gets no ack
	// and so no PUBACK; the device sends it again.
	Handle(ctx context.Context, m Message, ack func(Result))
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message, ack func(Result))

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m Message, ack func(Result)) { f(ctx, m, ack) }
