package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Targets from the issue; missing one is reported, not an error.
const (
	targetCreateRatio = 1.5 // creates/s ÷ raw inserts/s
	targetReadP99ms   = 5.0 // one client, p99 of GET by id
	idleWait          = 3 * time.Second
)

// benchHTTP runs every phase, prints the report and fails if anything went
// wrong (errors, a crash, a non-zero exit, a lost write).
func benchHTTP(ctx context.Context, o options, stdout io.Writer) error {
	rep := report{Machine: readMachine(), Rows: -1, Config: runConfig{
		Vidda: o.vidda, Clients: o.clients, DurationS: o.duration.Seconds(), Reads: o.reads,
	}}
	return conclude(ctx, &rep, collect(ctx, o, &rep), stdout, o.json)
}

// collect fills rep phase by phase; it returns the error that stopped it.
func collect(ctx context.Context, o options, rep *report) error {
	return withBenchDatabase(ctx, o.adminURL, func(dbURL string, info pgInfo) (err error) {
		rep.Postgres = info
		dbEnv := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text")
		if _, err := runVidda(ctx, o.vidda, dbEnv, "migrate"); err != nil {
			return err
		}
		// Each write phase starts from a checkpoint, so neither pays for the
		// other's dirty pages.
		if err := onBenchDB(ctx, dbURL, "CHECKPOINT"); err != nil {
			return err
		}
		cpu := readCPU()
		if rep.Raw, err = rawInserts(ctx, dbURL, o.clients, o.duration); err != nil {
			return err
		}
		rep.Raw.CPUBusyPct = cpu.busySince()
		if rep.Raw.Errors > 0 {
			return fmt.Errorf("raw inserts: %d errors, first: %s", rep.Raw.Errors, rep.Raw.FirstError)
		}
		if err := onBenchDB(ctx, dbURL, "TRUNCATE observation", "CHECKPOINT"); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "viddabench-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		return measureServer(ctx, o, dbURL, filepath.Join(dir, "vidda-serve.log"), rep)
	})
}

// measureServer runs steps 2 to 6 (start-up, memory, creates, reads and
// shutdown of one `vidda serve` child), then step 7, the cost of auditing.
func measureServer(ctx context.Context, o options, dbURL, logPath string, rep *report) (err error) {
	addr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	mqttAddr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	// The embedded broker listens too: never on a port someone else holds.
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_HTTP_ADDR="+addr, "VIDDA_MQTT_LISTEN="+mqttAddr, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text")
	// Runs last: the child has exited, so its log is complete.
	defer func() {
		if err != nil || rep.serverFailed() {
			rep.ServerLog = logTail(logPath)
		}
	}()
	srv, startup, err := startServer(ctx, o.vidda, env, addr, logPath)
	if err != nil {
		return err
	}
	defer srv.kill()
	rep.StartupMs = ms(startup)
	select {
	case <-time.After(idleWait):
	case <-srv.exited:
		return fmt.Errorf("vidda serve exited while idle: %w", srv.waitErr)
	case <-ctx.Done():
		return fmt.Errorf("idle wait: %w", ctx.Err())
	}
	if rep.IdleRSSKiB, err = srv.rssKiB(); err != nil {
		return err
	}
	out, err := runVidda(ctx, o.vidda, env, "token", "--role", "admin")
	if err != nil {
		return err
	}
	token := strings.TrimSpace(out)
	if token == "" || strings.ContainsAny(token, " \n") {
		return errors.New("vidda token --role admin did not print one token")
	}
	t := newTarget(srv.base, token, o.clients)
	defer t.close()
	var ids []string
	cpu := readCPU()
	rep.Creates, ids = t.creates(ctx, o.clients, o.duration)
	rep.Creates.CPUBusyPct = cpu.busySince()
	if ctx.Err() != nil {
		return fmt.Errorf("creates: %w", ctx.Err())
	}
	if rep.Raw.PerSecond > 0 {
		rep.CreatesVsRaw = rep.Creates.PerSecond / rep.Raw.PerSecond
	}
	if len(ids) == 0 {
		return errors.New("no create succeeded, so nothing to read")
	}
	rep.ReadIDs = len(ids)
	cpu = readCPU()
	rep.ReadsOne = t.reads(ctx, ids, 1, o.reads, 0)
	rep.ReadsOne.CPUBusyPct = cpu.busySince()
	cpu = readCPU()
	rep.ReadsMany = t.reads(ctx, ids, o.clients, 0, o.duration/2)
	rep.ReadsMany.CPUBusyPct = cpu.busySince()
	if ctx.Err() != nil {
		return fmt.Errorf("reads: %w", ctx.Err())
	}
	if rep.LoadRSSKiB, err = srv.rssKiB(); err != nil {
		return err
	}
	t.close()
	shutdown, code, err := srv.terminate(60 * time.Second)
	rep.ShutdownMs, rep.ExitCode, rep.Stopped = ms(shutdown), code, true
	if err != nil {
		return err
	}
	if rep.Rows, err = countObservations(ctx, dbURL); err != nil {
		return err
	}
	return measureAudit(ctx, o, dbURL, filepath.Dir(logPath), ids, rep)
}
