package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
)

// Export jobs (FHIR Bulk Data $export) as the export_job table keeps them
// (migration 00009). The store knows their life cycle, not what their
// parameters mean: fhir/bulk reads and writes Params.

// ErrExportGone means the export job was cancelled (its row deleted) while
// it ran, or was claimed by another runner.
var ErrExportGone = errors.New("export job is gone")

// Export job statuses.
const (
	ExportQueued    = "queued"
	ExportRunning   = "running"
	ExportCompleted = "completed"
	ExportFailed    = "failed"
)

// Requester is who kicked an export off: only the same subject, client and
// issuer may poll, cancel and download it.
type Requester struct {
	Subject, ClientID, Issuer string
}

// ExportFile is one output file of a job.
type ExportFile struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// ExportJob is one export request.
type ExportJob struct {
	ID        string
	Requester Requester
	// Kind is system, patient or group.
	Kind    string
	GroupID string
	// Request is the kick-off URL.
	Request string
	// Params are the checked kick-off parameters (fhir/bulk's JSON).
	Params json.RawMessage
	Status string
	// Attempts counts the runs started.
	Attempts int
	// Written counts the resources written so far; Progress says where
	// the run is, in a few words.
	Written  int64
	Progress string
	// Error says why a failed job failed.
	Error           string
	TransactionTime time.Time
	Output          []ExportFile
	Owner           string
	Created         time.Time
	Started         time.Time
	Heartbeat       time.Time
	Finished        time.Time
	Expires         time.Time
}

const exportJobColumns = "id, subject, client_id, issuer, kind, group_id, request, params, status, attempts, written, progress, " +
	"error, transaction_time, output, owner, created_at, started_at, heartbeat_at, finished_at, expires_at"

func scanExportJob(row pgx.Row) (*ExportJob, error) {
	j := &ExportJob{}
	var (
		groupID, errText, owner                       pgtype.Text
		txTime, started, heartbeat, finished, expires pgtype.Timestamptz
		output                                        []byte
	)
	err := row.Scan(&j.ID, &j.Requester.Subject, &j.Requester.ClientID, &j.Requester.Issuer, &j.Kind, &groupID, &j.Request,
		&j.Params, &j.Status, &j.Attempts, &j.Written, &j.Progress, &errText, &txTime, &output, &owner,
		&j.Created, &started, &heartbeat, &finished, &expires)
	if err != nil {
		return nil, err
	}
	j.GroupID, j.Error, j.Owner = groupID.String, errText.String, owner.String
	j.TransactionTime, j.Started, j.Heartbeat, j.Finished, j.Expires = txTime.Time, started.Time, heartbeat.Time, finished.Time, expires.Time
	if err := json.Unmarshal(output, &j.Output); err != nil {
		return nil, fmt.Errorf("export job %s: output: %w", j.ID, err)
	}
	return j, nil
}

// CreateExportJob stores j as a queued job with a new id, which it sets.
func (s *Store) CreateExportJob(ctx context.Context, j *ExportJob) error {
	id, err := newID()
	if err != nil {
		return err
	}
	j.ID, j.Status, j.Created = id, ExportQueued, now()
	var groupID *string
	if j.GroupID != "" {
		groupID = &j.GroupID
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO export_job (id, subject, client_id, issuer, kind, group_id, request, params, status, created_at) "+
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		j.ID, j.Requester.Subject, j.Requester.ClientID, j.Requester.Issuer, j.Kind, groupID, j.Request, j.Params, j.Status, j.Created)
	if err != nil {
		return fmt.Errorf("create export job: %w", translate(err))
	}
	return nil
}

// ExportJob returns job id; fhir.ErrNotFound when there is none (never
// was, cancelled or expired).
func (s *Store) ExportJob(ctx context.Context, id string) (*ExportJob, error) {
	j, err := scanExportJob(s.pool.QueryRow(ctx, "SELECT "+exportJobColumns+" FROM export_job WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("export job %s: %w", id, translate(err))
	}
	return j, nil
}

// DeleteExportJob deletes job id, whatever its status: a running job's
// runner notices at its next progress report (ErrExportGone) and stops.
// fhir.ErrNotFound when there is none.
func (s *Store) DeleteExportJob(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM export_job WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("delete export job %s: %w", id, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("export job %s: %w", id, fhir.ErrNotFound)
	}
	return nil
}

// ExpireExportJobs deletes the finished jobs whose expiry passed at or
// before at and returns their ids, so their files can go too.
func (s *Store) ExpireExportJobs(ctx context.Context, at time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, "DELETE FROM export_job WHERE expires_at <= $1 RETURNING id", at)
	if err != nil {
		return nil, fmt.Errorf("expire export jobs: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("expire export jobs: %w", translate(err))
	}
	return ids, nil
}

// ExportJobsExist returns which of ids are jobs still kept.
func (s *Store) ExportJobsExist(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM export_job WHERE id = ANY($1::text[])", ids)
	if err != nil {
		return nil, fmt.Errorf("export jobs: %w", translate(err))
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("export jobs: %w", translate(err))
	}
	out := make(map[string]bool, len(found))
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// exportLockClass is the first key of the advisory locks on export jobs
// ("vdax"); the second is hashtext(id). Two-key locks never meet the
// one-key lock goose migrates under.
const exportLockClass = 0x76646178

// ExportClaim is a job one runner holds: a connection of its own with the
// job's session advisory lock, on which the export's snapshot is read.
// The lock lasts as long as the connection, so a runner that dies lets
// the job go with it. Release it when done.
type ExportClaim struct {
	s    *Store
	conn *pgxpool.Conn
	tx   pgx.Tx
	// Job is the job as claimed (status running, attempts counted).
	Job *ExportJob
}

// ClaimExportJob claims the oldest queued job, or a running one whose
// runner is gone (its lock free), for owner; nil when there is none. A
// job claimed more than maxAttempts times is failed instead (kept for
// ttl): something about it kills its runners.
func (s *Store) ClaimExportJob(ctx context.Context, owner string, maxAttempts int, ttl time.Duration) (*ExportClaim, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM export_job WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT 32")
	if err != nil {
		return nil, fmt.Errorf("claim export job: %w", translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ids) == 0 {
		return nil, translateIf(err, "claim export job")
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim export job: %w", translate(err))
	}
	c := &ExportClaim{s: s, conn: conn}
	for _, id := range ids {
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", exportLockClass, id).Scan(&locked); err != nil {
			c.Release(ctx)
			return nil, fmt.Errorf("claim export job: %w", translate(err))
		}
		if !locked {
			continue
		}
		// Under the lock, the row says whether the job is still to run.
		j, err := scanExportJob(conn.QueryRow(ctx, "UPDATE export_job SET status = 'running', owner = $2, attempts = attempts + 1, "+
			"started_at = now(), heartbeat_at = now(), written = 0, progress = '' "+
			"WHERE id = $1 AND status IN ('queued', 'running') RETURNING "+exportJobColumns, id, owner))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			c.Release(ctx)
			return nil, fmt.Errorf("claim export job %s: %w", id, translate(err))
		case j.Attempts > maxAttempts:
			c.Job = j
			if err := c.Fail(ctx, fmt.Sprintf("gave up after %d attempts", maxAttempts), ttl); err != nil {
				c.Release(ctx)
				return nil, err
			}
			c.Job = nil
		default:
			c.Job = j
			return c, nil
		}
		if err := c.unlock(ctx, id); err != nil {
			c.Release(ctx)
			return nil, err
		}
	}
	c.Release(ctx)
	return nil, nil //nolint:nilnil // no job to run is not an error
}

func translateIf(err error, op string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, translate(err))
}

func (c *ExportClaim) unlock(ctx context.Context, id string) error {
	if _, err := c.conn.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", exportLockClass, id); err != nil {
		return fmt.Errorf("unlock export job %s: %w", id, translate(err))
	}
	return nil
}

// Release ends the snapshot if one is open, lets go of the job's lock and
// returns the connection, even when ctx has ended. A connection that
// cannot be cleaned is closed, which frees the lock too.
func (c *ExportClaim) Release(ctx context.Context) {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	clean := true
	if c.tx != nil {
		clean = c.tx.Rollback(ctx) == nil
		c.tx = nil
	}
	if clean {
		_, err := c.conn.Exec(ctx, "SELECT pg_advisory_unlock_all()")
		clean = err == nil
	}
	if !clean {
		_ = c.conn.Conn().Close(ctx)
	}
	c.conn.Release()
	c.conn = nil
}

// Report records progress; ErrExportGone when the job was cancelled or
// is no longer this claim's to run.
func (c *ExportClaim) Report(ctx context.Context, written int64, progress string) error {
	tag, err := c.s.pool.Exec(ctx, "UPDATE export_job SET written = $2, progress = $3, heartbeat_at = now() "+
		"WHERE id = $1 AND status = 'running' AND owner = $4", c.Job.ID, written, progress, c.Job.Owner)
	if err != nil {
		return fmt.Errorf("export job %s: progress: %w", c.Job.ID, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("export job %s: %w", c.Job.ID, ErrExportGone)
	}
	return nil
}

// Complete marks the job completed with its files; they expire ttl from
// now. ErrExportGone when it was cancelled meanwhile.
func (c *ExportClaim) Complete(ctx context.Context, txTime time.Time, output []ExportFile, written int64, ttl time.Duration) error {
	if output == nil {
		output = []ExportFile{}
	}
	out, err := json.Marshal(output)
	if err != nil {
		return fmt.Errorf("export job %s: %w", c.Job.ID, err)
	}
	tag, err := c.s.pool.Exec(ctx, "UPDATE export_job SET status = 'completed', transaction_time = $2, output = $3, written = $4, "+
		"progress = 'completed', finished_at = now(), heartbeat_at = now(), expires_at = now() + $5 * interval '1 millisecond' "+
		"WHERE id = $1 AND status = 'running' AND owner = $6", c.Job.ID, txTime, out, written, ttl.Milliseconds(), c.Job.Owner)
	if err != nil {
		return fmt.Errorf("export job %s: complete: %w", c.Job.ID, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("export job %s: %w", c.Job.ID, ErrExportGone)
	}
	return nil
}

// Fail marks the job failed with why, kept for ttl.
func (c *ExportClaim) Fail(ctx context.Context, why string, ttl time.Duration) error {
	_, err := c.s.pool.Exec(ctx, "UPDATE export_job SET status = 'failed', error = $2, progress = 'failed', finished_at = now(), "+
		"expires_at = now() + $3 * interval '1 millisecond' WHERE id = $1 AND status = 'running' AND owner = $4", c.Job.ID, why, ttl.Milliseconds(), c.Job.Owner)
	if err != nil {
		return fmt.Errorf("export job %s: fail: %w", c.Job.ID, translate(err))
	}
	return nil
}
