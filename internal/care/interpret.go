package care

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// Reading is one Observation to interpret: what it holds, and (filled by
// Interpret) the judgement.
type Reading struct {
	Patient string
	// Code is the Observation's primary LOINC code.
	Code string
	// At is when it was measured, Received when vidda got it (zero: now,
	// not late).
	At, Received time.Time
	// Value is the valueQuantity's value; Components are a panel's
	// (blood pressure), empty otherwise.
	Value      float64
	Components []Component

	// Flag is the interpretation; for a panel the worst component's.
	Flag Flag
	// Priority is the review priority Flag asks for (none for N).
	Priority Priority
	// Late: received more than Rules.LateAfter after it was measured.
	Late bool
	// Trend is the trend rule that flagged the reading A, "" otherwise.
	Trend string
}

// Component is one component of a panel.
type Component struct {
	Code     string
	Value    float64
	Flag     Flag
	Priority Priority
}

// Source is what the Interpreter reads of a patient: their Goal versions,
// the categories of their active CarePlans, and the lowest value of a code
// measured in [from, to). DB implements it.
type Source interface {
	PatientGoals(ctx context.Context, patientID string) ([]GoalRow, error)
	PatientPlanCategories(ctx context.Context, patientID string) ([]string, error)
	LowestSince(ctx context.Context, patientID, code string, from, to time.Time) (float64, bool, error)
}

// InterpreterConfig tunes the Interpreter.
type InterpreterConfig struct {
	// CacheTTL is how long a patient's limits are kept without a NOTIFY
	// saying they changed (a safety net: Goal and CarePlan writes
	// invalidate at once).
	CacheTTL time.Duration
	// LookupTimeout bounds one database lookup on the ingestion path;
	// past it the reading is judged by the defaults (and a trend is not
	// evaluated), and a warning is logged.
	LookupTimeout time.Duration
	// FailedTTL is how long a patient is judged by what was known of
	// them (or the defaults) after a failed lookup, before the next try:
	// a slow or unreachable database must not cost every reading the
	// LookupTimeout.
	FailedTTL time.Duration
	// MaxLookups bounds the lookups in flight at once, so that a cold
	// cache (a restart while 1,000 homes flush) cannot take the
	// connections the ingest commits need.
	MaxLookups int
}

// DefaultInterpreterConfig returns the settings used unless told
// otherwise.
func DefaultInterpreterConfig() InterpreterConfig {
	return InterpreterConfig{CacheTTL: 5 * time.Minute, LookupTimeout: 2 * time.Second, FailedTTL: 10 * time.Second, MaxLookups: 4}
}

// Interpreter judges readings by the limits in force when they were
// measured: the clinic's Rules, overridden per patient and measure by
// their Goals. It keeps each patient's Goal versions and CarePlan
// categories in memory: Preload reads every patient's at once (the Engine
// does, when it starts listening and every CacheTTL/2), so the ingestion
// path queries the database only for a patient whose Goal or CarePlan was
// written since, plus one indexed query per reading a trend rule applies
// to. Safe for concurrent use.
type Interpreter struct {
	rules *Rules
	src   Source
	cfg   InterpreterConfig
	log   *slog.Logger
	m     *metrics // shared with the Engine built on it

	lookups chan struct{} // one token per lookup in flight
	none    *profile      // a patient without Goals or CarePlans, never expiring

	mu    sync.Mutex
	cache map[string]*profile
	// epoch counts invalidations (Invalidate and InvalidateAll): a
	// profile loaded across one is not cached.
	epoch uint64
	// warmUntil: until then, a patient the cache does not hold had no
	// Goal and no CarePlan when Preload read them all. Zero: not known.
	warmUntil time.Time
}

// profile is what the Interpreter keeps of one patient.
type profile struct {
	goals      []goalVersion
	categories map[string]bool
	until      time.Time
}

// NewInterpreter returns an Interpreter of rules reading patients from src.
func NewInterpreter(rules *Rules, src Source, cfg InterpreterConfig, log *slog.Logger) *Interpreter {
	return &Interpreter{
		rules: rules, src: src, cfg: cfg, log: log, m: newMetrics(), cache: map[string]*profile{},
		lookups: make(chan struct{}, max(cfg.MaxLookups, 1)),
		none:    &profile{until: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// Rules returns the rules the Interpreter judges by.
func (in *Interpreter) Rules() *Rules { return in.rules }

// Interpret fills r's judgement.
func (in *Interpreter) Interpret(ctx context.Context, r *Reading) {
	r.Late = !r.Received.IsZero() && r.Received.Sub(r.At) > in.rules.LateAfter
	p := in.profile(ctx, r.Patient)
	if len(r.Components) > 0 {
		r.Flag, r.Priority = FlagNormal, PriorityNone
		for i := range r.Components {
			c := &r.Components[i]
			c.Flag, c.Priority = in.limits(p, c.Code, r.At).Judge(c.Value)
			if worse(c.Flag, c.Priority, r.Flag, r.Priority) {
				r.Flag, r.Priority = c.Flag, c.Priority
			}
		}
		return
	}
	r.Flag, r.Priority = in.limits(p, r.Code, r.At).Judge(r.Value)
	for _, t := range in.rules.trendsFor(r.Code) {
		if !worse(FlagAbnormal, t.Priority, r.Flag, r.Priority) || !in.trendApplies(t, p) {
			continue
		}
		if in.rose(ctx, t, r) {
			r.Flag, r.Priority, r.Trend = FlagAbnormal, t.Priority, t.Name
		}
	}
}

// limits returns the limits of code for the patient at time at.
func (in *Interpreter) limits(p *profile, code string, at time.Time) Limits {
	f, _ := PatientLimits{rules: in.rules, goals: p.goals}.At(code, at)
	return f.Limits
}

func (in *Interpreter) trendApplies(t *Trend, p *profile) bool {
	return t.CarePlanCategory == "" || p.categories[t.CarePlanCategory]
}

// rose evaluates trend t for r: r.Value more than t.RiseAbove over the
// lowest reading of the code measured within t.Within before r.
func (in *Interpreter) rose(ctx context.Context, t *Trend, r *Reading) bool {
	lctx, cancel := context.WithTimeout(ctx, in.cfg.LookupTimeout)
	defer cancel()
	low, ok, err := in.src.LowestSince(lctx, r.Patient, r.Code, r.At.Add(-t.Within), r.At)
	if err != nil {
		in.log.WarnContext(ctx, "care: trend lookup failed; reading judged without it", "patient", r.Patient, "rule", t.Name, "err", err)
		in.m.fail(stageTrend)
		return false
	}
	return ok && r.Value-low > t.RiseAbove
}

// profile returns the patient's limits, from the cache or the database.
// After a failed lookup the patient is judged by what was known of them,
// or by the defaults, for FailedTTL.
func (in *Interpreter) profile(ctx context.Context, patient string) *profile {
	now := time.Now()
	in.mu.Lock()
	p, ok := in.cache[patient]
	if !ok && now.Before(in.warmUntil) {
		p, ok = in.none, true
	}
	epoch := in.epoch
	in.mu.Unlock()
	if ok && now.Before(p.until) {
		return p
	}
	loaded, err := in.lookup(ctx, patient)
	if err != nil {
		in.log.WarnContext(ctx, "care: limits lookup failed; reading judged by what was known", "patient", patient, "retry_in", in.cfg.FailedTTL, "err", err)
		in.m.fail(stageLimits)
		loaded = &profile{}
		if ok {
			loaded.goals, loaded.categories = p.goals, p.categories
		}
		loaded.until = now.Add(in.cfg.FailedTTL)
	} else {
		loaded.until = now.Add(in.cfg.CacheTTL)
	}
	in.mu.Lock()
	if in.epoch == epoch {
		// A bound for a cold cache only: a warm one holds what Preload
		// read (every patient with a Goal or CarePlan), and clearing it
		// would send every patient through one-by-one lookups.
		if len(in.cache) > 100_000 && !now.Before(in.warmUntil) {
			clear(in.cache)
		}
		in.cache[patient] = loaded
	}
	in.mu.Unlock()
	return loaded
}

// lookup loads the patient's profile, waiting for a free lookup slot,
// within LookupTimeout.
func (in *Interpreter) lookup(ctx context.Context, patient string) (*profile, error) {
	lctx, cancel := context.WithTimeout(ctx, in.cfg.LookupTimeout)
	defer cancel()
	select {
	case in.lookups <- struct{}{}:
		defer func() { <-in.lookups }()
	case <-lctx.Done():
		return nil, fmt.Errorf("care: wait for a lookup slot: %w", lctx.Err())
	}
	return in.load(lctx, patient)
}

func (in *Interpreter) load(ctx context.Context, patient string) (*profile, error) {
	rows, err := in.src.PatientGoals(ctx, patient)
	if err != nil {
		return nil, err
	}
	cats, err := in.src.PatientPlanCategories(ctx, patient)
	if err != nil {
		return nil, err
	}
	p := &profile{goals: goalVersions(rows, in.rules), categories: make(map[string]bool, len(cats))}
	for _, c := range cats {
		p.categories[c] = true
	}
	return p, nil
}

// Invalidate expires what is cached of patient (a Goal or CarePlan of
// theirs was written): the next reading looks them up again.
func (in *Interpreter) Invalidate(patient string) {
	in.mu.Lock()
	// Expired rather than forgotten: Preload's "no Goal, no CarePlan" no
	// longer answers for them, and what was known still judges if the
	// reload fails.
	stale := &profile{}
	if p, ok := in.cache[patient]; ok {
		stale.goals, stale.categories = p.goals, p.categories
	}
	in.cache[patient] = stale
	in.epoch++
	in.mu.Unlock()
}

// InvalidateAll forgets every patient (the NOTIFY connection was lost, so
// a change may have gone unheard).
func (in *Interpreter) InvalidateAll() {
	in.mu.Lock()
	clear(in.cache)
	in.warmUntil = time.Time{}
	in.epoch++
	in.mu.Unlock()
}

// allProfiles is a Source that reads every patient's Goals and CarePlan
// categories at once. DB implements it.
type allProfiles interface {
	AllGoals(ctx context.Context) (map[string][]GoalRow, error)
	AllPlanCategories(ctx context.Context) (map[string][]string, error)
}

// Preload reads every patient's Goals and active CarePlan categories in
// two queries and caches them for CacheTTL; until then a patient it did
// not find is judged by the defaults without a lookup. Without a Source
// that can (a test's), it does nothing. What an invalidation overtook is
// not cached.
func (in *Interpreter) Preload(ctx context.Context) error {
	src, ok := in.src.(allProfiles)
	if !ok {
		return nil
	}
	in.mu.Lock()
	epoch := in.epoch
	in.mu.Unlock()
	now := time.Now()
	goals, err := src.AllGoals(ctx)
	if err != nil {
		return err
	}
	cats, err := src.AllPlanCategories(ctx)
	if err != nil {
		return err
	}
	until := now.Add(in.cfg.CacheTTL)
	loaded := make(map[string]*profile, max(len(goals), len(cats)))
	get := func(patient string) *profile {
		p := loaded[patient]
		if p == nil {
			p = &profile{categories: map[string]bool{}, until: until}
			loaded[patient] = p
		}
		return p
	}
	for patient, rows := range goals {
		get(patient).goals = goalVersions(rows, in.rules)
	}
	for patient, cs := range cats {
		p := get(patient)
		for _, c := range cs {
			p.categories[c] = true
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.epoch != epoch {
		// Invalidated meanwhile by another caller (the engine's own
		// invalidations run on its loop, after this returns): the next
		// Preload.
		return nil
	}
	clear(in.cache)
	maps.Copy(in.cache, loaded)
	in.warmUntil = until
	return nil
}
