package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// Every column the search registry declares must exist in the migrated
// schema: the registry and the migrations cannot drift apart.
func TestEverySearchParameterHasItsColumn(t *testing.T) {
	pool := dbtest.Pool(t)
	reg := search.NewRegistry(time.UTC)
	for _, typ := range reg.Types() {
		def := reg.Definition(typ)
		for _, p := range def.Params {
			cols := []string{p.Column}
			if p.Kind == search.Date {
				cols = []string{p.Column + "_start", p.Column + "_end"}
			}
			for _, col := range cols {
				var n int
				err := pool.QueryRow(context.Background(),
					`SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2`,
					strings.ToLower(typ), col).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Errorf("%s.%s: column %s missing from table %s", typ, p.Name, col, strings.ToLower(typ))
				}
			}
		}
	}
}
