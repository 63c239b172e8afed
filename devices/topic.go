package devices

import (
	"strings"
	"unicode/utf8"
)

// Kind is a payload format, the last level of a device's publish topic.
type Kind string

// The formats a device may publish.
const (
	KindReadings Kind = "readings" // compact JSON
	KindSenML    Kind = "senml"    // SenML JSON, RFC 8428
	KindFHIR     Kind = "fhir"     // a FHIR Observation or Bundle
)

// TopicPrefix starts every device topic: vidda/v1/devices/{deviceId}/...
const TopicPrefix = "vidda/v1/devices/"

// maxDeviceIDLen bounds a device id used as a topic level.
const maxDeviceIDLen = 128

// ParseTopic splits a device publish topic into the device id and the
// payload format; ok is false for any other topic.
func ParseTopic(topic string) (deviceID string, kind Kind, ok bool) {
	rest, ok := strings.CutPrefix(topic, TopicPrefix)
	if !ok {
		return "", "", false
	}
	id, k, ok := strings.Cut(rest, "/")
	if !ok || !ValidDeviceID(id) {
		return "", "", false
	}
	switch Kind(k) {
	case KindReadings, KindSenML, KindFHIR:
		return id, Kind(k), true
	}
	return "", "", false
}

// MayPublish returns the format of topic when deviceID may publish to it:
// only its own readings, senml and fhir topics, exactly.
func MayPublish(topic, deviceID string) (Kind, bool) {
	id, kind, ok := ParseTopic(topic)
	if !ok || id != deviceID {
		return "", false
	}
	return kind, true
}

// MayRead reports whether deviceID may subscribe to filter: only its own
// acks and errors topics, exactly (no wildcard, no shared subscription).
func MayRead(filter, deviceID string) bool {
	return ValidDeviceID(deviceID) && (filter == ReplyTopic(deviceID, false) || filter == ReplyTopic(deviceID, true))
}

// ReplyTopic is where the outcome of a device's message is published: its
// acks topic, or its errors topic when the message was rejected.
func ReplyTopic(deviceID string, rejected bool) string {
	if rejected {
		return TopicPrefix + deviceID + "/errors"
	}
	return TopicPrefix + deviceID + "/acks"
}

// ValidDeviceID reports whether id can be one topic level: ACLs compare
// topics as strings, so an id with a separator or a wildcard in it would
// open other devices' topics.
func ValidDeviceID(id string) bool {
	return id != "" && len(id) <= maxDeviceIDLen && utf8.ValidString(id) &&
		!strings.ContainsAny(id, "/+#$\x00")
}
