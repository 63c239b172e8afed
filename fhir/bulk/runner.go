package bulk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Run runs jobs with Config.Workers workers and deletes expired ones until
// ctx ends. A run cut short by ctx leaves its job running in the
// database, with its lock released: the next runner to look (this
// instance restarted, or another) starts it again.
func (e *Exporter) Run(ctx context.Context) error {
	if err := os.MkdirAll(e.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("VIDDA_EXPORT_DIR: %w", err)
	}
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() { e.work(ctx) })
	}
	wg.Go(func() { e.sweepLoop(ctx) })
	wg.Wait()
	return nil
}

// work claims and runs jobs one after the other; idle, it waits for a
// job queued here or the next poll.
func (e *Exporter) work(ctx context.Context) {
	for ctx.Err() == nil {
		ran, err := e.runOne(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			e.log.ErrorContext(ctx, "export: claim a job", "err", err)
		case ran:
			continue
		}
		t := time.NewTimer(e.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// runOne claims a job and runs it; false when there was none.
func (e *Exporter) runOne(ctx context.Context) (bool, error) {
	claim, err := e.st.ClaimExportJob(ctx, e.cfg.Owner, e.cfg.MaxAttempts, e.cfg.TTL)
	if err != nil || claim == nil {
		return false, err
	}
	defer claim.Release(ctx)
	e.execute(ctx, claim)
	return true, nil
}

func (e *Exporter) sweepLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.Sweep)
	defer t.Stop()
	for {
		if err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
			e.log.ErrorContext(ctx, "export: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes the jobs whose files expired, with their files, and the
// directories of jobs that are gone (cancelled on another instance).
func (e *Exporter) Sweep(ctx context.Context) error {
	expired, err := e.st.ExpireExportJobs(ctx, time.Now())
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range expired {
		if jobIDPattern.MatchString(id) {
			errs = append(errs, os.RemoveAll(filepath.Join(e.cfg.Dir, id)))
		}
		e.log.InfoContext(ctx, "export: expired", "job", id)
	}
	entries, err := os.ReadDir(e.cfg.Dir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("export sweep: %w", err))...)
	}
	var dirs []string
	for _, ent := range entries {
		if ent.IsDir() && jobIDPattern.MatchString(ent.Name()) {
			dirs = append(dirs, ent.Name())
		}
	}
	if len(dirs) > 0 {
		kept, err := e.st.ExportJobsExist(ctx, dirs)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, id := range dirs {
			if !kept[id] {
				errs = append(errs, os.RemoveAll(filepath.Join(e.cfg.Dir, id)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("export sweep: %w", err)
	}
	return nil
}
