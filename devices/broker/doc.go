// Package broker is vidda's embedded MQTT broker (mochi-mqtt, in process):
// the device listener (TCP, or TLS when a certificate is configured), device
// authentication and topic ACLs over device credentials, and the publish path
// that hands readings to the ingestion pipeline and holds each device's
// PUBACK until the pipeline says the reading is durable.
//
// # The PUBACK is the promise
//
// A home gateway deletes a buffered reading when its PUBACK arrives, so the
// PUBACK may be written only after the reading is committed to PostgreSQL (or
// kept as a dead letter). mochi runs OnPublish in the client's read loop
// before it writes the PUBACK; blocking there until the commit would cap a
// connection at one message per commit. Instead the publish hook hands the
// message to the Handler with an ack callback and returns
// packets.ErrRejectPacket, which makes mochi drop the packet without acking,
// forwarding or counting it against the receive quota. The read loop goes on
// reading, so many messages of one connection ride in one pipeline batch.
//
// Each connection has a session: a FIFO of the messages it handed over, in
// the order their PUBLISH packets arrived, and one writer goroutine. The ack
// callback only records the Result and wakes the writer; the writer writes
// the PUBACKs of the acknowledged prefix of the FIFO, in order, then
// publishes the Result's reply to the device's acks or errors topic. So
// PUBACKs leave in arrival order (MQTT 3.1.1 §4.6, MQTT 5 §4.6) even if a
// Handler acknowledged out of order, a slow or dead client only ever blocks
// its own writer (a batch of writes that takes longer than
// Config.WriteTimeout, or fails, disconnects that client), and the pipeline
// never blocks on a socket.
// A connection may have Config.MaxInFlight messages waiting; beyond that the
// broker stops reading from it until acks free a slot (the same number is
// sent to MQTT 5 clients as Receive Maximum).
//
// # Protocol choices
//
//   - QoS 1 is the device protocol. QoS 0 messages are handed over too, with
//     no PUBACK (the Handler still calls ack: it publishes the reply and frees
//     the slot). QoS 2 is refused: the broker advertises Maximum QoS 1 to MQTT
//     5 clients and disconnects one that sends QoS 2 anyway with reason 0x9B
//     (QoS not supported); an MQTT 3.1.1 client, which cannot be told, is
//     disconnected.
//   - A dead-lettered message (Result.Rejected) is acknowledged: MQTT 5
//     clients get a PUBACK with Result.ReasonCode (0x80 when the Handler gave
//     none that PUBACK allows), MQTT 3.1.1 clients a plain PUBACK; the reason
//     itself goes to the errors topic.
//   - Anonymous connections are refused. A device may publish only to
//     vidda/v1/devices/{its id}/readings, /senml and /fhir, and subscribe only
//     to vidda/v1/devices/{its id}/acks and /errors, exactly (no wildcards).
//     Will messages are dropped at connect: mochi publishes them without an
//     ACL check, so a will could otherwise forge another device's acks.
//   - Topic aliases are not accepted (mochi checks the ACL before it resolves
//     an alias).
//
// # Shutdown
//
// When Run's context ends the broker stops accepting connections and taking
// new messages (they are not acknowledged, so the device sends them again),
// waits up to Config.DrainTimeout for the PUBACKs of messages already handed
// over, then cancels the context it gave the Handler, disconnects every
// client and returns once every goroutine it started has ended.
//
// It imports mochi-mqtt and the standard library; cmd/vidda connects its
// Handler to devices/ingest and its Credentials to the device registry.
package broker
