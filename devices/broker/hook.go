package broker

import (
	"bytes"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errQoS2 is why an MQTT 3.1.1 client sending QoS 2 is disconnected.
var errQoS2 = errors.New("qos 2 publish refused")

// hook plugs the Broker into mochi's event points.
type hook struct {
	mqtt.HookBase
	b *Broker
}

// ID implements mqtt.Hook.
func (h *hook) ID() string { return "vidda-devices" }

// Provides implements mqtt.Hook.
func (h *hook) Provides(event byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPacketRead,
		mqtt.OnPublish,
	}, event) >= 0
}

// OnConnectAuthenticate implements mqtt.Hook: a device connects with its
// own username and password; anonymous connections are refused.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	c := pk.Connect
	if !c.UsernameFlag || !c.PasswordFlag || len(c.Username) == 0 {
		b.stats.authFailed.Add(1)
		b.log.Info("mqtt anonymous connection refused", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	username := string(c.Username)
	deviceID, ok, err := b.checkDevice(username, string(c.Password))
	if err != nil {
		b.stats.authFailed.Add(1)
		b.log.Warn("mqtt device check failed", "client", cl.ID, "username", username, "error", err)
		return false
	}
	if !ok {
		b.stats.authFailed.Add(1)
		b.log.Info("mqtt device refused", "client", cl.ID, "username", username, "remote", cl.Net.Remote)
		return false
	}
	if c.WillFlag {
		// mochi publishes a will without an ACL check; a device has no
		// topic a will could legitimately go to.
		cl.Properties.Will = mqtt.Will{}
		b.log.Info("mqtt will message dropped", "device", deviceID, "client", cl.ID)
	}
	b.rememberDevice(username, deviceID)
	return true
}

// OnACLCheck implements mqtt.Hook for publishes, subscriptions and
// deliveries.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	b := h.b
	deviceID, ok := b.deviceOf(cl)
	if ok {
		if write {
			_, ok = publishKind(topic, deviceID)
		} else {
			ok = mayRead(topic, deviceID)
		}
	}
	if !ok {
		b.stats.denied.Add(1)
		b.log.Info("mqtt access denied", "device", deviceID, "client", cl.ID, "topic", topic, "write", write)
	}
	return ok
}

// OnSessionEstablished implements mqtt.Hook: it starts the connection's
// ack writer. mochi calls it right before the read loop, after which
// OnDisconnect always follows, so the writer always ends.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.openSession(cl)
}

// OnDisconnect implements mqtt.Hook.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.b.closeSession(cl, err)
}

// OnPacketRead implements mqtt.Hook: it refuses QoS 2 before mochi, which
// would otherwise quietly treat it as QoS 1 and PUBACK a client waiting for
// PUBREC.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos < 2 {
		return pk, nil
	}
	b := h.b
	b.stats.denied.Add(1)
	deviceID, _ := b.deviceOf(cl)
	b.log.Info("mqtt qos 2 publish refused; disconnecting", "device", deviceID, "client", cl.ID)
	if cl.Properties.ProtocolVersion == 5 {
		_ = b.srv.DisconnectClient(cl, packets.ErrQosNotSupported) // MQTT 5 §3.2.2.3.4
	} else {
		cl.Stop(errQoS2)
	}
	return pk, packets.ErrRejectPacket // ends the read loop
}

// OnPublish implements mqtt.Hook: the message goes to the Handler and mochi
// is told to drop it (no PUBACK, no forwarding); the session writes the
// PUBACK once the Handler acks.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the broker's own replies
	}
	b := h.b
	s := b.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	kind, ok := publishKind(pk.TopicName, s.deviceID)
	if !ok {
		// OnACLCheck has passed the topic, so only a change of topic after
		// it (an alias, which the capabilities forbid) gets here.
		b.stats.denied.Add(1)
		_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	if b.draining.Load() {
		return pk, packets.ErrRejectPacket // not acked: the device sends it again
	}
	p, err := s.reserve(b.hardCtx, pk.PacketID, pk.FixedHeader.Qos)
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	b.stats.received.Add(1)
	b.handler.Handle(b.hardCtx, Message{
		DeviceID: s.deviceID,
		Kind:     kind,
		Topic:    pk.TopicName,
		// Not copied: mochi decodes every packet from a buffer of its own
		// (Client.ReadPacket) and drops a rejected one.
		Payload:  pk.Payload,
		Received: time.Now(),
		QoS:      pk.FixedHeader.Qos,
	}, s.ackFunc(p))
	return pk, packets.ErrRejectPacket
}
