package store_test

import (
	"context"
	"slices"
	"testing"
)

// Every searchable type gets change triggers, AuditEvent too, whose rows
// are written to audit_record behind the auditevent view: a subscription
// on AuditEvent (a security team's, say) hears of every access recorded.
func TestEveryTypeHasChangeTriggersAuditEventOnItsTable(t *testing.T) {
	ctx := context.Background()
	f := newStore(t)
	st, pool := f.st, f.pool
	missing, err := st.EnsureChangeTriggers(ctx, f.params.Types())
	if err != nil || len(missing) > 0 {
		t.Fatalf("missing %v, err %v", missing, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO subscription_state (id, resource_type, live, granted_by) VALUES ('sub-1', 'AuditEvent', true, 'admin')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO audit_record (id, recorded, kind, outcome, observer) VALUES ('ae-1', now(), 1, 0, 'vidda-test')`); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(i), '{}') FROM subscription_change, unnest(ids) i WHERE resource_type = 'AuditEvent'`).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"ae-1"}) {
		t.Errorf("changes recorded for AuditEvent: %v, want [ae-1]", ids)
	}
}
