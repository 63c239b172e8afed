// Package obs sets up what operators watch: the slog logger and the
// Prometheus registry with the process, Go runtime and database pool
// collectors. Packages declare their own metrics against the registry it
// returns.
//
// It imports the standard library, prometheus and pgxpool.
package obs
