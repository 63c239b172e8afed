package care

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/vidda/vidda/devices"
)

// SystemLOINC is the code system of measures (the code table's).
const SystemLOINC = devices.SystemLOINC

// GoalRow is one stored version of a Goal, current or past.
type GoalRow struct {
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Content     []byte
}

// goalVersion is one version of a patient's Goal as it bears on limits:
// in force from since until the next version of the same Goal (zero:
// still current).
type goalVersion struct {
	id           string
	since, until time.Time
	active       bool
	start        time.Time // Goal.startDate; zero: none
	targets      map[string]Range
}

// goalJSON is what a Goal says about limits.
type goalJSON struct {
	LifecycleStatus string `json:"lifecycleStatus"`
	StartDate       string `json:"startDate"`
	Target          []struct {
		Measure *struct {
			Coding []struct {
				System string `json:"system"`
				Code   string `json:"code"`
			} `json:"coding"`
		} `json:"measure"`
		DetailRange *struct {
			Low  *quantityJSON `json:"low"`
			High *quantityJSON `json:"high"`
		} `json:"detailRange"`
	} `json:"target"`
}

type quantityJSON struct {
	Value *float64 `json:"value"`
	Code  string   `json:"code"`
}

// goalVersions turns a patient's Goal rows into versions with their
// spans, ordered by Goal then time. A version that does not decode counts
// as not active: it ends the one before it and sets nothing.
func goalVersions(rows []GoalRow, rules *Rules) []goalVersion {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b GoalRow) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
	out := make([]goalVersion, 0, len(rows))
	for i, r := range rows {
		v := goalVersion{id: r.ID, since: r.LastUpdated}
		if i+1 < len(rows) && rows[i+1].ID == r.ID {
			v.until = rows[i+1].LastUpdated
		}
		if !r.Deleted {
			parseGoal(&v, r.Content, rules)
		}
		out = append(out, v)
	}
	return out
}

// parseGoal reads the limits of an active Goal: each target with a LOINC
// measure and a detailRange whose units, when given, are the measure's.
func parseGoal(v *goalVersion, content []byte, rules *Rules) {
	var g goalJSON
	if json.Unmarshal(content, &g) != nil || g.LifecycleStatus != "active" {
		return
	}
	if g.StartDate != "" {
		// A FHIR date: a year, a month or a day. The Goal holds from the
		// first moment of that span, UTC (fhir/search's parser, the one
		// plans' dates are read with).
		if r, err := rules.dates.Parse(g.StartDate); err == nil {
			v.start = r.Start
		}
	}
	for _, t := range g.Target {
		if t.Measure == nil || t.DetailRange == nil {
			continue
		}
		for _, c := range t.Measure.Coding {
			if c.System != SystemLOINC {
				continue
			}
			m, ok := rules.Measure(c.Code)
			if !ok {
				continue
			}
			r, ok := goalRange(t.DetailRange.Low, t.DetailRange.High, m.Unit)
			if !ok {
				continue
			}
			if v.targets == nil {
				v.targets = map[string]Range{}
			}
			v.targets[m.Code] = r
			break
		}
	}
	v.active = len(v.targets) > 0
}

func goalRange(low, high *quantityJSON, unit string) (Range, bool) {
	var r Range
	for _, q := range []struct {
		q   *quantityJSON
		dst **float64
	}{{low, &r.Low}, {high, &r.High}} {
		if q.q == nil || q.q.Value == nil {
			continue
		}
		if q.q.Code != "" && q.q.Code != unit {
			return Range{}, false // another unit: not ours to convert
		}
		*q.dst = q.q.Value
	}
	if r.Low == nil && r.High == nil || r.Low != nil && r.High != nil && *r.Low > *r.High {
		return Range{}, false
	}
	return r, true
}

// InForce is what one measure's limits are for one patient at one time.
type InForce struct {
	// Measure is the rules' measure: its primary Code, Unit and defaults.
	Measure *Measure
	// Limits judge the patient's readings (Limits.Judge): the measure's
	// defaults, or those WithRange of the patient's Goal.
	Limits Limits
	// Goal is the patient's own range when a Goal sets one, nil otherwise.
	Goal *Range
}

// PatientLimits are a patient's Goals read against the rules: the one
// answer to "which limits are in force for this patient and measure",
// for the Interpreter that flags readings and for the pages that shade
// and explain them.
type PatientLimits struct {
	rules *Rules
	goals []goalVersion
}

// PatientLimits reads a patient's Goal rows: every version (to judge
// readings as of when they were measured), or just the current ones (for
// what is in force now).
func (r *Rules) PatientLimits(goals []GoalRow) PatientLimits {
	return PatientLimits{rules: r, goals: goalVersions(goals, r)}
}

// At returns the limits of the measure with LOINC code (its Code or one
// of Also) in force at time at; ok is false for a code the rules do not
// know.
func (p PatientLimits) At(code string, at time.Time) (InForce, bool) {
	m, ok := p.rules.Measure(code)
	if !ok {
		return InForce{}, false
	}
	f := InForce{Measure: m, Limits: m.Limits}
	if r, ok := goalRangeAt(p.goals, m.Code, at); ok {
		f.Limits, f.Goal = m.Limits.WithRange(r), &r
	}
	return f, true
}

// goalRangeAt returns the range a Goal sets for measure code at time at: of
// the Goal versions in force then (since <= at < until, active, started),
// the newest that targets code.
func goalRangeAt(versions []goalVersion, code string, at time.Time) (Range, bool) {
	var best *goalVersion
	for i := range versions {
		v := &versions[i]
		if !v.active || v.since.After(at) || !v.until.IsZero() && !at.Before(v.until) || !v.start.IsZero() && at.Before(v.start) {
			continue
		}
		if _, ok := v.targets[code]; !ok {
			continue
		}
		if best == nil || v.since.After(best.since) {
			best = v
		}
	}
	if best == nil {
		return Range{}, false
	}
	return best.targets[code], true
}
