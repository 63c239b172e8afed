package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// Config tunes exports.
type Config struct {
	// Dir holds the files, one directory per job (VIDDA_EXPORT_DIR). With
	// several instances it must be storage they share, or a download can
	// reach an instance without the file.
	Dir string
	// TTL is how long the files of a finished job are kept
	// (VIDDA_EXPORT_TTL); the job goes with them.
	TTL time.Duration
	// Workers is how many jobs one instance runs at once
	// (VIDDA_EXPORT_WORKERS). Each holds a database connection for the
	// whole run.
	Workers int
	// Owner names this instance in the jobs it runs (VIDDA_INSTANCE_ID).
	Owner string
	// MaxFileResources starts a new file after this many resources, so no
	// one download is too big to finish (VIDDA_EXPORT_FILE_RESOURCES).
	MaxFileResources int
	// Poll is how often an idle worker looks for jobs another instance
	// queued (jobs queued here wake it at once).
	Poll time.Duration
	// Sweep is how often expired jobs and their files are deleted.
	Sweep time.Duration
	// Report is how often a run records its progress, which is also how
	// soon it notices it was cancelled on another instance.
	Report time.Duration
	// MaxAttempts fails a job after this many runs were started: one that
	// keeps killing its runner must not take every instance down in turn.
	MaxAttempts int
	// CommitLag is how far transactionTime is set before the snapshot's
	// time. A write stamps meta.lastUpdated just before it commits; one
	// stamped before the snapshot but committed after it is not in this
	// export, and a later export with _since=transactionTime must still
	// find it. The price is that such an export may repeat resources
	// changed in the last CommitLag before this one.
	CommitLag time.Duration
	// Finished, when set, is told how every run ended (the audit trail).
	Finished func(ctx context.Context, f Finished)
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Dir:              filepath.Join(os.TempDir(), "vidda-exports"),
		TTL:              time.Hour,
		Workers:          1,
		Owner:            "vidda",
		MaxFileResources: 100_000,
		Poll:             2 * time.Second,
		Sweep:            time.Minute,
		Report:           time.Second,
		MaxAttempts:      3,
		CommitLag:        30 * time.Second,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("VIDDA_EXPORT_DIR: must not be empty")
	case c.TTL < time.Second:
		return errors.New("VIDDA_EXPORT_TTL: must be at least 1s")
	case c.Workers < 1 || c.Workers > 64:
		return errors.New("VIDDA_EXPORT_WORKERS: must be between 1 and 64")
	case c.MaxFileResources < 1:
		return errors.New("VIDDA_EXPORT_FILE_RESOURCES: must be at least 1")
	case c.Poll <= 0 || c.Sweep <= 0 || c.Report <= 0 || c.MaxAttempts < 1 || c.CommitLag < 0:
		return errors.New("export: Poll, Sweep, Report and MaxAttempts must be positive, CommitLag not negative")
	}
	return nil
}

// Finished is how one run of a job ended.
type Finished struct {
	Job *store.ExportJob
	// Outcome is completed, failed or cancelled.
	Outcome string
	// Err says why a run failed.
	Err error
	// Written counts the resources written, Files the files.
	Written int64
	Files   int
	// Patients are the distinct patients whose compartments the files
	// hold data of (the first MaxPatients found); PatientsLeftOut counts
	// the others (at least; past maxPatientSet it stops counting).
	Patients        []string
	PatientsLeftOut int
}

// Outcomes of a run.
const (
	OutcomeCompleted = "completed"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// Exporter starts, runs and serves exports.
type Exporter struct {
	st     *store.Store
	types  *fhir.Registry
	params *search.Registry
	cfg    Config
	log    *slog.Logger
	wake   chan struct{}
	m      *metrics

	mu      sync.Mutex
	running map[string]context.CancelFunc // jobs this instance runs, by id

	// afterType, in tests, is called after each type is written.
	afterType func(ctx context.Context, typ string)
}

// New returns an exporter over st. Call Run to run jobs, and Register to
// serve its metrics.
func New(st *store.Store, types *fhir.Registry, params *search.Registry, cfg Config, log *slog.Logger) *Exporter {
	return &Exporter{
		st: st, types: types, params: params, cfg: cfg, log: log,
		wake: make(chan struct{}, 1), m: newMetrics(), running: map[string]context.CancelFunc{},
	}
}

// jobParams are a job's parameters as stored (export_job.params).
type jobParams struct {
	Types       []string            `json:"types"`
	Since       time.Time           `json:"since,omitzero"`
	TypeFilters map[string][]string `json:"typeFilters,omitempty"`
	Access      map[string]access   `json:"access"`
	GroupAccess access              `json:"groupAccess,omitzero"`
}

type access struct {
	PatientID string `json:"patient,omitempty"`
	CareOf    string `json:"careOf,omitempty"`
}

func (a access) store() store.Access { return store.Access{PatientID: a.PatientID, CareOf: a.CareOf} }

func accessOf(a store.Access) access { return access{PatientID: a.PatientID, CareOf: a.CareOf} }

// Start queues the export p for who; requestURL is the kick-off URL the
// manifest repeats.
func (e *Exporter) Start(ctx context.Context, p *Plan, who store.Requester, requestURL string) (*store.ExportJob, error) {
	jp := jobParams{Types: p.Types, Since: p.Request.Since, TypeFilters: p.Request.TypeFilters, Access: map[string]access{}, GroupAccess: accessOf(p.GroupAccess)}
	for typ, a := range p.Access {
		jp.Access[typ] = accessOf(a)
	}
	raw, err := json.Marshal(jp)
	if err != nil {
		return nil, fmt.Errorf("start export: %w", err)
	}
	j := &store.ExportJob{Requester: who, Kind: string(p.Request.Kind), GroupID: p.Request.GroupID, Request: requestURL, Params: raw}
	if err := e.st.CreateExportJob(ctx, j); err != nil {
		return nil, err
	}
	e.m.queued.Inc()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return j, nil
}

// Status returns job id if who asked for it; anyone else's, or none, is
// fhir.ErrNotFound.
func (e *Exporter) Status(ctx context.Context, id string, who store.Requester) (*store.ExportJob, error) {
	if !jobIDPattern.MatchString(id) {
		return nil, fmt.Errorf("export job %q: %w", truncate(id), fhir.ErrNotFound)
	}
	j, err := e.st.ExportJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Requester != who {
		return nil, fmt.Errorf("export job %s: %w", id, fhir.ErrNotFound)
	}
	return j, nil
}

// Cancel deletes job id of who, and its files. A run here stops at once;
// a run on another instance at its next progress report.
func (e *Exporter) Cancel(ctx context.Context, id string, who store.Requester) error {
	if _, err := e.Status(ctx, id, who); err != nil {
		return err
	}
	if err := e.st.DeleteExportJob(ctx, id); err != nil {
		return err
	}
	e.mu.Lock()
	stop := e.running[id]
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	if err := os.RemoveAll(filepath.Join(e.cfg.Dir, id)); err != nil {
		return fmt.Errorf("cancel export %s: %w", id, err)
	}
	return nil
}

// Open opens the file name of job id for who: the job must be completed
// and name one of its files.
func (e *Exporter) Open(ctx context.Context, id, name string, who store.Requester) (*os.File, error) {
	j, err := e.Status(ctx, id, who)
	if err != nil {
		return nil, err
	}
	if j.Status != store.ExportCompleted || !fileNamePattern.MatchString(name) ||
		!slices.ContainsFunc(j.Output, func(f store.ExportFile) bool { return f.Name == name }) {
		return nil, fmt.Errorf("export file %s/%s: %w", id, truncate(name), fhir.ErrNotFound)
	}
	// id and name match jobIDPattern and fileNamePattern and name is in the
	// job's manifest: no path outside the job's directory.
	f, err := os.Open(filepath.Join(e.cfg.Dir, id, name)) //nolint:gosec // see above
	if errors.Is(err, os.ErrNotExist) {
		// Written on another instance's disk, or lost with it.
		return nil, fmt.Errorf("export file %s/%s is not on this instance: %w", id, name, fhir.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("export file %s/%s: %w", id, name, err)
	}
	return f, nil
}

// manifestJSON is the completion manifest (Bulk Data v2 "Response -
// Complete Status").
type manifestJSON struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	Output              []manifestFile `json:"output"`
	Error               []manifestFile `json:"error"`
}

type manifestFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count"`
}

// Manifest is the manifest of a completed job; fileURL gives the download
// URL of a file name.
func Manifest(j *store.ExportJob, fileURL func(name string) string) ([]byte, error) {
	m := manifestJSON{
		TransactionTime:     j.TransactionTime.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Request:             j.Request,
		RequiresAccessToken: true,
		Output:              make([]manifestFile, 0, len(j.Output)),
		Error:               []manifestFile{},
	}
	for _, f := range j.Output {
		m.Output = append(m.Output, manifestFile{Type: f.Type, URL: fileURL(f.Name), Count: f.Count})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("export manifest: %w", err)
	}
	return b, nil
}
