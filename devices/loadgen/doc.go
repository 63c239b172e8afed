// Package loadgen plays many home gateways against an MQTT broker, for
// benchmarks: each simulated home is its own TCP connection with its own
// device credential, publishing compact-JSON readings at QoS 1 to
// vidda/v1/devices/{id}/readings.
//
// A gateway deletes a buffered reading when it is confirmed and keeps at
// most a window of unconfirmed ones outstanding; so does every connection
// here. What confirms a reading is chosen at Dial:
//
//   - ConfirmPuback: the broker's PUBACK. Against vidda's embedded broker
//     the PUBACK follows the commit, so publish→PUBACK is publish→commit.
//   - ConfirmReply: vidda's reply on vidda/v1/devices/{id}/acks, which it
//     publishes after the commit. Against an external broker, whose PUBACK
//     only says the broker has the message, this is publish→commit; the
//     broker's PUBACKs are still counted, as what the broker promised.
//
// A Load either floods (every connection keeps its window full) or offers
// a fixed aggregate rate spread evenly over the connections; it runs for
// a Duration or until each home has sent Count readings. Latency of a
// paced publish is measured from when it was due, not from when it went
// out, so a generator or broker that falls behind cannot hide the wait
// (no coordinated omission).
//
// The client is a minimal MQTT 3.1.1 publisher over mochi's packet codec,
// not paho: a paho client per home costs several goroutines, channels and
// a store per message, and a thousand of them compete for the CPU with the
// broker under test. Here a connection is one reader goroutine plus one
// writer goroutine per run, publishes are written in batches as window
// slots free up, and a confirmation costs a map lookup under a mutex.
//
// It imports mochi's packets, devices (topics and reply format) and the
// standard library. It is for benchmarks and tests; vidda does not use it.
package loadgen
