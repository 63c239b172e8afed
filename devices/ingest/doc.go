// Package ingest is the one pipeline every device reading goes through,
// whichever broker delivered it: decode → map → batch → commit → ack.
//
// Submit decodes and maps a message and has the Sink prepare its rows (ids,
// stored JSON, search values) in the caller's goroutine (a broker
// connection's read loop, so that this work runs in parallel across
// devices), and queues it; Run commits what is queued as one batch whenever
// the database is free (group commit: no fixed timer), the committers doing
// little more than COPY, and only then calls each message's done callback,
// in the order the messages were submitted. That callback is
// where the broker sends the device its PUBACK: nothing is acknowledged
// before it is committed, as a reading or as a dead letter.
//
// It imports devices and fhir; the store it writes to and the broker it
// serves are declared here as small interfaces and connected by cmd.
package ingest
