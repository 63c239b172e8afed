package broker

import "github.com/vidda/vidda/devices"

// The topic rules are the devices package's, shared with the HTTP auth
// endpoint an external broker calls.

func publishKind(topic, deviceID string) (Kind, bool) { return devices.MayPublish(topic, deviceID) }

func mayRead(filter, deviceID string) bool { return devices.MayRead(filter, deviceID) }

func replyTopic(deviceID string, rejected bool) string { return devices.ReplyTopic(deviceID, rejected) }

func validDeviceID(id string) bool { return devices.ValidDeviceID(id) }
