// Package bulk is FHIR Bulk Data Access (v2) export: $export at system,
// Patient and Group level, run as background jobs that outlive the request
// that started them and the instance running them.
//
// A kick-off is checked here (Parse, Plan: _type, _since, _typeFilter,
// _outputFormat, Prefer: respond-async) and stored as a queued job
// (fhir/store export_job). Every instance runs an Exporter, whose workers
// claim jobs through a PostgreSQL advisory lock held for the whole run:
// one instance runs a job at a time, and a job whose instance died is
// taken over and started again by the next one that looks. A run reads
// every type from one database snapshot and streams the stored bytes of
// each resource, one line each, into ndjson files under Config.Dir; memory
// stays flat whatever the size. The job's status, progress and files are
// in the database, so any instance answers a poll; the files themselves
// are on the disk of the instance that wrote them (Config.Dir must be
// shared storage when several instances serve downloads). Files expire
// after Config.TTL and are deleted with their job.
//
// Authorization is decided at the edge (internal/httpapi asks
// internal/auth for each type) and stored with the job as the store.Access
// each type is read with; a patient's export stays in their compartment,
// a nurse's in their care team's.
//
// It imports fhir, fhir/search and fhir/store.
package bulk
