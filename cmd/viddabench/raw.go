package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// insertSQL is the raw ceiling: the row a create writes, as one statement
// in its own (autocommitted, so durable) transaction.
const insertSQL = `INSERT INTO observation
	(id, version_id, last_updated, patient_id, content, code, category, status, subject, date_start, date_end)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// rawInserts runs clients pgx connections, each inserting one row per
// transaction until d has passed, and returns inserts per second.
func rawInserts(ctx context.Context, dbURL string, clients int, d time.Duration) (summary, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return summary{}, fmt.Errorf("raw inserts: %w", err)
	}
	cfg.MaxConns = int32(clients) // clients <= maxClients
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return summary{}, fmt.Errorf("raw inserts: %w", err)
	}
	defer pool.Close()
	// Open every connection before the clock starts.
	conns := make([]*pgxpool.Conn, 0, clients)
	for range clients {
		c, err := pool.Acquire(ctx)
		if err != nil {
			for _, c := range conns {
				c.Release()
			}
			return summary{}, fmt.Errorf("raw inserts: connect: %w", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}

	workers := make([]worker, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() { workers[w] = rawWorker(ctx, pool, w, deadline) })
	}
	wg.Wait()
	return summarize(time.Since(start), workers), nil
}

func rawWorker(ctx context.Context, pool *pgxpool.Pool, w int, deadline time.Time) worker {
	var res worker
	code := tokens("http://loinc.org", "85354-9")
	category := tokens("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
	status := tokens("http://hl7.org/fhir/observation-status", "final")
	for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
		r := newReading(w, seq)
		id := newUUID()
		at := time.Now().UTC().Truncate(time.Millisecond)
		body := r.storedBody(id, at)
		t0 := time.Now()
		_, err := pool.Exec(ctx, insertSQL, id, int64(1), at, r.patient, body,
			code, category, status, []string{"Patient/" + r.patient}, r.effective, r.effective.Add(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted, not a failed insert
			}
			res.fail(err.Error())
			continue
		}
		res.lat = append(res.lat, time.Since(t0))
	}
	return res
}
