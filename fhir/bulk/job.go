package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// MaxPatients is how many patients a Finished names; the rest are counted.
const MaxPatients = 1000

// maxPatientSet bounds the patients a run remembers to count them, so
// memory stays flat on an export of every patient.
const maxPatientSet = 100_000

// progress is what a run has done so far, read by its reporter.
type progress struct {
	written atomic.Int64
	typ     atomic.Pointer[string]
}

func (p *progress) String() string {
	t := p.typ.Load()
	if t == nil {
		return "starting"
	}
	return "exporting " + *t + ", " + strconv.FormatInt(p.written.Load(), 10) + " resources written"
}

// execute runs one claimed job to its end: completed, failed, cancelled,
// or cut short by ctx (left to the next runner).
func (e *Exporter) execute(ctx context.Context, claim *store.ExportClaim) {
	j := claim.Job
	log := e.log.With("job", j.ID, "kind", j.Kind, "attempt", j.Attempts)
	log.InfoContext(ctx, "export: started")
	started := time.Now()
	e.m.begin()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.running[j.ID] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.running, j.ID)
		e.mu.Unlock()
	}()

	var prog progress
	var gone atomic.Bool
	stopReports := e.reportEvery(runCtx, claim, &prog, func() { gone.Store(true); cancel() })
	files, pats, txTime, err := e.write(runCtx, claim, &prog)
	stopReports()

	fin := Finished{Job: j, Written: prog.written.Load()}
	if files != nil {
		fin.Files = len(files.done)
	}
	if pats != nil {
		fin.Patients, fin.PatientsLeftOut = pats.list, pats.leftOut()
	}
	if err == nil {
		err = claim.Complete(ctx, txTime.Add(-e.cfg.CommitLag), files.done, prog.written.Load(), e.cfg.TTL)
		if errors.Is(err, store.ErrExportGone) {
			gone.Store(true)
		}
	}
	switch {
	case err == nil:
		fin.Outcome = OutcomeCompleted
		log.InfoContext(ctx, "export: completed", "resources", fin.Written, "files", fin.Files, "took", time.Since(started))
	case gone.Load() || isCancelled(ctx, j.ID, e):
		fin.Outcome = OutcomeCancelled
		log.InfoContext(ctx, "export: cancelled", "resources", fin.Written)
	case ctx.Err() != nil:
		// Shutting down: the job stays running in the database, and its
		// lock goes with the claim, for the next runner.
		log.InfoContext(ctx, "export: interrupted, to be run again", "resources", fin.Written)
		removeFiles(ctx, files, log)
		e.m.end(outcomeInterrupted, time.Since(started))
		return
	default:
		fin.Outcome, fin.Err = OutcomeFailed, err
		log.ErrorContext(ctx, "export: failed", "err", err)
		if ferr := claim.Fail(context.WithoutCancel(ctx), failure(err), e.cfg.TTL); ferr != nil {
			log.ErrorContext(ctx, "export: record failure", "err", ferr)
		}
	}
	if fin.Outcome != OutcomeCompleted {
		removeFiles(ctx, files, log)
	}
	e.m.end(fin.Outcome, time.Since(started))
	if e.cfg.Finished != nil {
		e.cfg.Finished(context.WithoutCancel(ctx), fin)
	}
}

func removeFiles(ctx context.Context, files *fileSet, log *slog.Logger) {
	if files == nil {
		return
	}
	if err := files.remove(); err != nil {
		log.ErrorContext(ctx, "export: remove files", "err", err)
	}
}

// isCancelled reports whether the job's row is gone.
func isCancelled(ctx context.Context, id string, e *Exporter) bool {
	_, err := e.st.ExportJob(context.WithoutCancel(ctx), id)
	return errors.Is(err, fhir.ErrNotFound)
}

// failure is what the status of a failed job says: the cause, without
// the wrapping that only helps the log.
func failure(err error) string {
	var verr *fhir.ValidationError
	switch {
	case errors.As(err, &verr):
		return verr.Error()
	case errors.Is(err, fhir.ErrNotFound), errors.Is(err, fhir.ErrDeleted):
		return err.Error()
	}
	return "the export failed on the server; start it again, or ask the operator (see the server log)"
}

// reportEvery records the run's progress every Config.Report until the
// returned stop is called; onGone is called when the job turns out to be
// cancelled (or taken by another runner).
func (e *Exporter) reportEvery(ctx context.Context, claim *store.ExportClaim, prog *progress, onGone func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(e.cfg.Report)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := claim.Report(ctx, prog.written.Load(), prog.String())
			switch {
			case errors.Is(err, store.ErrExportGone):
				onGone()
				return
			case err != nil && ctx.Err() == nil:
				e.log.WarnContext(ctx, "export: report progress", "job", claim.Job.ID, "err", err)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// write writes every type's files from one snapshot and returns them, the
// patients whose data they hold, and the snapshot's time.
func (e *Exporter) write(ctx context.Context, claim *store.ExportClaim, prog *progress) (*fileSet, *patientSet, time.Time, error) {
	j := claim.Job
	var p jobParams
	if err := json.Unmarshal(j.Params, &p); err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("export job %s: params: %w", j.ID, err)
	}
	filters := map[string][]*search.Query{}
	for typ, qs := range p.TypeFilters {
		for _, q := range qs {
			parsed, err := e.parseFilter(typ, q)
			if err != nil {
				return nil, nil, time.Time{}, err
			}
			filters[typ] = append(filters[typ], parsed)
		}
	}
	files, err := newFileSet(filepath.Join(e.cfg.Dir, j.ID), j.Attempts, int64(e.cfg.MaxFileResources))
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	txTime, err := claim.Begin(ctx)
	if err != nil {
		return files, nil, txTime, err
	}
	var members []string
	if Kind(j.Kind) == KindGroup {
		if members, err = claim.GroupMembers(ctx, j.GroupID, p.GroupAccess.store()); err != nil {
			return files, nil, txTime, err
		}
	}
	pats := &patientSet{seen: map[string]struct{}{}}
	written := tally{m: e.m}
	defer written.flush()
	for _, typ := range p.Types {
		prog.typ.Store(&typ)
		files.start(typ)
		began := time.Now()
		q := store.ExportQuery{Type: typ, Since: p.Since, Filters: filters[typ], Patients: members, Compartment: Kind(j.Kind) == KindPatient}
		n, err := claim.Export(ctx, q, p.Access[typ].store(), func(patientID, content []byte) error {
			pats.add(patientID)
			prog.written.Add(1)
			n, err := files.line(content)
			written.add(n)
			return err
		})
		streamed := time.Since(began)
		if err == nil {
			err = files.finish()
		}
		if err != nil {
			return files, pats, txTime, err
		}
		e.log.DebugContext(ctx, "export: type written", "job", j.ID, "type", typ, "resources", n, "streamed", streamed, "took", time.Since(began))
		if e.afterType != nil {
			e.afterType(ctx, typ)
		}
	}
	if err := claim.End(ctx); err != nil {
		return files, pats, txTime, err
	}
	return files, pats, txTime, files.wait()
}

// patientSet remembers the distinct patients of a run, up to
// maxPatientSet.
type patientSet struct {
	seen     map[string]struct{}
	list     []string // the first MaxPatients
	overflow bool
}

func (s *patientSet) add(id []byte) {
	if id == nil {
		return
	}
	if _, ok := s.seen[string(id)]; ok {
		return
	}
	if len(s.seen) >= maxPatientSet {
		s.overflow = true
		return
	}
	k := string(id)
	s.seen[k] = struct{}{}
	if len(s.list) < MaxPatients {
		s.list = append(s.list, k)
	}
}

func (s *patientSet) leftOut() int { return len(s.seen) - len(s.list) }
