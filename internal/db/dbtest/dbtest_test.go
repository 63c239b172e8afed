package dbtest_test

import (
	"context"
	"testing"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestTheHarnessGivesAMigratedDatabase(t *testing.T) {
	pool := dbtest.Pool(t)
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM information_schema.tables WHERE table_name = 'observation'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("observation table: got %d, want 1", n)
	}
}

func TestNewDatabaseIsolatesATest(t *testing.T) {
	a, b := dbtest.NewDatabase(t), dbtest.NewDatabase(t)
	if a == b {
		t.Fatal("two calls returned the same database")
	}
	pa := dbtest.PoolFor(t, a)
	if _, err := pa.Exec(context.Background(), `INSERT INTO patient (id, version_id, last_updated, content) VALUES ('x', 1, now(), '{}')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dbtest.PoolFor(t, b).QueryRow(context.Background(), `SELECT count(*) FROM patient`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second database sees %d rows of the first", n)
	}
}
