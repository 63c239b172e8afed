package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/config"
)

// deadletter lists device input that could not be stored.
func deadletter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(e.stderr, "Usage: vidda deadletter list [--device ID] [--limit 100]\n\n"+
			"Prints one JSON object per line: id, received, device, topic, reason, detail, payload.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errors.New("deadletter: say list")
	}
	var c common
	var deviceID string
	var limit int
	cs := config.New("deadletter list", e.getenv)
	bindCommon(cs, &c)
	cs.String(&deviceID, "device", "", "", "only this device's dead letters")
	cs.Int(&limit, "limit", "", 100, "at most this many, newest first")
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	log, pool, err := c.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), log)
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
