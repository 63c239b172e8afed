// Package sim simulates patients' homes: gateways that measure, buffer and
// publish readings over MQTT the way real ones do, to load and check Vidda's
// device path end to end (vidda devsim).
//
// A home is one patient with one to three devices (Homes plans them by
// index: a blood-pressure cuff, a scale, a pulse oximeter, a glucometer, a
// thermometer, chosen by the patient's Profile). Each Device publishes
// compact JSON to vidda/v1/devices/{id}/readings with its own credentials,
// on a connection of its own (client id "sim-" + device id).
//
// # Readings
//
// A Generator makes one device's messages, reproducibly: the same
// Config.Seed and Config.Start give the same payloads, whatever the timing
// of the run. Values follow the patient: a personal blood-pressure baseline
// with a slow drift, higher in the morning; a daily weight that creeps up
// in heart failure; SpO2 that sometimes dips in COPD; fasting and
// post-meal glucose. Measurements follow a daily schedule (morning and
// evening blood pressure, a morning weight, ...) on a simulated clock that
// walks the last Config.Window up to Config.Start: a home measures far more
// often in a load test than in life, so its clock starts over at the
// beginning of the window when it reaches Start, and the measurement times
// always pass ingestion's time limits.
//
// Config.Mix adds what real gateways send besides: impossible values
// (a finger moved in the oximeter, the scale stepped off: ClassOutOfRange,
// outside the ranges of devices.Table, which vidda keeps as dead letters),
// re-sends of the previous message as after a lost PUBACK
// (ClassDuplicate, stored once), malformed payloads (cut-off JSON, an
// unknown reading type, a wrong unit: ClassMalformed), and outages: the
// gateway queues its readings while offline and flushes them, with their
// original measurement times, when it is back. Clinically alarming values
// that are real (SpO2 86 % in a COPD dip) are ordinary readings: they
// must reach the nurse.
//
// # Publishing
//
// Run connects every device (paho, MQTT 3.1.1, QoS 1, automatic
// reconnect), hands out Config.Rate messages per second across all of them
// from one token bucket, keeps at most Config.InFlight messages per
// connection waiting for their PUBACK, and measures publish → PUBACK
// latency. Vidda sends the PUBACK only once a reading is committed, so a
// PUBACK is what lets a gateway forget a reading: a publish that fails
// (connection lost) is kept and sent again once the device is connected,
// and paho re-sends what was in flight when it reconnects. The device's
// acks and errors topics are read to count what vidda reports stored,
// stored before (duplicates) and rejected.
//
// Passwords are never logged; log lines name device ids only, and no
// payload is ever logged.
//
// It imports paho, errgroup, the standard library and devices (the code
// table, and the idempotency keys of what vidda should store). It creates
// no Patients, Devices or credentials: cmd/vidda registers the homes Homes
// plans and passes the Devices with their credentials to Run.
package sim
