package bulk

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/internal/obs/obstest"
)

func TestAnExportRunMovesTheExportMetrics(t *testing.T) {
	f := newFixture(t)
	finished := make(chan Finished, 1)
	e := f.exporter(func(c *Config) {
		c.MaxFileResources = 2
		c.Finished = func(_ context.Context, fin Finished) { finished <- fin }
	})
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	if got := obstest.Sum(t, reg, "vidda_export_runs_finished_total"); got != 0 {
		t.Fatalf("%v runs finished before any started", got)
	}
	run(t, e)
	f.start(t, e, KindSystem, "", "")
	var fin Finished
	select {
	case fin = <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("the export did not finish")
	}
	if fin.Outcome != OutcomeCompleted {
		t.Fatalf("outcome %s: %v", fin.Outcome, fin.Err)
	}
	j, err := e.Status(context.Background(), fin.Job.ID, f.who)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, file := range j.Output {
		st, err := os.Stat(filepath.Join(f.dir, j.ID, file.Name))
		if err != nil {
			t.Fatal(err)
		}
		size += st.Size()
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vidda_export_jobs_queued_total", nil, 1},
		{"vidda_export_runs_started_total", nil, 1},
		{"vidda_export_runs_finished_total", []string{"outcome", OutcomeCompleted}, 1},
		{"vidda_export_runs_finished_total", []string{"outcome", OutcomeFailed}, 0},
		{"vidda_export_running", nil, 0},
		{"vidda_export_resources_written_total", nil, float64(fin.Written)},
		{"vidda_export_bytes_written_total", nil, float64(size)},
		{"vidda_export_run_seconds", []string{"outcome", OutcomeCompleted}, 1},
	} {
		if got := obstest.Sum(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fin.Written == 0 || size == 0 {
		t.Errorf("the export wrote %d resources in %d bytes", fin.Written, size)
	}
}

func TestACancelledRunCountsAsCancelledAndStopsRunning(t *testing.T) {
	f := newFixture(t)
	reached := make(chan struct{})
	finished := make(chan Finished, 1)
	e := f.exporter(func(c *Config) { c.Finished = func(_ context.Context, fin Finished) { finished <- fin } })
	e.afterType = func(ctx context.Context, _ string) {
		close(reached)
		<-ctx.Done()
	}
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	id := f.start(t, e, KindSystem, "", "_type=Patient,Observation").ID
	<-reached
	if got := obstest.Sum(t, reg, "vidda_export_running"); got != 1 {
		t.Errorf("%v runs in progress during a run", got)
	}
	if err := e.Cancel(context.Background(), id, f.who); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end")
	}
	if got := obstest.Sum(t, reg, "vidda_export_runs_finished_total", "outcome", OutcomeCancelled); got != 1 {
		t.Errorf("%v cancelled runs, want 1", got)
	}
	if got := obstest.Sum(t, reg, "vidda_export_running"); got != 0 {
		t.Errorf("%v runs in progress after the cancel", got)
	}
	if got := obstest.Sum(t, reg, "vidda_export_resources_written_total"); got < 3 {
		t.Errorf("%v resources written before the cancel, want at least the 3 Patients", got)
	}
}
