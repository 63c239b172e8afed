package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
)

// IngestObservation is a device reading mapped to an Observation.
type IngestObservation struct {
	// Key is the reading's idempotency key: a re-sent reading has the same
	// key and is stored once.
	Key string
	// Resource is the Observation (Raw without id or meta, Model decoded).
	Resource *fhir.Resource
}

// IngestResult says where a reading is stored.
type IngestResult struct {
	Key string
	ID  string
	// Duplicate is true when the key was already stored (by this batch or
	// an earlier one): ID is then the earlier Observation's.
	Duplicate bool
}

// DeadLetter is device input that could not be stored as a reading, kept
// with the reason so an operator can see and replay it.
type DeadLetter struct {
	ID         int64
	ReceivedAt time.Time
	DeviceID   string
	Topic      string
	Payload    []byte
	Reason     string
	Detail     string
	ReplayedAt *time.Time
}

// Ingest stores a batch of device readings and dead letters in one
// transaction: when it returns nil, all of them are committed. Readings
// whose key is already stored are not stored again.
func (s *Store) Ingest(ctx context.Context, obs []IngestObservation, dead []DeadLetter) ([]IngestResult, error) {
	cols, rows, ids, err := s.IngestRows(obs, now())
	if err != nil {
		return nil, err
	}
	results := make([]IngestResult, len(obs))
	byKey := make(map[string][]int, len(obs))
	for i, o := range obs {
		results[i] = IngestResult{Key: o.Key, ID: ids[i]}
		byKey[o.Key] = append(byKey[o.Key], i)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", translate(err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if len(rows) > 0 {
		if err := insertReadings(ctx, tx, cols, rows, results, byKey); err != nil {
			return nil, err
		}
	}
	if len(dead) > 0 {
		if err := insertDeadLetters(ctx, tx, dead); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("ingest: commit: %w", translate(err))
	}
	return results, nil
}

// IngestRows prepares readings as observation rows under new ids, stored
// at time at: the columns, one value slice per reading in column order, and
// the ids. It touches no database; Ingest writes what it returns, and
// benchmarks use it to write exactly what vidda writes.
func (s *Store) IngestRows(obs []IngestObservation, at time.Time) (cols []string, rows [][]any, ids []string, err error) {
	def, err := s.definition("Observation")
	if err != nil {
		return nil, nil, nil, err
	}
	cols = append([]string{"id", "version_id", "last_updated", "patient_id", "content", "ingest_key"}, indexColumns(def)...)
	rows = make([][]any, 0, len(obs))
	ids = make([]string, 0, len(obs))
	for _, o := range obs {
		id, err := newID()
		if err != nil {
			return nil, nil, nil, err
		}
		r, err := s.newRow(def, o.Resource, id, 1, at)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("ingest %s: %w", o.Key, err)
		}
		rows = append(rows, append([]any{r.id, r.version, r.lastUpdated, r.patientID, r.content, o.Key}, r.index...))
		ids = append(ids, id)
	}
	return cols, rows, ids, nil
}

// insertReadings copies rows into a per-session staging table, moves them
// into observation skipping known keys, and resolves duplicates to the ids
// already stored.
func insertReadings(ctx context.Context, tx pgx.Tx, cols []string, rows [][]any, results []IngestResult, byKey map[string][]int) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS observation_stage (LIKE observation INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("ingest: staging table: %w", translate(err))
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"observation_stage"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("ingest: copy: %w", translate(err))
	}
	list := joinCols(cols)
	inserted, err := tx.Query(ctx, "INSERT INTO observation ("+list+") SELECT "+list+
		" FROM observation_stage ON CONFLICT (ingest_key) DO NOTHING RETURNING ingest_key, id")
	if err != nil {
		return fmt.Errorf("ingest: insert: %w", translate(err))
	}
	stored := make(map[string]string, len(rows))
	for inserted.Next() {
		var key, id string
		if err := inserted.Scan(&key, &id); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		stored[key] = id
	}
	if err := inserted.Err(); err != nil {
		return fmt.Errorf("ingest: insert: %w", translate(err))
	}
	var missing []string
	for key, idx := range byKey {
		id, ok := stored[key]
		if !ok {
			missing = append(missing, key)
			continue
		}
		for n, i := range idx {
			// A key sent twice in one batch: the first copy was stored.
			results[i].Duplicate = results[i].ID != id || n > 0
			results[i].ID = id
		}
	}
	if len(missing) == 0 {
		return nil
	}
	earlier, err := tx.Query(ctx, "SELECT ingest_key, id FROM observation WHERE ingest_key = ANY($1)", missing)
	if err != nil {
		return fmt.Errorf("ingest: duplicates: %w", translate(err))
	}
	for earlier.Next() {
		var key, id string
		if err := earlier.Scan(&key, &id); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		for _, i := range byKey[key] {
			results[i].ID, results[i].Duplicate = id, true
		}
	}
	if err := earlier.Err(); err != nil {
		return fmt.Errorf("ingest: duplicates: %w", translate(err))
	}
	return nil
}

func insertDeadLetters(ctx context.Context, tx pgx.Tx, dead []DeadLetter) error {
	rows := make([][]any, len(dead))
	for i, d := range dead {
		rows[i] = []any{d.ReceivedAt, d.DeviceID, d.Topic, d.Payload, d.Reason, d.Detail}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"dead_letter"},
		[]string{"received_at", "device_id", "topic", "payload", "reason", "detail"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("ingest: dead letters: %w", translate(err))
	}
	return nil
}

func joinCols(cols []string) string {
	out := ""
	for i, c := range cols {
		if i > 0 {
			out += ", "
		}
		out += c
	}
	return out
}

// DeadLetters lists dead letters, newest first; deviceID "" lists all.
func (s *Store) DeadLetters(ctx context.Context, deviceID string, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, received_at, device_id, topic, payload, reason, detail, replayed_at
		FROM dead_letter WHERE ($1 = '' OR device_id = $1) ORDER BY received_at DESC, id DESC LIMIT $2`, deviceID, limit)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		err := r.Scan(&d.ID, &d.ReceivedAt, &d.DeviceID, &d.Topic, &d.Payload, &d.Reason, &d.Detail, &d.ReplayedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", translate(err))
	}
	return out, nil
}

// DeadLetter returns one dead letter by id.
func (s *Store) DeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	d := DeadLetter{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT received_at, device_id, topic, payload, reason, detail, replayed_at FROM dead_letter WHERE id = $1`, id).
		Scan(&d.ReceivedAt, &d.DeviceID, &d.Topic, &d.Payload, &d.Reason, &d.Detail, &d.ReplayedAt)
	if err != nil {
		return d, fmt.Errorf("dead letter %d: %w", id, translate(err))
	}
	return d, nil
}

// MarkReplayed records that a dead letter was replayed into readings.
func (s *Store) MarkReplayed(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, "UPDATE dead_letter SET replayed_at = now() WHERE id = $1", id); err != nil {
		return fmt.Errorf("dead letter %d: %w", id, translate(err))
	}
	return nil
}
