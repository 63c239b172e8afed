// Package db owns the PostgreSQL plumbing shared by every store: the pgx pool,
// the schema migrations (embedded SQL files applied with goose), and the
// transaction helper. Tests get a throwaway database from db/dbtest; a local
// development cluster comes from db/devpg.
//
// It imports pgx and goose only; nothing in it knows about FHIR.
package db
