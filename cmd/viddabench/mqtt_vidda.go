package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vidda/vidda/devices/loadgen"
)

// viddaChild is a `vidda serve` child with what the phases need of it.
type viddaChild struct {
	srv     *server
	metrics *metricsScraper
	watch   []watched // vidda and the processes beside it, for CPU use
}

// startVidda starts `vidda serve` with env (plus its HTTP address and the
// bench's logging) and returns once it is ready and, when mqttAddr is
// set, its embedded broker accepts connections.
func startVidda(ctx context.Context, o mqttOptions, env []string, logPath, mqttAddr string, run *viddaRun, beside ...watched) (*viddaChild, error) {
	httpAddr, err := freeAddr(ctx)
	if err != nil {
		return nil, err
	}
	env = append(env, "VIDDA_HTTP_ADDR="+httpAddr, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text")
	srv, startup, err := startServer(ctx, o.vidda, env, httpAddr, logPath)
	if err != nil {
		return nil, err
	}
	run.StartupMs = ms(startup)
	if mqttAddr != "" {
		if err := waitTCP(ctx, mqttAddr, srv.exited, 10*time.Second); err != nil {
			srv.kill()
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
	}
	out, err := runVidda(ctx, o.vidda, env, "token", "--role", "admin")
	if err != nil {
		srv.kill()
		return nil, err
	}
	watch := append([]watched{{name: "vidda", pid: srv.cmd.Process.Pid}}, beside...)
	return &viddaChild{srv: srv, metrics: &metricsScraper{base: srv.base, token: strings.TrimSpace(out)}, watch: watch}, nil
}

// stop sends SIGTERM and records how vidda exited and what it logged.
func (v *viddaChild) stop(run *viddaRun, logPath string) error {
	shutdown, code, err := v.srv.terminate(60 * time.Second)
	run.ShutdownMs, run.ExitCode, run.Stopped = ms(shutdown), code, true
	run.LogLines, run.LogHead = logSummary(logPath)
	return err
}

// logHeadLines is how many log lines the report quotes.
const logHeadLines = 5

// logSummary counts a log's lines and returns the first few, clipped.
func logSummary(path string) (int, []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return 0, nil
	}
	head := lines[:min(logHeadLines, len(lines))]
	for i, l := range head {
		if len(l) > 240 {
			head[i] = l[:240] + "…"
		}
	}
	return len(lines), head
}

// phase runs one load against vidda and fills run: the generator's view,
// the rows it added and vidda's commit metrics. end runs while the homes
// are still connected.
func (v *viddaChild) phase(ctx context.Context, dbURL, addr string, homes []home, confirm loadgen.Confirm, l loadgen.Load, run *ingestRun, hooks phaseHooks) error {
	before, err := countObservations(ctx, dbURL)
	if err != nil {
		return err
	}
	m0 := v.metrics.scrape(ctx)
	res, cpu, err := flood(ctx, addr, homes, confirm, l, v.watch, hooks)
	*run = newIngestRun(res, l, cpu)
	if err != nil {
		return err
	}
	run.Commits = v.metrics.scrape(ctx).since(m0)
	after, err := countObservations(ctx, dbURL)
	if err != nil {
		return err
	}
	run.Stored = after - before
	return nil
}

// measureEmbedded runs phase 4 against one `vidda serve` with its
// embedded broker.
func measureEmbedded(ctx context.Context, o mqttOptions, dbURL, logPath string, homes []home, pg watched, rep *mqttReport) (err error) {
	mqttAddr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_MQTT_LISTEN="+mqttAddr)
	defer func() {
		if err != nil || rep.Embedded.ExitCode != 0 {
			rep.ServerLog = logTail(logPath)
		}
	}()
	v, err := startVidda(ctx, o, env, logPath, mqttAddr, &rep.Embedded, pg)
	if err != nil {
		return err
	}
	defer v.srv.kill()
	rss := func() {
		if n, err := v.srv.rssKiB(); err == nil {
			rep.Embedded.RSSKiB = n
		}
	}
	if err := v.phase(ctx, dbURL, mqttAddr, homes, loadgen.ConfirmPuback, o.floodLoad("f-"), &rep.Flood, phaseHooks{end: rss}); err != nil {
		return fmt.Errorf("embedded flood: %w", err)
	}
	if err := onBenchDB(ctx, dbURL, "CHECKPOINT"); err != nil {
		return err
	}
	if err := v.phase(ctx, dbURL, mqttAddr, homes[:1], loadgen.ConfirmPuback, o.backlogLoad(), &rep.Single, phaseHooks{}); err != nil {
		return fmt.Errorf("embedded single connection: %w", err)
	}
	if err := onBenchDB(ctx, dbURL, "CHECKPOINT"); err != nil {
		return err
	}
	if err := v.phase(ctx, dbURL, mqttAddr, homes, loadgen.ConfirmPuback, o.fixedLoad(), &rep.Fixed, phaseHooks{}); err != nil {
		return fmt.Errorf("embedded fixed rate: %w", err)
	}
	rep.Embedded.PeakRSSKiB = peakRSSKiB(v.srv.cmd.Process.Pid)
	return v.stop(&rep.Embedded, logPath)
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after %s: %w", addr, limit, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before %s accepted connections", addr)
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", addr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// metricsScraper reads vidda's ingest metrics from /metrics.
type metricsScraper struct {
	base, token string
}

// ingestMetrics are the cumulative sums of vidda's commit histograms.
type ingestMetrics struct {
	ok                      bool
	commits, readings, secs float64
}

// errMetrics means /metrics did not answer as expected.
var errMetrics = errors.New("metrics")

// scrape returns the counters; a failed scrape gives !ok (the report
// then shows no commit line: the metrics are a diagnosis, not a result).
func (s *metricsScraper) scrape(ctx context.Context) ingestMetrics {
	m, err := s.fetch(ctx)
	if err != nil {
		return ingestMetrics{}
	}
	return m
}

func (s *metricsScraper) fetch(ctx context.Context) (ingestMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/metrics", http.NoBody)
	if err != nil {
		return ingestMetrics{}, fmt.Errorf("%w: %w", errMetrics, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return ingestMetrics{}, fmt.Errorf("%w: %w", errMetrics, err)
	}
	body, err := drain(resp)
	if err != nil {
		return ingestMetrics{}, fmt.Errorf("%w: %w", errMetrics, err)
	}
	if resp.StatusCode != http.StatusOK {
		return ingestMetrics{}, fmt.Errorf("%w: %s", errMetrics, resp.Status)
	}
	m := ingestMetrics{ok: true}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "vidda_ingest_batch_readings_count":
			dst = &m.commits
		case "vidda_ingest_batch_readings_sum":
			dst = &m.readings
		case "vidda_ingest_commit_seconds_sum":
			dst = &m.secs
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
			return ingestMetrics{}, fmt.Errorf("%w: %s: %w", errMetrics, name, err)
		}
	}
	return m, nil
}

// since is what happened between an earlier scrape and this one.
func (m ingestMetrics) since(earlier ingestMetrics) *commitStats {
	if !m.ok || !earlier.ok {
		return nil
	}
	n := m.commits - earlier.commits
	if n <= 0 {
		return &commitStats{}
	}
	return &commitStats{
		Commits:      int(n),
		MeanReadings: (m.readings - earlier.readings) / n,
		MeanCommitMs: 1000 * (m.secs - earlier.secs) / n,
	}
}
