package care

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the care engine's SQL: it reads the FHIR tables (goal,
// goal_history, careplan, observation; never writes them: Tasks are
// written through the FHIR store) and owns the tables of migration 00012
// (care_outbox, care_problem).
type DB struct {
	pool *pgxpool.Pool
}

// NewDB returns the care engine's SQL over pool.
func NewDB(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// activeKey is the token key every active status matches (any system).
const activeKey = "*|active"

// PatientGoals returns every version of the patient's Goals: the current
// rows and their history.
func (d *DB) PatientGoals(ctx context.Context, patientID string) ([]GoalRow, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT id, version_id, last_updated, deleted, coalesce(content, '') FROM goal WHERE patient_id = $1
		UNION ALL
		SELECT h.id, h.version_id, h.last_updated, h.deleted, coalesce(h.content, '') FROM goal_history h
		 WHERE h.id IN (SELECT id FROM goal WHERE patient_id = $1)`, patientID)
	if err != nil {
		return nil, fmt.Errorf("goals of %s: %w", patientID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (GoalRow, error) {
		var g GoalRow
		var content string
		err := row.Scan(&g.ID, &g.Version, &g.LastUpdated, &g.Deleted, &content)
		g.Content = []byte(content)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("goals of %s: %w", patientID, err)
	}
	return out, nil
}

// PatientPlanCategories returns the category token keys (system|code) of
// the patient's active CarePlans.
func (d *DB) PatientPlanCategories(ctx context.Context, patientID string) ([]string, error) {
	var cats []string
	err := d.pool.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT c), '{}') FROM careplan, unnest(category) c
		WHERE patient_id = $1 AND NOT deleted AND status @> ARRAY[$2]`, patientID, activeKey).Scan(&cats)
	if err != nil {
		return nil, fmt.Errorf("care plans of %s: %w", patientID, err)
	}
	return cats, nil
}

// AllGoals returns every version of every patient's Goals, by patient.
func (d *DB) AllGoals(ctx context.Context) (map[string][]GoalRow, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT patient_id, id, version_id, last_updated, deleted, coalesce(content, '') FROM goal WHERE patient_id IS NOT NULL
		UNION ALL
		SELECT g.patient_id, h.id, h.version_id, h.last_updated, h.deleted, coalesce(h.content, '')
		  FROM goal_history h JOIN goal g ON g.id = h.id WHERE g.patient_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("all goals: %w", err)
	}
	out := map[string][]GoalRow{}
	var patient, content string
	var g GoalRow
	_, err = pgx.ForEachRow(rows, []any{&patient, &g.ID, &g.Version, &g.LastUpdated, &g.Deleted, &content}, func() error {
		g.Content = []byte(content)
		out[patient] = append(out[patient], g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("all goals: %w", err)
	}
	return out, nil
}

// AllPlanCategories returns the category token keys of every patient's
// active CarePlans, by patient.
func (d *DB) AllPlanCategories(ctx context.Context) (map[string][]string, error) {
	rows, err := d.pool.Query(ctx, `SELECT patient_id, array_agg(DISTINCT c) FROM careplan, unnest(category) c
		WHERE patient_id IS NOT NULL AND NOT deleted AND status @> ARRAY[$1] GROUP BY patient_id`, activeKey)
	if err != nil {
		return nil, fmt.Errorf("all care plans: %w", err)
	}
	out := map[string][]string{}
	var patient string
	var cats []string
	_, err = pgx.ForEachRow(rows, []any{&patient, &cats}, func() error {
		out[patient] = append([]string(nil), cats...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("all care plans: %w", err)
	}
	return out, nil
}

// trendReadings bounds the readings a trend rule looks back over: the
// newest this many in its window. A weight is measured a few times a
// day; a device stuck in a loop, or a flood, must not make every one of
// its readings scan all the others (each reading is judged on the ingest
// path, so that scan grew with the square of the flood and stalled it).
const trendReadings = 64

// LowestSince returns the lowest valueQuantity of the newest trendReadings
// of the patient's Observations of LOINC code measured in [from, to),
// through the (patient, code, date) index.
func (d *DB) LowestSince(ctx context.Context, patientID, code string, from, to time.Time) (float64, bool, error) {
	var low *float64
	err := d.pool.QueryRow(ctx, `SELECT min(v)::float8 FROM (SELECT value_quantity AS v FROM observation
		WHERE patient_id = $1 AND code[1] = $2 AND date_start >= $3 AND date_start < $4 AND NOT deleted
		ORDER BY date_start DESC LIMIT $5) newest`,
		patientID, SystemLOINC+"|"+code, from, to, trendReadings).Scan(&low)
	if err != nil {
		return 0, false, fmt.Errorf("readings of %s: %w", patientID, err)
	}
	if low == nil {
		return 0, false, nil
	}
	return *low, true, nil
}

// flagged is an Observation the outbox holds.
type flagged struct {
	seq     int64
	id      string
	patient string
	content []byte // nil when the Observation is gone
}

// outbox returns the oldest flagged Observations, at most limit, with
// their content.
func (d *DB) outbox(ctx context.Context, limit int) ([]flagged, error) {
	rows, err := d.pool.Query(ctx, `SELECT b.seq, b.observation_id, coalesce(b.patient_id, ''), o.content
		FROM (SELECT * FROM care_outbox ORDER BY seq LIMIT $1) b
		LEFT JOIN observation o ON o.id = b.observation_id AND NOT o.deleted
		ORDER BY b.seq`, limit)
	if err != nil {
		return nil, fmt.Errorf("care outbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (flagged, error) {
		var f flagged
		var content *string
		err := row.Scan(&f.seq, &f.id, &f.patient, &content)
		if content != nil {
			f.content = []byte(*content)
		}
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("care outbox: %w", err)
	}
	return out, nil
}

// done removes handled outbox rows.
func (d *DB) done(ctx context.Context, seqs []int64) error {
	if _, err := d.pool.Exec(ctx, "DELETE FROM care_outbox WHERE seq = ANY($1)", seqs); err != nil {
		return fmt.Errorf("care outbox: %w", err)
	}
	return nil
}

// problemTask returns the Task recorded for (patient, problem), "" when
// none.
func (d *DB) problemTask(ctx context.Context, patient, problem string) (string, error) {
	var id string
	err := d.pool.QueryRow(ctx, "SELECT task_id FROM care_problem WHERE patient_id = $1 AND problem = $2", patient, problem).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("care problem %s of %s: %w", problem, patient, err)
	}
	return id, nil
}

// claimProblem records taskID as the Task of (patient, problem) when none
// is recorded, and returns the one recorded (taskID when it won).
func (d *DB) claimProblem(ctx context.Context, patient, problem, taskID string) (string, error) {
	_, err := d.pool.Exec(ctx, `INSERT INTO care_problem (patient_id, problem, task_id) VALUES ($1, $2, $3)
		ON CONFLICT (patient_id, problem) DO NOTHING`, patient, problem, taskID)
	if err != nil {
		return "", fmt.Errorf("care problem %s of %s: %w", problem, patient, err)
	}
	return d.problemTask(ctx, patient, problem)
}

// replaceProblem moves (patient, problem) from Task old to Task next.
func (d *DB) replaceProblem(ctx context.Context, patient, problem, old, next string) error {
	_, err := d.pool.Exec(ctx, `UPDATE care_problem SET task_id = $4, opened = now()
		WHERE patient_id = $1 AND problem = $2 AND task_id = $3`, patient, problem, old, next)
	if err != nil {
		return fmt.Errorf("care problem %s of %s: %w", problem, patient, err)
	}
	return nil
}

// dropProblem forgets (patient, problem) while it still names taskID.
func (d *DB) dropProblem(ctx context.Context, patient, problem, taskID string) error {
	_, err := d.pool.Exec(ctx, "DELETE FROM care_problem WHERE patient_id = $1 AND problem = $2 AND task_id = $3", patient, problem, taskID)
	if err != nil {
		return fmt.Errorf("care problem %s of %s: %w", problem, patient, err)
	}
	return nil
}
