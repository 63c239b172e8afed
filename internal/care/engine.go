package care

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
)

// NOTIFY channels the engine listens on (migration 00012).
const (
	channelOutbox = "vidda_care"
	channelLimits = "vidda_care_limits"
	// ChannelWorklist is NOTIFYed, with the patient id, on every Task
	// write (migration 00011).
	ChannelWorklist = "vidda_worklist"
)

// leaderLock is the advisory lock of the instance that runs the worklist.
const leaderLock = "vidda.care"

// EngineConfig tunes the Engine.
type EngineConfig struct {
	// Poll is how often the outbox is looked at without a NOTIFY, and how
	// often an instance that does not lead tries to.
	Poll time.Duration
	// Batch is how many flagged readings one round handles.
	Batch int
}

// DefaultEngineConfig returns the settings used unless told otherwise.
func DefaultEngineConfig() EngineConfig { return EngineConfig{Poll: 2 * time.Second, Batch: 200} }

// Validate reports settings that cannot work.
func (c EngineConfig) Validate() error {
	if c.Poll <= 0 || c.Batch < 1 {
		return fmt.Errorf("care: Poll must be positive and Batch at least 1 (got %v, %d)", c.Poll, c.Batch)
	}
	return nil
}

// Engine is the clinical-review engine of one vidda instance. Every
// instance runs one: each keeps its Interpreter's cache fresh (NOTIFY
// vidda_care_limits), and the one holding the advisory lock "vidda.care"
// turns flagged readings into worklist Tasks and runs the missed-
// measurement check. The lock lives with a connection of the engine's
// own, so a crashed leader hands over to the next instance.
type Engine struct {
	pool  *pgxpool.Pool
	db    *DB
	in    *Interpreter
	wl    *Worklist
	rules *Rules
	cfg   EngineConfig
	log   *slog.Logger
}

// NewEngine returns an Engine over pool, writing Tasks to st. Register
// serves its metrics.
func NewEngine(pool *pgxpool.Pool, st Store, types *fhir.Registry, in *Interpreter, cfg EngineConfig, log *slog.Logger) *Engine {
	db := NewDB(pool)
	wl := NewWorklist(st, db, types)
	wl.m = in.m
	return &Engine{pool: pool, db: db, in: in, wl: wl, rules: in.Rules(), cfg: cfg, log: log}
}

// preloadTimeout bounds one Preload of every patient's limits (two
// queries); past it, patients load one by one as their readings come.
const preloadTimeout = 30 * time.Second

// Interpreter returns the engine's Interpreter (the ingestion hook).
func (e *Engine) Interpreter() *Interpreter { return e.in }

// Worklist returns the engine's Worklist (Acknowledge).
func (e *Engine) Worklist() *Worklist { return e.wl }

// Run works until ctx ends: it reconnects after a lost connection and
// returns nil when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := e.session(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the session ends with ctx: a stop, not a failure
		}
		e.log.WarnContext(ctx, "care: engine connection lost, reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// session is one connection's life: listen, lead when possible, work.
func (e *Engine) session(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("care: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, ch := range []string{channelOutbox, channelLimits} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("care: listen: %w", err)
		}
	}
	// What changed while no connection listened went unheard.
	e.in.InvalidateAll()
	leading := false
	defer e.in.m.leading.Store(false) // the lock goes with the connection
	nextMissed, nextPreload := time.Now(), time.Now()
	for {
		// Every instance judges readings, so every one preloads: twice
		// per CacheTTL, so that the ingest path finds every patient
		// cached (a Goal or CarePlan write reloads just that patient).
		if now := time.Now(); !now.Before(nextPreload) {
			// Bounded: the leader's outbox, missed check and NOTIFYs wait
			// on this loop meanwhile.
			pctx, cancel := context.WithTimeout(ctx, preloadTimeout)
			err := e.in.Preload(pctx)
			cancel()
			if err != nil {
				e.log.WarnContext(ctx, "care: preloading every patient's limits failed; they load one by one", "err", err)
				e.in.m.fail(stageLimits)
			}
			nextPreload = now.Add(max(e.in.cfg.CacheTTL/2, time.Second))
		}
		if !leading {
			if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", leaderLock).Scan(&leading); err != nil {
				return fmt.Errorf("care: lock: %w", err)
			}
			if leading {
				e.log.InfoContext(ctx, "care: this instance runs the worklist")
				e.in.m.leading.Store(true)
			}
		}
		wait := e.cfg.Poll
		if leading {
			more := e.drain(ctx)
			if now := time.Now(); !now.Before(nextMissed) {
				res, err := e.checkMissed(ctx, now)
				if err != nil {
					e.log.WarnContext(ctx, "care: missed-measurement check failed", "err", err)
					e.in.m.fail(stageMissed)
				} else if res.Opened+res.Resolved > 0 {
					e.log.InfoContext(ctx, "care: missed-measurement check", "planned", res.Planned, "opened", res.Opened, "resolved", res.Resolved)
				}
				nextMissed = now.Add(e.rules.MissedEvery)
			}
			if more {
				wait = 0
			}
			wait = min(wait, max(time.Until(nextMissed), 0))
		}
		if err := e.listen(ctx, conn, wait); err != nil {
			return err
		}
	}
}

// listen waits up to d for notifications, handling every one that is
// already there; limits notifications invalidate the cache.
func (e *Engine) listen(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, d)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return fmt.Errorf("care: %w", ctx.Err())
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			return nil
		default:
			return fmt.Errorf("care: wait: %w", err)
		}
		if n.Channel == channelLimits {
			if n.Payload == "" {
				e.in.InvalidateAll()
			} else {
				e.in.Invalidate(n.Payload)
			}
		}
		d = 0 // take what else is queued, then go back to work
	}
}

// drain handles one batch of the outbox and reports whether more may
// wait.
func (e *Engine) drain(ctx context.Context) bool {
	handled, total, err := e.round(ctx)
	if err != nil {
		e.log.WarnContext(ctx, "care: worklist round failed", "err", err)
		e.in.m.fail(stageRound)
		return false
	}
	return total == e.cfg.Batch && handled > 0
}

// round turns the oldest flagged readings into Tasks and removes the ones
// handled. A reading whose Task could not be written stays for the next
// round.
func (e *Engine) round(ctx context.Context) (handled, total int, err error) {
	rows, err := e.db.outbox(ctx, e.cfg.Batch)
	if err != nil || len(rows) == 0 {
		return 0, 0, err
	}
	done := make([]int64, 0, len(rows))
	for _, r := range rows {
		if err := e.review(ctx, r); err != nil {
			e.log.WarnContext(ctx, "care: reading not reviewed yet", "observation", r.id, "patient", r.patient, "err", err)
			e.in.m.fail(stageReview)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		done = append(done, r.seq)
	}
	if len(done) > 0 {
		if err := e.db.done(context.WithoutCancel(ctx), done); err != nil {
			return 0, len(rows), err
		}
		e.in.m.review(len(done))
	}
	return len(done), len(rows), nil
}

// review raises the Task of one flagged reading.
func (e *Engine) review(ctx context.Context, r flagged) error {
	if r.content == nil {
		return nil // deleted since: nothing to review
	}
	p, err := e.rules.reviewProblem(r.id, r.patient, r.content)
	if err != nil {
		e.log.WarnContext(ctx, "care: flagged reading not understood, skipped", "observation", r.id, "err", err)
		e.in.m.fail(stageRule)
		return nil
	}
	if p == nil {
		return nil
	}
	return e.wl.raise(ctx, p)
}
