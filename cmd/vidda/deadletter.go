package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/ingest"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/config"
)

// deadletter lists device input that could not be stored, and replays it
// once the cause is fixed (a device registered or bound, say).
func deadletter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprintln(e.stderr, "Usage: vidda deadletter list [--device ID] [--limit 100]\n"+
			"       vidda deadletter replay --id N\n\n"+
			"list prints one JSON object per line: id, received, device, topic, reason, detail, payload.\n"+
			"replay runs a dead letter through the ingest pipeline again, judged as of when it arrived.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errors.New("deadletter: say list or replay")
	}
	var c common
	var cc careSettings
	var deviceID string
	var limit int
	var id int
	cs := config.New("deadletter "+args[0], e.getenv)
	bindCommon(cs, &c)
	bindCare(cs, &cc)
	cs.String(&deviceID, "device", "", "", "only this device's dead letters (list)")
	cs.Int(&limit, "limit", "", 100, "at most this many, newest first (list)")
	cs.Int(&id, "id", "", 0, "the dead letter to replay (replay)")
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	log, pool, st, err := c.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if args[0] == "replay" {
		// A replayed reading is judged like any other (interpretation,
		// late flag), against the same clinic rules as serve.
		rules, err := cc.rules()
		if err != nil {
			return err
		}
		judge := careJudge{care.NewInterpreter(rules, care.NewDB(pool), care.DefaultInterpreterConfig(), log)}
		return replay(ctx, e, st, judge, int64(id), log)
	}
	letters, err := st.DeadLetters(ctx, deviceID, limit)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	for _, d := range letters {
		if err := enc.Encode(map[string]any{
			"id": d.ID, "received": d.ReceivedAt.UTC().Format(time.RFC3339Nano), "device": d.DeviceID, "topic": d.Topic,
			"reason": d.Reason, "detail": d.Detail, "payload": string(d.Payload), "replayed": d.ReplayedAt,
		}); err != nil {
			return fmt.Errorf("deadletter: %w", err)
		}
	}
	return nil
}

// replay resubmits a dead letter through a pipeline of its own.
func replay(ctx context.Context, e *env, st *store.Store, judge devices.Judge, id int64, log *slog.Logger) error {
	if id <= 0 {
		return errors.New("deadletter replay: --id is required")
	}
	d, err := st.DeadLetter(ctx, id)
	if err != nil {
		return err
	}
	_, kind, ok := devices.ParseTopic(d.Topic)
	if !ok {
		return fmt.Errorf("deadletter replay: topic %q is not a device topic", d.Topic)
	}
	sink, err := newIngestSink(st)
	if err != nil {
		return err
	}
	cfg := ingest.DefaultConfig()
	cfg.Judge = judge
	pipe := ingest.New(sink, ingestBindings{st}, fhir.NewRegistry(), cfg, nil, log)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pipe.Run(pctx) }()
	outcome := make(chan ingest.Outcome, 1)
	err = pipe.Submit(ctx, ingest.Message{DeviceID: d.DeviceID, Kind: kind, Topic: d.Topic, Payload: d.Payload, Received: d.ReceivedAt},
		func(o ingest.Outcome) { outcome <- o })
	if err != nil {
		stop()
		return errors.Join(err, <-done)
	}
	o := <-outcome
	stop()
	if err := <-done; err != nil {
		return err
	}
	if !o.Committed {
		return errors.New("deadletter replay: not committed")
	}
	if o.Rejected {
		return fmt.Errorf("deadletter replay: still rejected (kept as a new dead letter): %s", o.Reply)
	}
	if err := st.MarkReplayed(ctx, id); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(o.Reply))
	return nil
}
