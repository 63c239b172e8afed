package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/devices/broker"
	"github.com/vidda/vidda/devices/loadgen"
)

// naivePoolSize is the naive consumer's pgx pool: generous (vidda's own
// pool is pgx's default, max(4, nproc)), so the baseline is not starved
// of connections.
const naivePoolSize = 16

// inProcess runs vidda's embedded broker (devices/broker, with vidda's
// defaults) in this process with h as its Handler, floods it with the
// homes and returns what the load generator saw.
func inProcess(ctx context.Context, homes []home, h broker.Handler, load loadgen.Load, pg watched) (res loadgen.Result, cpu cpuUse, err error) {
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0"}, newRegistry(homes), h, nil)
	if err != nil {
		return loadgen.Result{}, cpuUse{}, err
	}
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(bctx) }()
	defer func() {
		stop()
		// Run returns once every goroutine it started has ended.
		err = errors.Join(err, <-done)
	}()
	select {
	case <-b.Ready():
	case err := <-done:
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("in-process broker: %w", err)
	case <-ctx.Done():
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("in-process broker: %w", ctx.Err())
	}
	return flood(ctx, b.Addr(), homes, loadgen.ConfirmPuback, load, []watched{pg}, phaseHooks{})
}

// noopHandler acknowledges every message at once and stores nothing: the
// broker and the load generator alone.
func noopHandler() broker.Handler {
	return broker.HandlerFunc(func(_ context.Context, _ broker.Message, ack func(broker.Result)) {
		ack(broker.Result{})
	})
}

// naiveHandler is the consumer vidda's design replaces: in the broker's
// read loop it maps the reading like vidda, INSERTs it in its own
// (autocommitted) transaction, then acknowledges.
type naiveHandler struct {
	pool *pgxpool.Pool
	rows *rowMaker
	reg  registry
	sql  string

	mu       sync.Mutex
	errors   int
	firstErr string
}

func newNaiveHandler(pool *pgxpool.Pool, reg registry) (*naiveHandler, error) {
	m, err := newRowMaker()
	if err != nil {
		return nil, err
	}
	params := make([]string, len(m.cols))
	for i := range params {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	sql := "INSERT INTO observation (" + strings.Join(m.cols, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	return &naiveHandler{pool: pool, rows: m, reg: reg, sql: sql}, nil
}

// errUnknownDevice means a message came from a device no home has.
var errUnknownDevice = errors.New("unknown device")

// Handle implements broker.Handler.
func (h *naiveHandler) Handle(ctx context.Context, m broker.Message, ack func(broker.Result)) {
	err := h.insert(ctx, m)
	if err == nil {
		ack(broker.Result{})
		return
	}
	if ctx.Err() != nil {
		return // stopping: not acknowledged, as vidda would do
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.errors == 0 {
		h.firstErr = err.Error()
	}
	h.errors++
}

func (h *naiveHandler) insert(ctx context.Context, m broker.Message) error {
	patient, ok := h.reg.patientOf(m.DeviceID)
	if !ok {
		return fmt.Errorf("%w %s", errUnknownDevice, m.DeviceID)
	}
	row, err := h.rows.row(m.Payload, m.DeviceID, patient, time.Now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return err
	}
	if _, err := h.pool.Exec(ctx, h.sql, row...); err != nil {
		return fmt.Errorf("insert observation: %w", err)
	}
	return nil
}

func (h *naiveHandler) failures() (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.errors, h.firstErr
}

// naiveConsumer floods a naiveHandler.
func naiveConsumer(ctx context.Context, dbURL string, homes []home, load loadgen.Load, pg watched) (loadgen.Result, cpuUse, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("naive consumer: %w", err)
	}
	cfg.MaxConns = naivePoolSize
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("naive consumer: %w", err)
	}
	defer pool.Close()
	if err := warmPool(ctx, pool, naivePoolSize); err != nil {
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("naive consumer: %w", err)
	}
	h, err := newNaiveHandler(pool, newRegistry(homes))
	if err != nil {
		return loadgen.Result{}, cpuUse{}, fmt.Errorf("naive consumer: %w", err)
	}
	res, cpu, err := inProcess(ctx, homes, h, load, pg)
	if n, first := h.failures(); n > 0 && err == nil {
		err = fmt.Errorf("naive consumer: %d inserts failed, first: %s", n, first)
	}
	return res, cpu, err
}
