package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// copyBatch is the rows of one ceiling commit: vidda's MaxBatch.
const copyBatch = 500

// ceilingPrefix starts the reading ids of the ceiling's rows.
const ceilingPrefix = "c-"

// copyCeiling writes vidda's observation rows straight into the table
// with pgx CopyFrom, copyBatch rows per transaction, on conns connections
// until d has passed. Its latencies are per commit.
func copyCeiling(ctx context.Context, dbURL string, homes []home, conns int, d time.Duration) (summary, error) {
	m, err := newRowMaker()
	if err != nil {
		return summary{}, err
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	// One template per home and reading type; row i is home i%n's.
	templates := make([]*rowTemplate, 0, 5*len(homes))
	for seq := range 5 {
		for _, h := range homes {
			t, err := newRowTemplate(m, h, ceilingPrefix, seq, at.Add(-time.Hour))
			if err != nil {
				return summary{}, fmt.Errorf("copy ceiling: %w", err)
			}
			templates = append(templates, t)
		}
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return summary{}, fmt.Errorf("copy ceiling: %w", err)
	}
	cfg.MaxConns = int32(conns) //nolint:gosec // conns ≤ maxClients
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return summary{}, fmt.Errorf("copy ceiling: %w", err)
	}
	defer pool.Close()
	if err := warmPool(ctx, pool, conns); err != nil {
		return summary{}, fmt.Errorf("copy ceiling: %w", err)
	}
	workers := make([]worker, conns)
	rows := make([]int, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			workers[w], rows[w] = copyWorker(ctx, pool, m.cols, templates, w, conns, deadline)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := summarize(elapsed, workers)
	s.Count = 0
	for _, n := range rows {
		s.Count += n
	}
	s.PerSecond = float64(s.Count) / elapsed.Seconds()
	return s, nil
}

// warmPool opens n connections before the clock starts.
func warmPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// copyWorker commits batches until deadline; worker w of n takes every
// n-th sequence number, so rows never repeat a key.
func copyWorker(ctx context.Context, pool *pgxpool.Pool, cols []string, templates []*rowTemplate, w, n int, deadline time.Time) (worker, int) {
	var res worker
	stored := 0
	batch := make([][]any, copyBatch)
	seq := w
	for ctx.Err() == nil && time.Now().Before(deadline) {
		for i := range batch {
			batch[i] = templates[seq%len(templates)].copyOf(ceilingPrefix, seq)
			seq += n
		}
		t0 := time.Now()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"observation"}, cols, pgx.CopyFromRows(batch))
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			res.fail(err.Error())
			continue
		}
		res.lat = append(res.lat, time.Since(t0))
		stored += len(batch)
	}
	return res, stored
}
