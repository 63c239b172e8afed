package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir/search"
)

// Config tunes the Writer.
type Config struct {
	// Enabled records AuditEvents (VIDDA_AUDIT=on, the default). Off is
	// for measuring what auditing costs, never for production.
	Enabled bool
	// Instance names this vidda instance as the events' observer
	// (VIDDA_INSTANCE_ID).
	Instance string
	// QueueSize is how many events may wait for the database. When it is
	// full, Record blocks: back-pressure, never a dropped event.
	QueueSize int
	// MaxBatch caps the events written by one COPY.
	MaxBatch int
	// FlushEvery is how long the first event of a batch waits for others.
	FlushEvery time.Duration
	// WriteTimeout bounds one attempt to write a batch; a failed attempt
	// is retried with back-off.
	WriteTimeout time.Duration
	// DrainTimeout bounds how long Run keeps retrying after its context
	// has ended; what it could not write by then is counted as lost.
	DrainTimeout time.Duration
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Enabled:      true,
		Instance:     "vidda",
		QueueSize:    64 << 10,
		MaxBatch:     2048,
		FlushEvery:   50 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		DrainTimeout: 30 * time.Second,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.QueueSize < 1 || c.MaxBatch < 1:
		return fmt.Errorf("audit: QueueSize and MaxBatch must be at least 1 (got %d, %d)", c.QueueSize, c.MaxBatch)
	case c.FlushEvery <= 0 || c.WriteTimeout <= 0 || c.DrainTimeout <= 0:
		return errors.New("audit: FlushEvery, WriteTimeout and DrainTimeout must be positive")
	case c.Instance == "":
		return errors.New("audit: Instance must name this instance")
	}
	return nil
}

// ParseSwitch reads VIDDA_AUDIT: "on" (or true, 1) or "off" (false, 0).
func ParseSwitch(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "1", "yes":
		return true, nil
	case "off", "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("VIDDA_AUDIT: %q is not on or off", s)
}

// ErrNotWritten is what Run returns, wrapped with a count, when events
// could not be written before DrainTimeout: the database was unreachable
// while vidda stopped.
var ErrNotWritten = errors.New("audit events not written")

// Writer stores AuditEvents. Record queues an event and returns without a
// database round trip; Run writes what is queued in batches, one COPY
// each, and on shutdown writes everything queued before it returns.
// WriteNow writes at once, for commands that have no Run.
type Writer struct {
	pool    *pgxpool.Pool
	cfg     Config
	log     *slog.Logger
	layout  *layout
	queue   chan *Event
	metrics *writerMetrics
	// full tells Run that a batch's worth waits (fullAt events or more).
	full   chan struct{}
	fullAt int

	// mu orders Record against the end of Run: Record holds it shared
	// while it queues, and Run takes it exclusively to seal the queue, so
	// that no event lands in the queue after Run has looked for the last.
	mu     sync.RWMutex
	sealed bool
}

// NewWriter returns a writer over pool. params is the search registry
// whose AuditEvent parameters the stored columns must match.
func NewWriter(pool *pgxpool.Pool, params *search.Registry, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l, err := newLayout(params, cfg.Instance)
	if err != nil {
		return nil, err
	}
	w := &Writer{
		pool: pool, cfg: cfg, log: log, layout: l, queue: make(chan *Event, cfg.QueueSize),
		full: make(chan struct{}, 1), fullAt: max(1, min(cfg.MaxBatch, cfg.QueueSize/2)),
	}
	w.metrics = newWriterMetrics(reg, func() float64 { return float64(len(w.queue)) })
	return w, nil
}

// Record queues e for writing. It does not wait for the database, only,
// when the queue is full, for room in it: an event is never dropped. If
// ctx ends while it waits, or Run has already stopped, it writes e itself.
//
// e is kept until it is written, after the request has ended: its strings
// must be the caller's own, not views of a buffer the HTTP server reuses
// (copy what comes from a *fiber.Ctx with strings.Clone).
func (w *Writer) Record(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	w.metrics.events.Inc()
	ev := &e
	w.mu.RLock()
	if !w.sealed {
		queued := false
		select {
		case w.queue <- ev:
			queued = true
		default:
			w.signalFull() // the writer may be asleep until its next tick
			select {
			case w.queue <- ev:
				queued = true
			case <-ctx.Done():
			}
		}
		if queued {
			w.mu.RUnlock()
			if len(w.queue) >= w.fullAt {
				w.signalFull()
			}
			return
		}
	}
	w.mu.RUnlock()
	// Late or impatient: write it here rather than lose it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.WriteTimeout)
	defer cancel()
	if err := w.WriteNow(wctx, e); err != nil {
		w.metrics.lost.Inc()
		w.log.ErrorContext(ctx, "audit: event lost", "kind", e.Kind.String(), "request_id", e.RequestID, "err", err)
	}
}

func (w *Writer) signalFull() {
	select {
	case w.full <- struct{}{}:
	default:
	}
}

// WriteNow writes events at once, in one COPY, and returns when they are
// committed.
func (w *Writer) WriteNow(ctx context.Context, events ...Event) error {
	batch := make([]*Event, len(events))
	for i := range events {
		if events[i].Time.IsZero() {
			events[i].Time = time.Now()
		}
		batch[i] = &events[i]
	}
	rows, err := w.prepare(batch)
	if err != nil {
		return err
	}
	return w.copy(ctx, rows)
}

// Run writes queued events until ctx ends, then everything still queued,
// and returns. Start it before anything records; stop it after the HTTP
// server and every other recorder have drained.
func (w *Writer) Run(ctx context.Context) error {
	// The writer wakes on a tick, or when a batch's worth is waiting, and
	// never for one event: a Record then costs a request no more than a
	// send into a buffered channel, without waking another goroutine.
	tick := time.NewTicker(w.cfg.FlushEvery)
	defer tick.Stop()
	batch := make([]*Event, 0, w.cfg.MaxBatch)
	for {
		select {
		case <-ctx.Done():
			return w.drain(ctx, batch[:0], 0)
		case <-tick.C:
		case <-w.full:
		}
		// One batch per wake-up, and more only while a full batch waits:
		// what queued during a write waits for the next tick. Writing it
		// at once made a COPY (and a commit) of the few events one write
		// takes to arrive, and the commits, not the rows, cost PostgreSQL
		// most of its time (make bench step 7).
		for first := true; ctx.Err() == nil && (first && len(w.queue) > 0 || len(w.queue) >= w.fullAt); first = false {
			batch = batch[:0]
			for len(batch) < w.cfg.MaxBatch && len(w.queue) > 0 {
				batch = append(batch, <-w.queue)
			}
			if err := w.write(ctx, batch, time.Time{}); err != nil {
				// Only once ctx has ended and the drain deadline has passed.
				return w.drain(ctx, batch[:0], len(batch))
			}
			clear(batch)
		}
	}
}

// drain seals the queue and writes everything in it. Events that cannot
// be written by the drain deadline are counted as lost and reported; lost
// starts with those Run already gave up on.
func (w *Writer) drain(ctx context.Context, batch []*Event, lost int) error {
	deadline := time.Now().Add(w.cfg.DrainTimeout)
	sealed := make(chan struct{})
	go func() {
		// Waits for every Record that is queueing now; later ones see
		// sealed and write their event themselves.
		w.mu.Lock()
		w.sealed = true
		w.mu.Unlock()
		close(sealed)
	}()
	for done := false; !done; {
		batch = batch[:0]
	take:
		for len(batch) < w.cfg.MaxBatch {
			select {
			case e := <-w.queue:
				batch = append(batch, e)
			default:
				break take
			}
		}
		if len(batch) == 0 {
			select {
			case <-sealed:
				done = len(w.queue) == 0
				continue
			case e := <-w.queue:
				batch = append(batch, e)
			}
		}
		if lost > 0 {
			lost += len(batch) // past the deadline: only empty the queue
			continue
		}
		if err := w.write(ctx, batch, deadline); err != nil {
			lost += len(batch)
		}
	}
	if lost > 0 {
		w.metrics.lost.Add(float64(lost))
		return fmt.Errorf("audit: %d events: %w", lost, ErrNotWritten)
	}
	return nil
}

// write writes batch, retrying with back-off until it succeeds or, with a
// deadline, until that has passed. A batch is prepared once: its ids are
// fixed, and a retry leaves out rows an earlier attempt did commit.
func (w *Writer) write(ctx context.Context, batch []*Event, deadline time.Time) error {
	rows, err := w.prepare(batch)
	if err != nil {
		// Only a broken clock or random source gets here; nothing to retry.
		w.metrics.lost.Add(float64(len(batch)))
		w.log.ErrorContext(ctx, "audit: events lost", "events", len(batch), "err", err)
		return nil
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if deadline.IsZero() && ctx.Err() != nil {
			// Stopping while the database fails: retry only so long.
			deadline = time.Now().Add(w.cfg.DrainTimeout)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.WriteTimeout)
		if attempt > 1 {
			rows, err = w.unwritten(wctx, rows)
		}
		if err == nil {
			err = w.copy(wctx, rows)
		}
		cancel()
		if err == nil {
			return nil
		}
		w.metrics.failures.Inc()
		if !deadline.IsZero() && time.Now().Add(backoff).After(deadline) {
			w.log.ErrorContext(ctx, "audit: giving up on a batch at shutdown", "events", len(batch), "attempts", attempt, "err", err)
			return err
		}
		w.log.WarnContext(ctx, "audit: write failed, retrying", "events", len(batch), "attempt", attempt, "retry_in", backoff, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Writer) prepare(batch []*Event) ([]row, error) {
	rows := make([]row, 0, len(batch))
	var err error
	for _, e := range batch {
		if rows, err = w.layout.rows(e, rows); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// copy writes rows in one COPY, which commits them all or none.
func (w *Writer) copy(ctx context.Context, rows []row) error {
	if len(rows) == 0 {
		return nil
	}
	n, err := w.pool.CopyFrom(ctx, pgx.Identifier{recordTable}, w.layout.cols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		return rows[i], nil
	}))
	if err != nil {
		return fmt.Errorf("audit: copy %d events: %w", len(rows), err)
	}
	w.metrics.written.Add(float64(n))
	w.metrics.batch.Observe(float64(n))
	return nil
}

// unwritten leaves out of rows those a failed attempt committed after all
// (the commit went through, its answer did not).
func (w *Writer) unwritten(ctx context.Context, rows []row) ([]row, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r[0].(string) //nolint:forcetypeassert // column 0 is the id, set by rows
	}
	got, err := w.pool.Query(ctx, "SELECT id FROM "+recordTable+" WHERE id = ANY($1::text[])", ids)
	if err != nil {
		return rows, fmt.Errorf("audit: check an earlier attempt: %w", err)
	}
	written, err := pgx.CollectRows(got, pgx.RowTo[string])
	if err != nil {
		return rows, fmt.Errorf("audit: check an earlier attempt: %w", err)
	}
	if len(written) == 0 {
		return rows, nil
	}
	out := rows[:0:0]
	for _, r := range rows {
		if id, _ := r[0].(string); !containsString(written, id) {
			out = append(out, r)
		}
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type writerMetrics struct {
	events, written, failures, lost prometheus.Counter
	batch                           prometheus.Histogram
}

func newWriterMetrics(reg prometheus.Registerer, queued func() float64) *writerMetrics {
	m := &writerMetrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_audit_events_total", Help: "Audit events recorded.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_audit_written_total", Help: "AuditEvent rows written (an event about several patients is one row each).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_audit_write_failures_total", Help: "Failed attempts to write a batch of AuditEvents (each is retried).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vidda_audit_lost_total", Help: "Audit events that could not be written at all (should stay 0).",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vidda_audit_batch_rows", Help: "AuditEvent rows per COPY.",
			Buckets: []float64{1, 4, 16, 64, 256, 1024, 4096},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.written, m.failures, m.lost, m.batch, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vidda_audit_queue_length", Help: "Audit events waiting to be written.",
		}, queued))
	}
	return m
}
