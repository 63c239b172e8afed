package care

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Missed measurements. An active CarePlan says what a patient measures
// how often: each activity's detail.code is the measure's LOINC code and
// detail.scheduledTiming.repeat its frequency per period (weight 1 per
// 1 d, blood pressure 2 per 1 d). A measure is missed when no reading of
// it was measured for its interval (period / frequency) times
// Rules.MissedGrace (1.5: a daily weight is missed after 36 h) since the
// last reading, or since the plan began (period.start, else when the plan
// was last written) when there was none. Then a missed-measurement Task
// (routine) is opened; when a reading comes, so that the measure is no
// longer missed, the check completes the Task ("readings resumed"), or
// when the plan no longer asks for the measure ("no longer planned"). A
// missed Task a nurse acknowledged stays closed until readings resume and
// stop again.

// PlanRow is one active CarePlan.
type PlanRow struct {
	ID          string
	Version     int64
	Patient     string
	LastUpdated time.Time
	Content     []byte
}

// PlannedMeasure is one measure an active CarePlan asks a patient for.
type PlannedMeasure struct {
	// Plan is the CarePlan's id, Patient the patient's.
	Plan, Patient string
	// Code is the measure's primary LOINC code (Measure.Code), Name its
	// name.
	Code, Name string
	// Interval is the time between two readings the plan expects
	// (period / frequency).
	Interval time.Duration
	// Since is when the plan began (period.start, else when it was last
	// written): the measure's start when no reading came yet.
	Since time.Time
}

type planJSON struct {
	Period *struct {
		Start string `json:"start"`
	} `json:"period"`
	Activity []struct {
		Detail *struct {
			Code            *concept `json:"code"`
			Status          string   `json:"status"`
			ScheduledTiming *struct {
				Repeat *struct {
					Frequency  *int     `json:"frequency"`
					Period     *float64 `json:"period"`
					PeriodUnit string   `json:"periodUnit"`
				} `json:"repeat"`
			} `json:"scheduledTiming"`
		} `json:"detail"`
	} `json:"activity"`
}

// unitDuration is a UCUM unit of time as Timing.repeat.periodUnit has it.
func unitDuration(u string) time.Duration {
	switch u {
	case "s":
		return time.Second
	case "min":
		return time.Minute
	case "h":
		return time.Hour
	case "d":
		return 24 * time.Hour
	case "wk":
		return 7 * 24 * time.Hour
	case "mo":
		return 30 * 24 * time.Hour
	case "a":
		return 365 * 24 * time.Hour
	}
	return 0
}

// Planned returns what the active CarePlans ask their patients to
// measure: one entry per patient and measure, the most frequent plan
// winning. The missed-measurement check and the patient's own page both
// read plans through it.
func (r *Rules) Planned(plans []PlanRow) []PlannedMeasure {
	var out []PlannedMeasure
	at := map[string]int{} // patient|code → index in out
	for _, pl := range plans {
		for _, p := range r.plannedMeasures(pl) {
			k := p.Patient + "|" + p.Code
			i, ok := at[k]
			switch {
			case !ok:
				at[k] = len(out)
				out = append(out, p)
			case p.Interval < out[i].Interval:
				out[i] = p
			}
		}
	}
	return out
}

// MissedAfter is how long after the last reading (or the plan's start) a
// measure planned every interval counts as missed: interval times
// MissedGrace.
func (r *Rules) MissedAfter(interval time.Duration) time.Duration {
	return time.Duration(float64(interval) * r.MissedGrace)
}

// plannedMeasures returns what plan asks to measure; activities the rules
// do not know, or without a usable timing, ask for nothing.
func (r *Rules) plannedMeasures(plan PlanRow) []PlannedMeasure {
	var p planJSON
	if json.Unmarshal(plan.Content, &p) != nil {
		return nil
	}
	since := plan.LastUpdated
	if p.Period != nil && p.Period.Start != "" {
		// A dateTime is its own time, a date alone its midnight, UTC.
		if t, err := r.dates.Parse(p.Period.Start); err == nil {
			since = t.Start
		}
	}
	var out []PlannedMeasure
	for _, a := range p.Activity {
		d := a.Detail
		if d == nil || d.Code == nil || d.ScheduledTiming == nil || d.ScheduledTiming.Repeat == nil {
			continue
		}
		switch d.Status {
		case "cancelled", "stopped", "completed", "entered-in-error", "on-hold":
			continue
		}
		m, ok := r.Measure(loincOf(*d.Code))
		if !ok {
			continue
		}
		if panel, ok := r.panelOf[m]; ok {
			// A plan for systolic pressure is met by blood-pressure
			// readings: the part is stored only inside the panel.
			m = panel
		}
		rep := d.ScheduledTiming.Repeat
		freq := 1
		if rep.Frequency != nil {
			freq = *rep.Frequency
		}
		unit := unitDuration(rep.PeriodUnit)
		if rep.Period == nil || !(*rep.Period > 0) || unit == 0 || freq < 1 {
			continue
		}
		interval := time.Duration(*rep.Period * float64(unit) / float64(freq))
		if interval < time.Minute {
			continue
		}
		out = append(out, PlannedMeasure{Plan: plan.ID, Patient: plan.Patient, Code: m.Code, Name: m.Name, Interval: interval, Since: since})
	}
	return out
}

// activePlans returns every active CarePlan of a patient.
func (d *DB) activePlans(ctx context.Context) ([]PlanRow, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, version_id, patient_id, last_updated, content FROM careplan
		WHERE NOT deleted AND patient_id IS NOT NULL AND status @> ARRAY[$1]`, activeKey)
	if err != nil {
		return nil, fmt.Errorf("care plans: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PlanRow, error) {
		var p PlanRow
		var content string
		err := row.Scan(&p.ID, &p.Version, &p.Patient, &p.LastUpdated, &content)
		p.Content = []byte(content)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("care plans: %w", err)
	}
	return out, nil
}

// lastMeasured returns, per (patients[i], codes[i]), when the newest
// reading was measured (nil: never): one statement, one probe of the
// (patient, code, date) index per pair.
func (d *DB) lastMeasured(ctx context.Context, patients, codes []string) ([]*time.Time, error) {
	keys := make([]string, len(codes))
	for i, c := range codes {
		keys[i] = SystemLOINC + "|" + c
	}
	rows, err := d.pool.Query(ctx, `SELECT last.at FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS a(patient, code, i)
		LEFT JOIN LATERAL (SELECT o.date_start AS at FROM observation o
			WHERE o.patient_id = a.patient AND o.code[1] = a.code AND NOT o.deleted
			ORDER BY o.date_start DESC LIMIT 1) last ON true
		ORDER BY a.i`, patients, keys)
	if err != nil {
		return nil, fmt.Errorf("last readings: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[*time.Time])
	if err != nil {
		return nil, fmt.Errorf("last readings: %w", err)
	}
	return out, nil
}

// missedProblems returns the recorded missed-measurement problems:
// patient → problem keys.
func (d *DB) missedProblems(ctx context.Context) (map[string][]string, error) {
	rows, err := d.pool.Query(ctx, "SELECT patient_id, problem FROM care_problem WHERE problem LIKE 'missed|%'")
	if err != nil {
		return nil, fmt.Errorf("missed problems: %w", err)
	}
	out := map[string][]string{}
	for rows.Next() {
		var patient, key string
		if err := rows.Scan(&patient, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("missed problems: %w", err)
		}
		out[patient] = append(out[patient], key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("missed problems: %w", err)
	}
	return out, nil
}

// MissedResult counts what one check did.
type MissedResult struct {
	Planned, Opened, Resolved int
}

// checkMissed runs the missed-measurement check once, at now.
func (e *Engine) checkMissed(ctx context.Context, now time.Time) (MissedResult, error) {
	var res MissedResult
	plans, err := e.db.activePlans(ctx)
	if err != nil {
		return res, err
	}
	list := e.rules.Planned(plans)
	patients := make([]string, len(list))
	codes := make([]string, len(list))
	for i, p := range list {
		patients[i], codes[i] = p.Patient, p.Code
	}
	res.Planned = len(list)
	last, err := e.db.lastMeasured(ctx, patients, codes)
	if err != nil {
		return res, err
	}
	recorded, err := e.db.missedProblems(ctx)
	if err != nil {
		return res, err
	}
	open := map[string]bool{}
	for patient, keys := range recorded {
		for _, k := range keys {
			open[patient+"|"+k] = true
		}
	}
	for i, p := range list {
		since := p.Since
		if last[i] != nil {
			since = *last[i]
		}
		key := "missed|" + p.Code
		overdue := now.Sub(since) > e.rules.MissedAfter(p.Interval)
		wasOpen := open[p.Patient+"|"+key]
		delete(open, p.Patient+"|"+key)
		switch {
		case overdue && !wasOpen:
			pr := &problem{
				kind: TaskMissed, key: key, code: p.Code, name: p.Name, prio: PriorityRoutine,
				focus: "CarePlan/" + p.Plan, patient: p.Patient, since: since,
			}
			if err := e.wl.raise(ctx, pr); err != nil {
				return res, err
			}
			res.Opened++
		case !overdue && wasOpen:
			if err := e.wl.resolve(ctx, p.Patient, key, "readings resumed"); err != nil {
				return res, err
			}
			res.Resolved++
		}
	}
	// What is still recorded is no longer planned.
	for k := range open {
		patient, key, _ := strings.Cut(k, "|")
		if err := e.wl.resolve(ctx, patient, key, "no longer planned"); err != nil {
			return res, err
		}
		res.Resolved++
	}
	return res, nil
}
