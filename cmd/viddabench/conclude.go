package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// benchReport is what both benchmarks' reports do at the end.
type benchReport interface {
	addProblem(p string)
	problemList() []string
	judge()
	write(w io.Writer, asJSON bool) error
}

func (r *report) addProblem(p string)       { r.Problems = append(r.Problems, p) }
func (r *report) problemList() []string     { return r.Problems }
func (r *mqttReport) addProblem(p string)   { r.Problems = append(r.Problems, p) }
func (r *mqttReport) problemList() []string { return r.Problems }

// conclude records how collecting ended, prints the report, and fails if
// anything went wrong (errors, a crash, a non-zero exit, a lost write).
func conclude(ctx context.Context, rep benchReport, collectErr error, stdout io.Writer, asJSON bool) error {
	if ctx.Err() != nil {
		rep.addProblem("interrupted: the numbers cover only part of the run")
	}
	if collectErr != nil {
		rep.addProblem(collectErr.Error())
	}
	rep.judge()
	if err := rep.write(stdout, asJSON); err != nil {
		return err
	}
	if p := rep.problemList(); len(p) > 0 {
		return fmt.Errorf("%d problem(s), first: %s", len(p), p[0])
	}
	return nil
}

// withBenchDatabase runs fn on a fresh database of the server at adminURL
// and drops it afterwards, whatever happened.
func withBenchDatabase(ctx context.Context, adminURL string, fn func(dbURL string, info pgInfo) error) (err error) {
	name, dbURL, info, err := createDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, dropDatabase(dctx, adminURL, name))
	}()
	return fn(dbURL, info)
}

// keepBenchDatabase runs fn on a fresh database of the server at adminURL
// and leaves it there, for a look at the plans afterwards; kept receives
// its URL.
func keepBenchDatabase(ctx context.Context, adminURL string, kept *string, fn func(dbURL string, info pgInfo) error) error {
	_, dbURL, info, err := createDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	*kept = dbURL
	return fn(dbURL, info)
}
