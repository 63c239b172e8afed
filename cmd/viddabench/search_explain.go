package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// searchPlan is what --explain reports for one shape: the plans of the
// query that reads vidda's page, as the clinician's token asks it.
type searchPlan struct {
	Shape   string `json:"shape"`
	Query   string `json:"query"`
	Generic string `json:"generic_plan"`
	Custom  string `json:"custom_plan"`
}

// explainShapes runs EXPLAIN (ANALYZE, BUFFERS) of each search shape's
// page query for patient p, through the store's own SQL on the loaded
// database.
func explainShapes(ctx context.Context, pool *pgxpool.Pool, shapes []searchShape, p int) ([]searchPlan, error) {
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, fhir.NewRegistry(), params, store.DefaultConfig(), slog.New(slog.DiscardHandler))
	var out []searchPlan
	for _, s := range shapes {
		if s.query == nil {
			continue
		}
		raw := s.query(p)
		v, err := url.ParseQuery(raw)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", s.name, err)
		}
		q, err := params.Parse("Observation", v, true)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", s.name, err)
		}
		plans, err := st.ExplainSearch(ctx, q, store.Access{}, true)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", s.name, err)
		}
		out = append(out, searchPlan{Shape: s.name, Query: "Observation?" + raw, Generic: plans.Generic, Custom: plans.Custom})
	}
	return out, nil
}
