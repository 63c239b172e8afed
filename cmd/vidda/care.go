package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/config"
)

// This file connects the clinical-review engine: its rules file, the
// engine itself, and the Judge the ingest pipeline calls for every
// reading.

type careSettings struct {
	rulesFile string
}

func bindCare(cs *config.Set, c *careSettings) {
	cs.String(&c.rulesFile, "care-rules", "VIDDA_CARE_RULES", "", "JSON file of the clinic's default limits (unset: the built-in ones)")
}

// rules loads the rules file, or the built-in rules.
func (c careSettings) rules() (*care.Rules, error) {
	if c.rulesFile == "" {
		return care.DefaultRules()
	}
	b, err := os.ReadFile(c.rulesFile)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_CARE_RULES: %w", err)
	}
	r, err := care.ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_CARE_RULES %s: %w", c.rulesFile, err)
	}
	return r, nil
}

// build makes the engine over the pool and the FHIR store.
func (c careSettings) build(pool *pgxpool.Pool, st care.Store, types *fhir.Registry, log *slog.Logger) (*care.Engine, error) {
	rules, err := c.rules()
	if err != nil {
		return nil, err
	}
	in := care.NewInterpreter(rules, care.NewDB(pool), care.DefaultInterpreterConfig(), log)
	return care.NewEngine(pool, st, types, in, care.DefaultEngineConfig(), log), nil
}

// careJudge is the ingest pipeline's devices.Judge over the engine's
// Interpreter. devices.Judge carries no context (mapping is pure); the
// Interpreter bounds its own lookups (LookupTimeout).
type careJudge struct{ in *care.Interpreter }

func (j careJudge) Judge(v *devices.Verdict) {
	r := care.Reading{Patient: v.PatientID, Code: v.Code, At: v.At, Received: v.Received, Value: v.Value}
	var buf [4]care.Component
	if len(v.Components) > 0 {
		r.Components = buf[:0]
		for _, c := range v.Components {
			r.Components = append(r.Components, care.Component{Code: c.Code, Value: c.Value})
		}
	}
	j.in.Interpret(context.Background(), &r)
	v.Flag, v.Late = string(r.Flag), r.Late
	for i := range r.Components {
		v.Components[i].Flag = string(r.Components[i].Flag)
	}
}
