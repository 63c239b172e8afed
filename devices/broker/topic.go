package broker

import (
	"strings"
	"unicode/utf8"
)

// topicPrefix starts every device topic: vidda/v1/devices/{deviceId}/...
const topicPrefix = "vidda/v1/devices/"

// maxDeviceIDLen bounds the device ids the broker accepts from Credentials.
const maxDeviceIDLen = 128

// publishKind returns the Kind of topic if deviceID may publish to it: only
// its own readings, senml and fhir topics, exactly.
func publishKind(topic, deviceID string) (Kind, bool) {
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return "", false
	}
	id, kind, ok := strings.Cut(rest, "/")
	if !ok || id != deviceID {
		return "", false
	}
	switch k := Kind(kind); k {
	case KindReadings, KindSenML, KindFHIR:
		return k, true
	}
	return "", false
}

// mayRead reports whether deviceID may subscribe to (and receive) filter:
// only its own acks and errors topics, exactly, so no wildcard and no
// shared subscription.
func mayRead(filter, deviceID string) bool {
	return filter == replyTopic(deviceID, false) || filter == replyTopic(deviceID, true)
}

// replyTopic is where the outcome of a device's message is published.
func replyTopic(deviceID string, rejected bool) string {
	if rejected {
		return topicPrefix + deviceID + "/errors"
	}
	return topicPrefix + deviceID + "/acks"
}

// validDeviceID reports whether id can be one topic level: the ACL compares
// topics as strings, so an id with a separator or a wildcard in it would
// open other devices' topics.
func validDeviceID(id string) bool {
	return id != "" && len(id) <= maxDeviceIDLen && utf8.ValidString(id) &&
		!strings.ContainsAny(id, "/+#\x00")
}
