package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir/search"
)

// The change feed of subscriptions (migration 00010 explains the design):
// statement triggers record which ids each transaction wrote, MatchChanges
// walks them in transaction-id order up to the horizon below which every
// transaction has ended, and Feed is the connection that hears the
// triggers' NOTIFY and holds the lock that makes one vidda instance the
// one that matches and delivers.

// feedChannel is the NOTIFY channel of the change triggers (and of
// Subscription writes).
const feedChannel = "vidda_changes"

// leaderLock is the advisory lock key of the subscription runner.
const leaderLock = "vidda.subscriptions"

// writtenTableSQL names the table a type's rows are written to: its own
// table, or, for a type read through a view (AuditEvent, migration 00016),
// the table whose id column the view shows. NULL when there is neither.
const writtenTableSQL = `SELECT coalesce(
	(SELECT d.refobjid::regclass::text FROM pg_rewrite r
	   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
	   JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND a.attname = 'id'
	  WHERE r.ev_class = to_regclass($1) AND d.refobjid <> r.ev_class
	  ORDER BY 1 LIMIT 1),
	to_regclass($1)::text)`

// EnsureChangeTriggers installs the change triggers on the tables of
// types that do not have them yet, and returns the types it could not
// serve: not served by the store, or without a table (a migration not
// applied). Types come from the registries.
func (s *Store) EnsureChangeTriggers(ctx context.Context, types []string) (missing []string, err error) {
	for _, typ := range types {
		if _, err := s.definition(typ); err != nil {
			missing = append(missing, typ)
			continue
		}
		var rel *string
		if err := s.pool.QueryRow(ctx, writtenTableSQL, table(typ)).Scan(&rel); err != nil {
			return missing, fmt.Errorf("change triggers on %s: %w", table(typ), translate(err))
		}
		if rel == nil {
			missing = append(missing, typ)
			continue
		}
		t := *rel
		var n int
		err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass
			AND tgname IN ('vidda_changes_insert', 'vidda_changes_update')`, t).Scan(&n)
		if err != nil {
			return missing, fmt.Errorf("change triggers on %s: %w", t, translate(err))
		}
		if n == 2 {
			continue
		}
		// Transition tables allow one event per trigger, hence two.
		for _, ev := range []string{"insert", "update"} {
			// typ is a registered type name (letters only), safe to quote.
			sql := fmt.Sprintf(`CREATE OR REPLACE TRIGGER vidda_changes_%s AFTER %s ON %s REFERENCING NEW TABLE AS changed
				FOR EACH STATEMENT EXECUTE FUNCTION vidda_record_changes('%s')`, ev, ev, t, typ)
			if _, err := s.pool.Exec(ctx, sql); err != nil {
				return missing, fmt.Errorf("change triggers on %s: %w", t, translate(err))
			}
		}
	}
	return missing, nil
}

// Change is what one round of the feed found of one type: the ids written,
// in transaction order, each once, with the (last) transaction that wrote
// each.
type Change struct {
	Type string
	IDs  []string
	xids []uint64
}

// Since returns the ids of c written by transactions that had not
// committed when snapshot (a pg_snapshot as text, "xmin:xmax:xip,...")
// was taken: what a subscription activated at that snapshot is notified
// of. An empty snapshot keeps every id.
func (c Change) Since(snapshot string) []string {
	if snapshot == "" {
		return c.IDs
	}
	xmin, xmax, xip, ok := parseSnapshot(snapshot)
	if !ok {
		return c.IDs // cannot tell: notify rather than miss
	}
	out := make([]string, 0, len(c.IDs))
	for i, id := range c.IDs {
		x := c.xids[i]
		// Visible in the snapshot (committed before it) means older.
		if x < xmin || (x < xmax && !slices.Contains(xip, x)) {
			continue
		}
		out = append(out, id)
	}
	return out
}

func parseSnapshot(s string) (xmin, xmax uint64, xip []uint64, ok bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, nil, false
	}
	var err error
	if xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return 0, 0, nil, false
	}
	if xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return 0, 0, nil, false
	}
	if parts[2] != "" {
		for _, f := range strings.Split(parts[2], ",") {
			x, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, 0, nil, false
			}
			xip = append(xip, x)
		}
	}
	return xmin, xmax, xip, true
}

// ChangeRound is one transaction of MatchChanges.
type ChangeRound struct {
	s   *Store
	tx  pgx.Tx
	err error
	// Changes are the changes of the round, by type.
	Changes []Change
}

// Version names one version of a resource.
type Version struct {
	Type, ID string
	Version  int64
}

// MatchChanges takes the oldest changes of the feed that are final (at
// most about maxRows statements' worth), hands them to match, and, when
// match returns nil, moves the cursor past them in the same transaction
// as whatever match enqueued. Only one round runs at a time, across
// instances. It reports how many changes the round held and whether
// committed changes wait beyond the horizon, held back by a transaction
// still running (try again soon: no NOTIFY will say so).
func (s *Store) MatchChanges(ctx context.Context, maxRows int, match func(ctx context.Context, r *ChangeRound) error) (n int, waiting bool, err error) {
	var horizon string
	err = s.inTx(ctx, "match changes", func(tx pgx.Tx) error {
		// The round's writes (outbox rows, the cursor, the feed rows it
		// removes) commit or vanish together, so a commit that a crash
		// loses only means the round is matched again: no fsync to wait
		// for on the way to the webhook.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return fmt.Errorf("match changes: %w", translate(err))
		}
		var pos string
		if err := tx.QueryRow(ctx, "SELECT position::text FROM subscription_cursor FOR UPDATE").Scan(&pos); err != nil {
			return fmt.Errorf("match changes: cursor: %w", translate(err))
		}
		// Every transaction below the horizon has ended: what it wrote to
		// the feed is there now, or never will be.
		if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&horizon); err != nil {
			return fmt.Errorf("match changes: horizon: %w", translate(err))
		}
		// A backlog (after downtime) is taken in bites that end between
		// transactions.
		var cut *string
		err := tx.QueryRow(ctx, `SELECT min(xid)::text FROM subscription_change WHERE xid < $2::xid8
			AND xid > (SELECT xid FROM subscription_change WHERE xid >= $1::xid8 AND xid < $2::xid8 ORDER BY xid OFFSET $3 LIMIT 1)`,
			pos, horizon, maxRows).Scan(&cut)
		if err != nil {
			return fmt.Errorf("match changes: %w", translate(err))
		}
		if cut != nil {
			horizon = *cut
		}
		rows, err := tx.Query(ctx, `SELECT xid::text, resource_type, ids FROM subscription_change
			WHERE xid >= $1::xid8 AND xid < $2::xid8 ORDER BY xid`, pos, horizon)
		if err != nil {
			return fmt.Errorf("match changes: %w", translate(err))
		}
		r := &ChangeRound{s: s, tx: tx}
		seen := map[string]int{} // Type/id → its index in its Change
		byType := map[string]int{}
		for rows.Next() {
			var xidText, typ string
			var ids []string
			if err := rows.Scan(&xidText, &typ, &ids); err != nil {
				rows.Close()
				return fmt.Errorf("match changes: %w", err)
			}
			xid, err := strconv.ParseUint(xidText, 10, 64)
			if err != nil {
				rows.Close()
				return fmt.Errorf("match changes: transaction id %q: %w", xidText, err)
			}
			i, ok := byType[typ]
			if !ok {
				i = len(r.Changes)
				byType[typ] = i
				r.Changes = append(r.Changes, Change{Type: typ})
			}
			c := &r.Changes[i]
			for _, id := range ids {
				k := typ + "/" + id
				if j, ok := seen[k]; ok {
					c.xids[j] = xid // the latest write decides
					continue
				}
				seen[k] = len(c.IDs)
				c.IDs, c.xids = append(c.IDs, id), append(c.xids, xid)
				n++
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("match changes: %w", translate(err))
		}
		if n == 0 {
			return nil // nothing to move past; no write
		}
		if err := match(ctx, r); err != nil {
			return err
		}
		if r.err != nil {
			return r.err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM subscription_change WHERE xid < $1::xid8", horizon); err != nil {
			return fmt.Errorf("match changes: %w", translate(err))
		}
		if _, err := tx.Exec(ctx, "UPDATE subscription_cursor SET position = $1::xid8", horizon); err != nil {
			return fmt.Errorf("match changes: cursor: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	err = s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM subscription_change WHERE xid >= $1::xid8)", horizon).Scan(&waiting)
	if err != nil {
		return n, false, fmt.Errorf("match changes: %w", translate(err))
	}
	return n, waiting, nil
}

// Match returns the current versions of those of ids that q matches and a
// may see, in the order of ids: q, a subscription's criteria, is searched
// as the store searches it, restricted to the ids of the round.
func (r *ChangeRound) Match(ctx context.Context, q *search.Query, ids []string, a Access) ([]Version, error) {
	if _, err := r.s.definition(q.Type); err != nil {
		return nil, err
	}
	w := &where{}
	w.add("NOT deleted")
	w.add("id = ANY(" + w.arg(ids) + "::text[])")
	if a.PatientID != "" {
		w.add("patient_id = " + w.arg(a.PatientID))
	}
	r.s.confineCare(w, q.Type, a)
	for _, f := range q.Filters {
		w.add(filterSQL(w, f, a))
	}
	rows, err := r.tx.Query(ctx, "SELECT id, version_id FROM "+table(q.Type)+w.sql(), w.args...)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Type, translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Version, error) {
		v := Version{Type: q.Type}
		return v, row.Scan(&v.ID, &v.Version)
	})
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", q.Type, translate(err))
	}
	pos := make(map[string]int, len(ids))
	for i, id := range ids {
		pos[id] = i
	}
	slices.SortFunc(out, func(x, y Version) int { return pos[x.ID] - pos[y.ID] })
	return out, nil
}

// eventNamespace is the UUID namespace of event ids (RFC 9562 §5.5).
const eventNamespace = "7b0c3f0e-6a53-4b8e-9d37-0c5e2b1f9a41"

// EventID is the id of the event that notifies subscription sub of one
// version: a name-based UUID, so that the same version matched again (a
// round whose commit a crash lost) gets the same id, and receivers can
// deduplicate on it whatever happened.
func EventID(sub string, v Version) string {
	return uuid.NewSHA1(uuid.MustParse(eventNamespace), []byte(sub+"|"+v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.Version, 10))).String()
}

// Enqueue adds one event per version to the outbox of subscription id,
// numbered after its earlier events; a version already enqueued for it is
// not enqueued again.
func (r *ChangeRound) Enqueue(ctx context.Context, id string, versions []Version) error {
	if len(versions) == 0 {
		return nil
	}
	types := make([]string, len(versions))
	ids := make([]string, len(versions))
	vers := make([]int64, len(versions))
	events := make([]string, len(versions))
	for i, v := range versions {
		types[i], ids[i], vers[i], events[i] = v.Type, v.ID, v.Version, EventID(id, v)
	}
	_, err := r.tx.Exec(ctx, `WITH n AS (
			UPDATE subscription_state SET events = events + $2 WHERE id = $1 RETURNING events - $2 AS base)
		INSERT INTO subscription_event (subscription_id, event_number, event_id, resource_type, resource_id, version_id)
		SELECT $1, n.base + m.ord, m.ev::uuid, m.typ, m.id, m.v
		  FROM n, unnest($3::text[], $4::text[], $5::bigint[], $6::text[]) WITH ORDINALITY AS m(typ, id, v, ev, ord)
		ON CONFLICT DO NOTHING`, id, len(versions), types, ids, vers, events)
	if err != nil {
		r.err = fmt.Errorf("enqueue for subscription %s: %w", id, translate(err))
		return r.err
	}
	return nil
}

// Event is one notification waiting in a subscription's outbox.
type Event struct {
	Subscription string
	Number       int64
	// ID is what a receiver deduplicates on: the same for every attempt.
	ID      string
	Version Version
	// Created is when the change was matched.
	Created time.Time
}

// PendingEvents returns the oldest events of subscription id, at most
// limit, in order.
func (s *Store) PendingEvents(ctx context.Context, id string, limit int) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_number, event_id::text, resource_type, resource_id, version_id, created
		FROM subscription_event WHERE subscription_id = $1 ORDER BY event_number LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("subscription %s: outbox: %w", id, translate(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		e := Event{Subscription: id}
		return e, row.Scan(&e.Number, &e.ID, &e.Version.Type, &e.Version.ID, &e.Version.Version, &e.Created)
	})
	if err != nil {
		return nil, fmt.Errorf("subscription %s: outbox: %w", id, translate(err))
	}
	return out, nil
}

// EventDelivered removes a delivered event from the outbox.
func (s *Store) EventDelivered(ctx context.Context, id string, number int64) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM subscription_event WHERE subscription_id = $1 AND event_number = $2", id, number); err != nil {
		return fmt.Errorf("subscription %s: delivered %d: %w", id, number, translate(err))
	}
	return nil
}

// Feed is a connection of its own, outside the pool: it hears the change
// triggers' NOTIFY and holds the advisory lock that makes its runner the
// one that matches and delivers. The lock ends with the connection, so a
// crashed instance hands over to the next one.
type Feed struct {
	conn *pgx.Conn
}

// OpenFeed connects as the pool does and listens for changes.
func (s *Store) OpenFeed(ctx context.Context) (*Feed, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("change feed: connect: %w", translate(err))
	}
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("change feed: listen: %w", translate(err))
	}
	return &Feed{conn: conn}, nil
}

// TryLead takes the runner lock if no other connection holds it.
func (f *Feed) TryLead(ctx context.Context) (bool, error) {
	var ok bool
	if err := f.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", leaderLock).Scan(&ok); err != nil {
		return false, fmt.Errorf("change feed: lock: %w", translate(err))
	}
	return ok, nil
}

// Wait waits up to d for a notification: true when one came, false when
// d passed. An error means the connection is lost (and with it the lock).
func (f *Feed) Wait(ctx context.Context, d time.Duration) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := f.conn.WaitForNotification(wctx)
	switch {
	case err == nil:
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) && !f.conn.IsClosed():
		return false, nil
	}
	return false, fmt.Errorf("change feed: %w", translate(err))
}

// Close ends the connection, releasing the lock.
func (f *Feed) Close(ctx context.Context) error {
	if err := f.conn.Close(ctx); err != nil {
		return fmt.Errorf("change feed: close: %w", err)
	}
	return nil
}
