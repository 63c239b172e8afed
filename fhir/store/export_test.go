package store

// Table is the SQL table of a resource type, for tests outside the
// package.
func Table(typ string) string { return table(typ) }
