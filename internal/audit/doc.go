// Package audit owns vidda's audit trail: what an access was (Event), how
// it reads as a FHIR R4 AuditEvent, and the Writer that stores it without
// making a request wait for the database. A stored access is one narrow row
// of audit_record; the auditevent view (migration 00016) renders it as the
// AuditEvent that fhir/store reads and searches like any resource table.
//
// Every read, search, write, export, sign-in (and failed sign-in), video
// join/admit/leave and device credential change becomes an Event: who (the
// principal's subject, role, FHIR reference, client, token id and network
// address), what (the resource, or the query of a search), which patient,
// when, from where, and how it ended. The HTTP edge (internal/httpapi)
// records the FHIR interactions; commands record what they change.
//
// The resource follows IHE Basic Audit Log Patterns (BALP) where that is
// cheap: DICOM event types (110110 Patient Record, 110112 Query, 110114
// User Authentication, ...), the FHIR RESTful interaction as subtype, the
// user and the OAuth client as agents with the token's jti as policy, the
// query base64-encoded in entity.query, the request id as an entity, and
// one AuditEvent per patient when an access touches several, so that
// AuditEvent?patient= finds every access to a patient's data.
//
// AuditEvents are never changed through the API (internal/auth decideAudit
// refuses it); they have one version and no history.
//
// Package audit imports fhir/search (the AuditEvent search parameters the
// stored columns must match), internal/auth (principals and sign-in
// events), pgx and Prometheus. It never imports the HTTP edge.
package audit
