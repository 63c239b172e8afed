package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
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
	in, err := s.NewIngester()
	if err != nil {
		return nil, err
	}
	prepared := make([]PreparedReading, len(obs))
	for i, o := range obs {
		if prepared[i], err = in.Prepare(o); err != nil {
			return nil, err
		}
	}
	return in.Write(ctx, prepared, dead)
}

// IngestRows prepares readings as observation rows under new ids, stored
// at time at: the columns, one value slice per reading in column order, and
// the ids. It touches no database; it makes what Ingest writes, and
// benchmarks use it to write exactly what vidda writes.
func (s *Store) IngestRows(obs []IngestObservation, at time.Time) (cols []string, rows [][]any, ids []string, err error) {
	in, err := s.NewIngester()
	if err != nil {
		return nil, nil, nil, err
	}
	rows = make([][]any, 0, len(obs))
	ids = make([]string, 0, len(obs))
	for _, o := range obs {
		p, err := in.prepare(o, at)
		if err != nil {
			return nil, nil, nil, err
		}
		rows = append(rows, p.row)
		ids = append(ids, p.ID)
	}
	return in.cols, rows, ids, nil
}

// Ingester writes device readings in two steps: Prepare does the work of
// one reading (id, stored JSON, search values) anywhere, in parallel, and
// Write commits a batch of prepared readings doing little more than COPY.
//
// Write COPYs a batch straight into observation while no reading it is
// given was stored before. A re-sent reading fails that COPY on the
// ingest_key index; the batch is then written again through a staging
// table (INSERT … ON CONFLICT DO NOTHING RETURNING), which finds the
// earlier ids, and so are the batches of the next resendWindow: re-sent
// readings come in bursts (a gateway reconnecting after lost acks), and
// the staging path costs less than a failed COPY. Either way the unique
// index is what makes a reading stored once, across batches, committers,
// instances and crashes. An Ingester is safe for concurrent use.
type Ingester struct {
	s    *Store
	def  *search.Definition
	cols []string
	// resentUntil is when (Unix ns) Write goes back to COPYing straight
	// into observation after a batch with a re-sent reading.
	resentUntil atomic.Int64
	// copyFmt is how readings are encoded for COPY, nil until Write has
	// asked the database (see ingestcopy.go).
	copyFmt atomic.Pointer[copyFormat]
}

// resendWindow is how long Write uses the staging table after a re-sent
// reading.
const resendWindow = 10 * time.Second

// NewIngester returns an Ingester writing to s.
func (s *Store) NewIngester() (*Ingester, error) {
	def, err := s.definition("Observation")
	if err != nil {
		return nil, err
	}
	cols := append([]string{"id", "version_id", "last_updated", "patient_id", "content", "ingest_key"}, indexColumns(def)...)
	return &Ingester{s: s, def: def, cols: cols}, nil
}

// PreparedReading is a reading made ready by Ingester.Prepare: its row
// under a new id, missing only the commit time. A PreparedReading is
// written by one Write at a time (Write stamps it).
type PreparedReading struct {
	Key string
	ID  string
	// The row, as values in the order of Ingester.cols, or encoded as a
	// COPY tuple once the Ingester knows the column types (row is then
	// nil).
	row   []any
	tuple []byte
	// meta is where meta.lastUpdated is, in the content of row or in
	// tuple; -1 when it was not found: res is then kept to make the row
	// again at every Write. lastUpdated is where last_updated's value is
	// in tuple.
	meta, lastUpdated int
	res               *fhir.Resource
}

// Row positions of the values Write changes.
const (
	colLastUpdated = 2
	colContent     = 4
)

// lastUpdatedLayout is how fhir.WithMeta writes meta.lastUpdated: one
// width for every time of years 0001–9999, so that a commit can stamp its
// time over the prepared one.
const lastUpdatedLayout = "2006-01-02T15:04:05.000Z"

// Prepare does the per-reading work of storing o: a new id, the stored
// JSON with id and meta, the search values. A reading the store cannot
// index gives an error (a *fhir.ValidationError) and should be refused
// rather than retried. It touches no database.
func (in *Ingester) Prepare(o IngestObservation) (PreparedReading, error) {
	at := now()
	p, err := in.prepare(o, at)
	if err != nil {
		return p, err
	}
	p.meta = stampAt(p.row[colContent].([]byte), at)
	if p.meta < 0 {
		p.res = o.Resource
		return p, nil
	}
	if f := in.copyFmt.Load(); f != nil {
		if err := p.encode(f); err != nil {
			return PreparedReading{}, fmt.Errorf("ingest %s: %w", o.Key, err)
		}
	}
	return p, nil
}

// encode turns p's row into its COPY tuple.
func (p *PreparedReading) encode(f *copyFormat) error {
	tuple, lastUpdated, content, err := f.encode(p.row)
	if err != nil {
		return err
	}
	p.tuple, p.lastUpdated, p.row = tuple, lastUpdated, nil
	if p.meta >= 0 {
		p.meta += content
	}
	return nil
}

func (in *Ingester) prepare(o IngestObservation, at time.Time) (PreparedReading, error) {
	id, err := newID()
	if err != nil {
		return PreparedReading{}, err
	}
	r, err := in.s.newRow(in.def, o.Resource, id, 1, at)
	if err != nil {
		return PreparedReading{}, fmt.Errorf("ingest %s: %w", o.Key, err)
	}
	row := make([]any, 0, len(in.cols))
	row = append(append(row, r.id, r.version, r.lastUpdated, r.patientID, r.content, o.Key), r.index...)
	if len(row) != len(in.cols) {
		return PreparedReading{}, fmt.Errorf("ingest %s: %d values for %d columns", o.Key, len(row), len(in.cols))
	}
	return PreparedReading{Key: o.Key, ID: id, row: row, meta: -1, lastUpdated: -1}, nil
}

// stampAt returns where in content the meta.lastUpdated of time at is
// written, or -1. WithMeta writes meta first, so the first match is it.
func stampAt(content []byte, at time.Time) int {
	const member = `"lastUpdated":"`
	var buf [64]byte
	needle := at.UTC().AppendFormat(append(buf[:0], member...), lastUpdatedLayout)
	i := bytes.Index(content, append(needle, '"'))
	if i < 0 || len(needle) != len(member)+len(lastUpdatedLayout) {
		return -1
	}
	return i + len(member)
}

// restamp makes p say it is stored at st.at, and encodes it if it is
// still a row.
func (in *Ingester) restamp(p *PreparedReading, f *copyFormat, st commitStamp) error {
	switch {
	case p.tuple != nil && p.meta >= 0:
		copy(p.tuple[p.meta:], st.text)
		copy(p.tuple[p.lastUpdated:], st.value)
		return nil
	case p.meta >= 0:
		copy(p.row[colContent].([]byte)[p.meta:], st.text)
		p.row[colLastUpdated] = st.boxed
	default:
		r, err := in.s.newRow(in.def, p.res, p.ID, 1, st.at)
		if err != nil {
			return fmt.Errorf("ingest %s: %w", p.Key, err)
		}
		p.row = append([]any{r.id, r.version, r.lastUpdated, r.patientID, r.content, p.Key}, r.index...)
	}
	if err := p.encode(f); err != nil {
		return fmt.Errorf("ingest %s: %w", p.Key, err)
	}
	return nil
}

// Write stores prepared readings and dead letters in one transaction,
// stamped with the time of the commit: when it returns nil, all of them
// are committed. Readings whose key is already stored are not stored
// again; their results carry the earlier id.
func (in *Ingester) Write(ctx context.Context, readings []PreparedReading, dead []DeadLetter) ([]IngestResult, error) {
	f, err := in.format(ctx)
	if err != nil {
		return nil, err
	}
	st, err := f.stamp(now())
	if err != nil {
		return nil, err
	}
	tuples := make([][]byte, len(readings))
	results := make([]IngestResult, len(readings))
	byKey := make(map[string][]int, len(readings))
	distinct := true
	for i := range readings {
		p := &readings[i]
		if err := in.restamp(p, f, st); err != nil {
			return nil, err
		}
		tuples[i] = p.tuple
		results[i] = IngestResult{Key: p.Key, ID: p.ID}
		distinct = distinct && byKey[p.Key] == nil
		byKey[p.Key] = append(byKey[p.Key], i)
	}
	if distinct && time.Now().UnixNano() >= in.resentUntil.Load() {
		copyTuples := func(conn *pgconn.PgConn) error {
			if len(tuples) == 0 {
				return nil
			}
			err := f.copyTuples(ctx, conn, "observation", tuples)
			if keyConflict(err) {
				return errResent
			}
			if err != nil {
				return fmt.Errorf("ingest: copy: %w", translate(err))
			}
			return nil
		}
		if len(dead) == 0 {
			// One COPY is atomic on its own: no BEGIN and COMMIT round trips.
			err = in.s.ingestConn(ctx, copyTuples)
		} else {
			err = in.s.ingestTx(ctx, dead, func(tx pgx.Tx) error { return copyTuples(tx.Conn().PgConn()) })
		}
		if !errors.Is(err, errResent) {
			if err != nil {
				return nil, err
			}
			return results, nil
		}
		in.resentUntil.Store(time.Now().Add(resendWindow).UnixNano())
	}
	err = in.s.ingestTx(ctx, dead, func(tx pgx.Tx) error {
		if len(tuples) == 0 {
			return nil
		}
		return insertReadings(ctx, tx, f, in.cols, tuples, results, byKey)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// ingestConn runs fn on a connection of the pool.
func (s *Store) ingestConn(ctx context.Context, fn func(*pgconn.PgConn) error) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("ingest: %w", translate(err))
	}
	defer c.Release()
	return fn(c.Conn().PgConn())
}

// errResent means a batch holds a reading already stored.
var errResent = errors.New("ingest: a reading is already stored")

// keyConflict reports whether err is a unique violation: a reading
// already stored under its key, or under its id by an earlier attempt of
// the same batch.
func keyConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// ingestTx runs write and stores dead in one transaction.
func (s *Store) ingestTx(ctx context.Context, dead []DeadLetter, write func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ingest: %w", translate(err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := write(tx); err != nil {
		return err
	}
	if len(dead) > 0 {
		if err := insertDeadLetters(ctx, tx, dead); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ingest: commit: %w", translate(err))
	}
	return nil
}

// insertReadings copies rows into a per-session staging table, moves them
// into observation skipping known keys, and resolves duplicates to the ids
// already stored. It skips conflicts on any unique index, not only
// ingest_key: a batch retried after a commit whose outcome was lost (the
// connection broke during COMMIT) has the ids that commit stored, and its
// readings are then found by key like any re-sent reading.
func insertReadings(ctx context.Context, tx pgx.Tx, f *copyFormat, cols []string, tuples [][]byte, results []IngestResult, byKey map[string][]int) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS observation_stage (LIKE observation INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("ingest: staging table: %w", translate(err))
	}
	if err := f.copyTuples(ctx, tx.Conn().PgConn(), "observation_stage", tuples); err != nil {
		return fmt.Errorf("ingest: copy: %w", translate(err))
	}
	list := joinCols(cols)
	inserted, err := tx.Query(ctx, "INSERT INTO observation ("+list+") SELECT "+list+
		" FROM observation_stage ON CONFLICT DO NOTHING RETURNING ingest_key, id")
	if err != nil {
		return fmt.Errorf("ingest: insert: %w", translate(err))
	}
	stored := make(map[string]string, len(tuples))
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
	found := 0
	for earlier.Next() {
		var key, id string
		if err := earlier.Scan(&key, &id); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		for _, i := range byKey[key] {
			results[i].ID, results[i].Duplicate = id, true
		}
		found++
	}
	if err := earlier.Err(); err != nil {
		return fmt.Errorf("ingest: duplicates: %w", translate(err))
	}
	if found != len(missing) {
		// Skipped for a conflict on something other than its key: never
		// report a reading stored that is not.
		return fmt.Errorf("ingest: %d readings neither stored nor stored before", len(missing)-found)
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
