// Package search owns the FHIR search parameters Vidda supports and the
// parser that turns a query string into a typed Query.
//
// Each parameter is declared once, in registry.go: its name, FHIR type, the
// column that indexes it and how its values are extracted from a resource.
// That one entry drives the values fhir/store writes on every create and
// update, the SQL it builds for a search, and the CapabilityStatement; a
// test in fhir/store checks every declared column exists in the schema.
//
// It imports fhir and golang-fhir-models only.
package search
