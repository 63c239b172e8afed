package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// `viddabench export` loads vital signs as the search benchmark does
// (1,000,000 Observations of 1,000 patients by default), then times a FHIR
// Bulk Data export of every Observation through `vidda serve`, from the
// kick-off to the manifest, against PostgreSQL's own COPY (SELECT content
// FROM observation) TO STDOUT into a counting sink, in the same run. It
// samples vidda's RSS while the export runs, then downloads every file
// and checks it line by line.

// exportOptions are the settings of one `viddabench export` run.
type exportOptions struct {
	options          // vidda, json, adminURL, getenv
	observations int // Observations loaded
	patients     int // Patients they belong to
	loaders      int // concurrent COPY connections of the load
}

// Targets of the export benchmark; missing one is reported, not an error.
const (
	targetExportRate   = 100_000 // resources/s written as ndjson
	targetExportVsCopy = 0.5     // vidda's rate ÷ COPY's
	targetExportRSSMiB = 64      // growth of vidda's RSS during the export
)

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseExportFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	rep := exportReport{Machine: readMachine(), Config: exportConfig{Vidda: o.vidda, Observations: o.observations, Patients: o.patients}}
	return conclude(ctx, &rep, collectExport(ctx, o, &rep), stdout, o.json)
}

func parseExportFlags(args []string, getenv func(string) string, stdout io.Writer) (exportOptions, error) {
	o := exportOptions{options: options{getenv: getenv}}
	fs := flag.NewFlagSet("viddabench export", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&o.vidda, "vidda", "bin/vidda", "path of the vidda binary to benchmark")
	fs.IntVar(&o.observations, "observations", 1_000_000, "Observations to load and export")
	fs.IntVar(&o.patients, "patients", 1000, "Patients they belong to")
	fs.IntVar(&o.loaders, "loaders", 4, "concurrent COPY connections of the load")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: viddabench export [--vidda bin/vidda] [--observations 1000000] [--patients 1000] [--json]")
		fmt.Fprintln(stdout, "\nNeeds VIDDA_BENCH_DATABASE_URL (a postgres:// URL; the run creates and drops its own database there).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.patients < 1 || o.patients > 1_000_000:
		return o, errors.New("--patients must be between 1 and 1000000")
	case o.observations < o.patients || o.observations > 100_000_000:
		return o, errors.New("--observations must be at least --patients and at most 100000000")
	case o.loaders < 1 || o.loaders > 64:
		return o, errors.New("--loaders must be between 1 and 64")
	}
	o.adminURL = getenv("VIDDA_BENCH_DATABASE_URL")
	if o.adminURL == "" {
		return o, errors.New("VIDDA_BENCH_DATABASE_URL is not set (run through make bench-export or deploy/with-testdb.sh --durable)")
	}
	if _, err := os.Stat(o.vidda); err != nil {
		return o, fmt.Errorf("--vidda: %w (build it with make build)", err)
	}
	return o, nil
}

func collectExport(ctx context.Context, o exportOptions, rep *exportReport) error {
	return withBenchDatabase(ctx, o.adminURL, func(dbURL string, info pgInfo) error {
		rep.Postgres = info
		if _, err := runVidda(ctx, o.vidda, o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text"), "migrate"); err != nil {
			return err
		}
		so := searchOptions{options: o.options, observations: o.observations, patients: o.patients, loaders: o.loaders}
		if _, err := loadSearchData(ctx, so, dbURL, &rep.Load); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "viddabench-export-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		if rep.CopyBefore, err = copyBaseline(ctx, conn); err != nil {
			return err
		}
		logPath := filepath.Join(dir, "vidda-serve.log")
		if err := measureExport(ctx, o, dbURL, filepath.Join(dir, "exports"), logPath, rep); err != nil {
			rep.ServerLog = logTail(logPath)
			return err
		}
		if rep.CopyAfter, err = copyBaseline(ctx, conn); err != nil {
			return err
		}
		return nil
	})
}

// copyRun is one pass of a baseline over the observation table.
type copyRun struct {
	Rows      int64   `json:"rows"`
	MiB       float64 `json:"mib"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"rows_per_second"`
}

// lineCounter is a sink that counts what goes through it.
type lineCounter struct{ lines, bytes int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	c.bytes += int64(len(p))
	return len(p), nil
}

// copyBaseline is PostgreSQL's own COPY of the stored JSON, into a sink
// that only counts lines: how fast the database hands the bytes out.
func copyBaseline(ctx context.Context, conn *pgx.Conn) (copyRun, error) {
	var sink lineCounter
	t0 := time.Now()
	if _, err := conn.PgConn().CopyTo(ctx, &sink, "COPY (SELECT content FROM observation WHERE NOT deleted) TO STDOUT"); err != nil {
		return copyRun{}, fmt.Errorf("copy baseline: %w", err)
	}
	s := time.Since(t0).Seconds()
	return copyRun{Rows: sink.lines, MiB: float64(sink.bytes) / (1 << 20), Seconds: s, PerSecond: float64(sink.lines) / s}, nil
}

// measureExport starts vidda, exports every Observation and checks the
// files.
func measureExport(ctx context.Context, o exportOptions, dbURL, exportDir, logPath string, rep *exportReport) error {
	addr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_HTTP_ADDR="+addr, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text",
		"VIDDA_EXPORT_DIR="+exportDir)
	srv, _, err := startServer(ctx, o.vidda, env, addr, logPath)
	if err != nil {
		return err
	}
	defer srv.kill()
	out, err := runVidda(ctx, o.vidda, env, "token", "--role", "system")
	if err != nil {
		return err
	}
	token := strings.TrimSpace(out)
	client := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	defer client.CloseIdleConnections()
	get := func(path string, headers ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.base+path, http.NoBody)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return client.Do(req)
	}
	if rep.RSSBeforeKiB, err = srv.rssKiB(); err != nil {
		return err
	}

	x := &rep.Export
	t0 := time.Now()
	resp, err := get("/fhir/$export?_type=Observation", "Prefer", "respond-async")
	if err != nil {
		return fmt.Errorf("kick-off: %w", err)
	}
	body, _ := drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("kick-off: %d %s", resp.StatusCode, clip(body))
	}
	status := strings.TrimPrefix(resp.Header.Get("Content-Location"), srv.base)
	var m exportManifest
	for {
		if rss, err := srv.rssKiB(); err == nil {
			rep.RSSPeakKiB = max(rep.RSSPeakKiB, rss)
		}
		resp, err := get(status)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		body, _ := drain(resp)
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &m); err != nil {
				return fmt.Errorf("manifest: %w", err)
			}
			break
		}
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status: %d %s", resp.StatusCode, clip(body))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("export: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	x.Seconds = time.Since(t0).Seconds()
	for _, f := range m.Output {
		x.Resources += f.Count
		x.Files++
	}
	x.PerSecond = float64(x.Resources) / x.Seconds
	if rep.RSSAfterKiB, err = srv.rssKiB(); err != nil {
		return err
	}
	rep.RSSPeakKiB = max(rep.RSSPeakKiB, rep.RSSAfterKiB)

	// Read every file back over HTTP: each line one Observation, the
	// counts the manifest's and the database's.
	t1 := time.Now()
	var lines int64
	for _, f := range m.Output {
		n, size, err := checkFile(get, strings.TrimPrefix(f.URL, srv.base))
		if err != nil {
			return err
		}
		if n != f.Count {
			return fmt.Errorf("%s: %d lines, the manifest says %d", f.URL, n, f.Count)
		}
		lines += n
		x.MiB += float64(size) / (1 << 20)
	}
	x.DownloadSeconds = time.Since(t1).Seconds()
	dbCount, err := countObservations(ctx, dbURL)
	if err != nil {
		return err
	}
	if lines != int64(dbCount) {
		return fmt.Errorf("the files hold %d Observations, the database %d", lines, dbCount)
	}
	rep.Verified = fmt.Sprintf("%d files downloaded, %d lines, each one Observation; the database holds %d", len(m.Output), lines, dbCount)
	return nil
}

type exportManifest struct {
	Output []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int64  `json:"count"`
	} `json:"output"`
}

// checkFile downloads one file and checks every line is one JSON
// Observation.
func checkFile(get func(string, ...string) (*http.Response, error), path string) (lines, size int64, err error) {
	resp, err := get(path)
	if err != nil {
		return 0, 0, fmt.Errorf("download %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, 0, fmt.Errorf("download %s: %d %s", path, resp.StatusCode, clip(body))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		size += int64(len(line)) + 1
		if !bytes.HasPrefix(line, []byte(`{"resourceType":"Observation",`)) || !json.Valid(line) {
			return lines, size, fmt.Errorf("%s line %d is not one JSON Observation: %s", path, lines+1, clip(line))
		}
		lines++
	}
	if err := sc.Err(); err != nil {
		return lines, size, fmt.Errorf("download %s: %w", path, err)
	}
	return lines, size, nil
}
