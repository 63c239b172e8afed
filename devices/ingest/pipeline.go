package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/fhir"
)

// ErrStopped is returned by Submit once the pipeline is shutting down.
var ErrStopped = errors.New("ingest pipeline is stopped")

// Config tunes the pipeline.
type Config struct {
	// MaxBatch caps the readings committed together.
	MaxBatch int
	// QueueSize is how many messages may wait for a commit before Submit
	// blocks (back-pressure: devices wait for their PUBACKs).
	QueueSize int
	// Limits bound measurement times.
	Limits devices.Limits
	// CommitTimeout bounds one commit attempt.
	CommitTimeout time.Duration
	// DrainTimeout bounds the last commit on shutdown.
	DrainTimeout time.Duration
	// BindingTTL is how long a device lookup is remembered.
	BindingTTL time.Duration
	// Committers is how many batches commit at once: while one waits for
	// its flush, the next is written. Outcomes of different batches may
	// then come out of order; the embedded broker restores each
	// connection's PUBACK order itself.
	Committers int
	// Judge interprets each reading before it is stored
	// (Observation.interpretation); nil stores readings without one.
	Judge devices.Judge
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		MaxBatch: 500, QueueSize: 20_000, Limits: devices.DefaultLimits(),
		CommitTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, BindingTTL: 30 * time.Second,
		Committers: 2,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.MaxBatch < 1 || c.QueueSize < 1 || c.Committers < 1 {
		return fmt.Errorf("ingest: MaxBatch, QueueSize and Committers must be at least 1 (got %d, %d, %d)", c.MaxBatch, c.QueueSize, c.Committers)
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// Pipeline batches device messages into commits.
type Pipeline struct {
	sink     Sink
	bindings *bindingCache
	decoder  *devices.Decoder
	types    *fhir.Registry
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	queue    chan *job
	stopping chan struct{}
	stopOnce sync.Once
}

// New returns a pipeline writing to sink. Register its metrics with reg
// (may be nil).
func New(sink Sink, bindings Bindings, types *fhir.Registry, cfg Config, reg prometheus.Registerer, log *slog.Logger) *Pipeline {
	return &Pipeline{
		sink: sink, bindings: newBindingCache(bindings, cfg.BindingTTL), decoder: devices.NewDecoder(), types: types, cfg: cfg, log: log,
		metrics:  newMetrics(reg),
		queue:    make(chan *job, cfg.QueueSize),
		stopping: make(chan struct{}),
	}
}

// job is one message, decoded, waiting for its commit.
type job struct {
	msg        Message
	rows       []Row
	readingIDs []string // per row, the device's reading id
	dead       *DeadLetter
	rejected   []*devices.RejectError
	done       func(Outcome)
}

// Submit decodes m and queues it; done is called once, after the commit
// (or with Committed false when the pipeline stops first). It blocks while
// the queue is full.
func (p *Pipeline) Submit(ctx context.Context, m Message, done func(Outcome)) error {
	select {
	case <-p.stopping:
		return ErrStopped
	default:
	}
	// The device lookup needs the database: while it is unreachable, wait
	// (the device waits for its PUBACK) rather than refuse the message.
	b, err := p.waitForBinding(ctx, m.DeviceID)
	if err != nil && !errors.Is(err, errUnknownDevice) {
		return err
	}
	j := p.prepare(m, b, err)
	j.done = done
	p.metrics.message(m.Kind)
	select {
	case p.queue <- j:
		p.metrics.queued.Inc()
		return nil
	case <-p.stopping:
		return ErrStopped
	case <-ctx.Done():
		return fmt.Errorf("ingest submit: %w", ctx.Err())
	}
}

// Run commits queued messages with Committers goroutines until ctx ends,
// then commits what is still queued (within DrainTimeout) and returns.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range max(p.cfg.Committers, 1) {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.queue:
					p.commit(ctx, p.gather(j))
				}
			}
		})
	}
	wg.Wait()
	p.drain(ctx)
	return nil
}

// gather takes what is queued behind first, up to MaxBatch readings.
func (p *Pipeline) gather(first *job) []*job {
	batch := []*job{first}
	n := max(len(first.rows), 1)
	for n < p.cfg.MaxBatch {
		select {
		case j := <-p.queue:
			batch = append(batch, j)
			n += max(len(j.rows), 1)
		default:
			return batch
		}
	}
	return batch
}

// commit writes a batch, retrying with back-off while the database is
// unreachable: consumption pauses (devices wait for their acks) and
// resumes by itself. It gives up only when ctx ends.
func (p *Pipeline) commit(ctx context.Context, batch []*job) {
	n := 0
	for _, j := range batch {
		n += len(j.rows)
	}
	rows := make([]Row, 0, n)
	var dead []DeadLetter
	p.metrics.queued.Sub(float64(len(batch)))
	for _, j := range batch {
		rows = append(rows, j.rows...)
		if j.dead != nil {
			dead = append(dead, *j.dead)
		}
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.CommitTimeout)
		stored, err := p.sink.WriteBatch(cctx, rows, dead)
		cancel()
		if err == nil {
			p.metrics.observeCommit(time.Since(start), len(rows), len(dead))
			p.finish(batch, stored)
			return
		}
		p.metrics.commitErrors.Inc()
		p.log.WarnContext(ctx, "ingest: commit failed, retrying", "attempt", attempt, "readings", len(rows), "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			p.abandon(batch)
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// finish tells every message of a committed batch its outcome, in order.
func (p *Pipeline) finish(batch []*job, stored []Stored) {
	duplicates := 0
	for _, s := range stored {
		if s.Duplicate {
			duplicates++
		}
	}
	p.metrics.duplicates.Add(float64(duplicates))
	p.metrics.stored.Add(float64(len(stored) - duplicates))
	i := 0
	for _, j := range batch {
		mine := stored[i : i+len(j.rows)]
		i += len(j.rows)
		j.done(outcome(j, mine))
	}
}

// abandon answers messages that could not be committed: not acknowledged.
func (p *Pipeline) abandon(batch []*job) {
	for _, j := range batch {
		j.done(Outcome{})
	}
}

// drain commits what is queued at shutdown and refuses what comes later.
func (p *Pipeline) drain(ctx context.Context) {
	p.stopOnce.Do(func() { close(p.stopping) })
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	defer cancel()
	for {
		select {
		case j := <-p.queue:
			p.commit(dctx, p.gather(j))
		default:
			return
		}
	}
}

// waitForBinding looks the device up, retrying with back-off while the
// lookup fails for a reason other than an unknown device (errUnknownDevice
// is returned), until it answers or ctx ends.
func (p *Pipeline) waitForBinding(ctx context.Context, deviceID string) (Binding, error) {
	backoff := 50 * time.Millisecond
	for {
		b, err := p.bindings.get(ctx, deviceID)
		if err == nil || errors.Is(err, errUnknownDevice) {
			return b, err
		}
		p.log.WarnContext(ctx, "ingest: device lookup failed, waiting", "device", deviceID, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return Binding{}, fmt.Errorf("ingest submit: device lookup: %w", err)
		case <-p.stopping:
			return Binding{}, ErrStopped
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
