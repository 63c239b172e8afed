// Package store is the PostgreSQL store of FHIR resources: create, read,
// vread, update, delete, history and search, with group commit for creates.
//
// Each resource type has a table holding its current version and the typed
// columns its search parameters (fhir/search) index, and a <type>_history
// table holding the versions it replaced. Stored content is the client's
// JSON with only id and meta set by the server; reads and searches return
// those bytes without decoding them. pgx errors are translated here and
// only here into the fhir sentinels.
//
// It imports fhir, fhir/search, internal/db and pgx.
package store
