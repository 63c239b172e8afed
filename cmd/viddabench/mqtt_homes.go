package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/devices/loadgen"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// home is one simulated home: a patient, the device bound to it and the
// device's MQTT credential.
type home struct {
	patient string
	loadgen.Home
}

// provisionWorkers is how many homes are written at once.
const provisionWorkers = 8

// provisionHomes registers n homes the way `vidda device add` does (a
// Patient, a Device bound to it, a credential from auth.NewDeviceSecret),
// through the store directly: a `vidda device add` process per home takes
// ~90 ms, 90 s for a thousand.
func provisionHomes(ctx context.Context, dbURL string, n int) ([]home, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("provision homes: %w", err)
	}
	cfg.MaxConns = provisionWorkers
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("provision homes: %w", err)
	}
	defer pool.Close()
	st := store.New(pool, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	homes := make([]home, n)
	errs := make([]error, provisionWorkers)
	var wg sync.WaitGroup
	for w := range provisionWorkers {
		wg.Go(func() {
			for i := w; i < n && ctx.Err() == nil; i += provisionWorkers {
				if homes[i], errs[w] = provisionHome(ctx, st, i); errs[w] != nil {
					return
				}
			}
			if errs[w] == nil && ctx.Err() != nil {
				errs[w] = fmt.Errorf("provision homes: %w", ctx.Err())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return homes, nil
}

// provisionHome writes home i: Patient/bench-home-NNNN and
// Device/bench-dev-NNNN.
func provisionHome(ctx context.Context, st *store.Store, i int) (home, error) {
	h := home{patient: fmt.Sprintf("bench-home-%04d", i)}
	h.DeviceID = fmt.Sprintf("bench-dev-%04d", i)
	patient := map[string]any{
		"resourceType": "Patient", "id": h.patient, "active": true,
		"identifier": []any{map[string]any{"system": "urn:vidda:bench-home", "value": h.patient}},
		"name":       []any{map[string]any{"family": "Home", "given": []string{fmt.Sprint(i)}}},
	}
	device := map[string]any{
		"resourceType": "Device", "id": h.DeviceID, "status": "active",
		"identifier": []any{map[string]any{"system": "urn:vidda:device-serial", "value": fmt.Sprintf("BENCH-%04d", i)}},
		"patient":    map[string]any{"reference": "Patient/" + h.patient},
	}
	for _, r := range []map[string]any{patient, device} {
		if err := put(ctx, st, r); err != nil {
			return h, err
		}
	}
	secret, hash, err := auth.NewDeviceSecret()
	if err != nil {
		return h, fmt.Errorf("provision %s: %w", h.DeviceID, err)
	}
	if err := st.PutDeviceCredential(ctx, h.DeviceID, h.DeviceID, hash); err != nil {
		return h, fmt.Errorf("provision %s: %w", h.DeviceID, err)
	}
	h.Username, h.Password = h.DeviceID, secret
	return h, nil
}

// put creates or replaces a resource under its id, as `vidda seed` does.
func put(ctx context.Context, st *store.Store, body map[string]any) error {
	typ, id := body["resourceType"].(string), body["id"].(string)
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("provision %s/%s: %w", typ, id, err)
	}
	res, err := fhir.NewRegistry().Parse(typ, raw)
	if err != nil {
		return fmt.Errorf("provision %s/%s: %w", typ, id, err)
	}
	if _, _, err := st.Update(ctx, res, id, 0, store.Access{}); err != nil {
		return fmt.Errorf("provision %s/%s: %w", typ, id, err)
	}
	return nil
}

// fleetHomes are the credentials the load generator connects with.
func fleetHomes(homes []home) []loadgen.Home {
	out := make([]loadgen.Home, len(homes))
	for i, h := range homes {
		out[i] = h.Home
	}
	return out
}

// registry answers the in-process baseline brokers' credential checks
// from the provisioned homes, without a database.
type registry map[string]home // by username

func newRegistry(homes []home) registry {
	r := make(registry, len(homes))
	for _, h := range homes {
		r[h.Username] = h
	}
	return r
}

// CheckDevice implements broker.Credentials.
func (r registry) CheckDevice(_ context.Context, username, password string) (string, bool, error) {
	h, ok := r[username]
	return h.DeviceID, ok && h.Password == password, nil
}

// patientOf returns the patient of a device.
func (r registry) patientOf(deviceID string) (string, bool) {
	h, ok := r[deviceID] // usernames are device ids
	return h.patient, ok
}
