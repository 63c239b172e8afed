package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// Every column the search registry declares must exist, with its type, in
// the migrated schema: the registry and the migrations cannot drift apart.
func TestEverySearchParameterHasItsColumns(t *testing.T) {
	pool := dbtest.Pool(t)
	reg := search.NewRegistry(time.UTC)
	udt := map[string]string{"text[]": "_text", "numeric": "numeric", "timestamptz": "timestamptz"}
	for _, typ := range reg.Types() {
		for _, p := range reg.Definition(typ).Params {
			for _, col := range p.Columns() {
				var got string
				err := pool.QueryRow(context.Background(),
					`SELECT coalesce(max(udt_name), '') FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`,
					store.Table(typ), col.Name).Scan(&got)
				if err != nil {
					t.Fatal(err)
				}
				if got != udt[col.SQLType] {
					t.Errorf("%s.%s: table %s needs column %s %s (found %q)", typ, p.Name, store.Table(typ), col.Name, col.SQLType, got)
				}
			}
		}
	}
}
