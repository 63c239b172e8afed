// Package devices turns what home devices publish into FHIR R4 vital-signs
// Observations. It owns the code table (Table: reading types with their
// LOINC, MDC and UCUM codes and plausible ranges), the decoders of the
// three payload formats a device or its home gateway sends, the validation
// of values and times, and the mapping of a reading to Observation JSON,
// its golang-fhir-models struct (built beside the JSON, so the store's
// search values need no second decoding) and its idempotency key.
//
// Everything here is a pure function over bytes: no I/O, no clock (the
// receive time is a parameter), no package-level state. The pipeline that
// batches, stores and acknowledges readings (devices/ingest) and the MQTT
// broker (devices/broker) call it. Per MQTT message:
//
//	readings, err := devices.DecodeCompact(payload) // .../readings; or DecodeSenML (.../senml), DecodeFHIR (.../fhir);
//	                                                // a Decoder does the same with a code table built once
//	// err is nil, a *RejectError (nothing decoded), or RejectErrors (some
//	// items refused, readings holds the others); Rejections(err) lists them
//	// with Reason, Index and ID for the errors topic and the dead letters.
//	readings, late := limits.Filter(readings, receivedAt) // future-time, too-old: more rejections
//	for _, r := range readings {
//		obs, err := r.Observations(deviceID, patientID) // JSON, Model, Key, Code, ...
//	}
//
// For a FHIR payload the caller also calls FHIRPayload.CheckPatient with
// the Patient the Device is bound to before storing anything; nothing here
// creates Patients or Devices.
//
// Choices worth knowing:
//
//   - A payload is refused as a whole only when it cannot be read at all;
//     otherwise each item (array element, SenML reading, Bundle entry) is
//     accepted or refused on its own, so that one bad reading in a
//     gateway's backlog does not hold back the others. A transaction
//     Bundle is the exception: FHIR makes it all or nothing.
//   - Ranges reject what cannot be a measurement (SpO2 above 100 %,
//     systolic not above diastolic, a temperature below 25 °C), never what
//     is merely alarming: a real alarming value must reach the nurse.
//   - Unknown members of compact JSON are refused, not dropped, like the
//     FHIR layer's unknown elements. SenML ignores unknown fields except
//     must-understand ones (RFC 8428 §4.4).
//   - The pulse of a blood pressure becomes its own heart-rate Observation
//     (LOINC 8867-4, MDC_PULS_RATE_NON_INV) with derivedFrom pointing at
//     the panel by its identifier, so heart-rate queries and $lastn find
//     it; the panel (85354-9) holds systolic, diastolic and mean.
//   - The idempotency key is deviceID/readingID (+ "/pulse" for the split
//     Observation), or deviceID/LOINC/UTC time when the device sends no
//     id (SenML never does). Re-sent readings keep their key.
//   - Messages of rejections name fields, units and ranges but never the
//     measured values, so they may be logged.
//
// It imports the standard library and the fhir package (and the
// golang-fhir-models types fhir validates into) only.
package devices
