// Package fhir is the FHIR R4 resource layer Vidda serves: the registry of
// resource types, validation of the resources clients send, the server-owned
// id and meta, the _summary form, OperationOutcome, the CapabilityStatement
// and the domain errors (ErrNotFound, ErrVersionConflict, *ValidationError,
// ...) the HTTP edge maps to statuses.
//
// What is stored is what the client sent, with only id and meta set by the
// server (WithMeta). The golang-fhir-models types are used to validate and
// to read values, never to produce stored bytes: they have no primitive
// extensions ("_birthDate"), so a round trip through them loses data.
// Parse therefore walks the body itself, against schemas built once by
// reflection over the models' json tags, and answers elements R4 does not
// define with a 400 that names them.
//
// Adding a resource type is one entry in builtinTypes (types.go).
//
// It imports the standard library and golang-fhir-models only.
package fhir
