package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vidda/vidda/devices/broker"
	"github.com/vidda/vidda/devices/sim"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
)

// simHomeSystem identifies the Patients devsim registers.
const simHomeSystem = "urn:vidda:simulated-home"

const devsimUsage = `Usage: vidda devsim --homes N --rate R [--duration 60s] [--broker tcp://127.0.0.1:1883] [--seed 1]

Simulates N patients' homes publishing readings over MQTT, as their
gateways would, to load vidda and check its device path end to end.

It registers (idempotently) Patients sim-patient-1..N and their 1-3 devices
sim-<i>-<kind> (blood-pressure cuff, scale, pulse oximeter, glucometer,
thermometer, by the patient's condition), gives every device new MQTT
credentials (the old ones stop working), then connects each device on its
own and publishes R messages per second in all: realistic readings with
their daily patterns, about 2 % impossible values, 1 % re-sends of the
previous reading, 0.5 % malformed messages, and now and then an outage
after which a gateway flushes its backlog. --seed makes the readings
reproducible.

A line of progress goes to stderr every --progress; the summary (sent,
acknowledged, rate, PUBACK latency, what was in the mix, what vidda
replied) goes to stdout when --duration has passed or on Ctrl-C. Against
vidda's embedded broker a PUBACK means the reading is committed; against
an external broker (VIDDA_MQTT_URL) it means the broker has it.

Needs VIDDA_DATABASE_URL, the database vidda serve uses.

Flags:`

// devsimConfig are devsim's settings.
type devsimConfig struct {
	common
	homes    int
	sim      sim.Config
	seed     int
	progress time.Duration
	acked    string
}

// devsim registers simulated homes and runs the home simulator.
func devsim(ctx context.Context, e *env, args []string) error {
	cfg := devsimConfig{sim: sim.Config{InFlight: sim.DefaultInFlight}}
	cs := config.New("devsim", e.getenv)
	bindCommon(cs, &cfg.common)
	cs.Int(&cfg.homes, "homes", "", 10, "simulated homes, one patient each")
	cs.Flags().Float64Var(&cfg.sim.Rate, "rate", sim.DefaultRate, "messages per second across all homes")
	cs.Duration(&cfg.sim.Duration, "duration", "", 0, "how long to publish (0: until Ctrl-C)")
	cs.String(&cfg.sim.Broker, "broker", "", defaultSimBroker(e.getenv), "MQTT broker URL (default: VIDDA_MQTT_URL's host, else tcp://VIDDA_MQTT_LISTEN)")
	cs.Int(&cfg.seed, "seed", "", 1, "seed of the readings: the same seed gives the same readings")
	cs.Int(&cfg.sim.InFlight, "inflight", "", sim.DefaultInFlight, "messages one device may have waiting for their PUBACK")
	cs.Duration(&cfg.progress, "progress", "", sim.DefaultProgressEvery, "how often a progress line goes to stderr")
	cs.String(&cfg.acked, "acked", "", "", "write one JSON line per acknowledged message to this file: device, class, and the keys of the Observations it should have stored")
	cs.Flags().SetOutput(e.stderr)
	cs.Flags().Usage = func() {
		fmt.Fprintln(e.stderr, devsimUsage)
		cs.Flags().PrintDefaults()
	}
	if err := cs.Parse(args); err != nil {
		return err
	}
	if cfg.homes < 1 {
		return errors.New("devsim: --homes must be at least 1")
	}
	if cfg.sim.Rate <= 0 || cfg.progress <= 0 || cfg.seed < 0 {
		return errors.New("devsim: --rate and --progress must be positive, --seed not negative")
	}
	cfg.sim.Seed = uint64(cfg.seed)
	cfg.sim.ProgressEvery = cfg.progress
	if err := cfg.sim.Validate(); err != nil {
		return fmt.Errorf("devsim: %w", err)
	}

	log, pool, err := cfg.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), log)
	devs, err := registerHomes(ctx, st, types, sim.Homes(cfg.homes))
	if err != nil {
		return fmt.Errorf("devsim: register homes: %w", err)
	}
	log.InfoContext(ctx, "simulated homes registered", "homes", cfg.homes, "devices", len(devs))

	cfg.sim.Progress = func(s sim.Stats) { printProgress(e.stderr, s) }
	var acked *ackLog
	if cfg.acked != "" {
		f, err := os.Create(cfg.acked)
		if err != nil {
			return fmt.Errorf("devsim: --acked: %w", err)
		}
		defer f.Close()
		acked = newAckLog(f)
		cfg.sim.Delivered = acked.write
	}
	stats, err := sim.Run(ctx, cfg.sim, devs, log)
	if err != nil {
		return fmt.Errorf("devsim: %w", err)
	}
	if acked != nil {
		if err := acked.close(); err != nil {
			return fmt.Errorf("devsim: --acked: %w", err)
		}
	}
	printSummary(e.stdout, cfg, stats)
	return nil
}

// defaultSimBroker is where vidda's devices connect: the external broker
// (without vidda's own credentials) or the embedded one.
func defaultSimBroker(getenv func(string) string) string {
	if u, err := url.Parse(getenv("VIDDA_MQTT_URL")); err == nil && u.Host != "" {
		return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
	}
	if l := getenv("VIDDA_MQTT_LISTEN"); l != "" {
		return "tcp://" + l
	}
	return "tcp://" + broker.DefaultListen
}

// registerHomes writes each home's Patient and Devices with fixed ids
// (again and again the same) and gives every device fresh credentials:
// a secret is only known when it is made.
func registerHomes(ctx context.Context, st *store.Store, types *fhir.Registry, homes []sim.Home) ([]sim.Device, error) {
	perHome := make([][]sim.Device, len(homes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, h := range homes {
		g.Go(func() error {
			devs, err := registerHome(gctx, st, types, h)
			perHome[i] = devs
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err //nolint:wrapcheck // registerHome names the resource
	}
	var out []sim.Device
	for _, devs := range perHome {
		out = append(out, devs...)
	}
	return out, nil
}

func registerHome(ctx context.Context, st *store.Store, types *fhir.Registry, h sim.Home) ([]sim.Device, error) {
	patientID := "sim-patient-" + strconv.Itoa(h.Index)
	err := putResource(ctx, st, types, "Patient", patientID, map[string]any{
		"identifier": ident(simHomeSystem, strconv.Itoa(h.Index)),
		"active":     true,
		"name":       []any{map[string]any{"family": "Simulated", "given": []any{"Home " + strconv.Itoa(h.Index)}}},
	})
	if err != nil {
		return nil, err
	}
	devs := make([]sim.Device, 0, len(h.Kinds))
	for _, k := range h.Kinds {
		id := fmt.Sprintf("sim-%d-%s", h.Index, k)
		err := putResource(ctx, st, types, "Device", id, map[string]any{
			"identifier": ident(deviceSerialSystem, fmt.Sprintf("SIM-%d-%s", h.Index, k)),
			"status":     "active",
			"deviceName": []any{map[string]any{"name": k.Name(), "type": "user-friendly-name"}},
			"patient":    ref("Patient/" + patientID),
		})
		if err != nil {
			return nil, err
		}
		secret, hash, err := auth.NewDeviceSecret()
		if err != nil {
			return nil, err
		}
		if err := st.PutDeviceCredential(ctx, id, id, hash); err != nil {
			return nil, err
		}
		devs = append(devs, sim.Device{ID: id, Username: id, Password: secret, Kind: k, Home: h.Index, Profile: h.Profile})
	}
	return devs, nil
}

// ackLog writes a JSON line per acknowledged message; the simulator calls
// write from many goroutines.
type ackLog struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
	err error
}

func newAckLog(w io.Writer) *ackLog {
	bw := bufio.NewWriter(w)
	return &ackLog{w: bw, enc: json.NewEncoder(bw)}
}

// ackLine is one line of the --acked file.
type ackLine struct {
	Device string   `json:"device"`
	Class  string   `json:"class"`
	Keys   []string `json:"keys,omitempty"`
}

func (l *ackLog) write(d sim.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = l.enc.Encode(ackLine{Device: d.DeviceID, Class: d.Class.String(), Keys: d.Keys})
	}
}

func (l *ackLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	return l.w.Flush()
}

func printProgress(w io.Writer, s sim.Stats) {
	fmt.Fprintf(w, "devsim %s: sent %d (%.0f/s), acked %d, PUBACK p50 %s p99 %s\n",
		s.Elapsed.Round(time.Second), s.Sent, s.Rate(), s.Acked, ms(s.P50), ms(s.P99))
}

func printSummary(w io.Writer, cfg devsimConfig, s sim.Stats) {
	pct := 0.0
	if s.Sent > 0 {
		pct = 100 * float64(s.Acked) / float64(s.Sent)
	}
	fmt.Fprintf(w, "devsim: %d homes, %d devices, seed %d, %s at %g messages/s asked\n",
		cfg.homes, s.Devices, cfg.seed, s.Elapsed.Round(10*time.Millisecond), cfg.sim.Rate)
	fmt.Fprintf(w, "  sent           %d messages (%d readings), %.1f/s\n", s.Sent, s.Readings, s.Rate())
	fmt.Fprintf(w, "  acknowledged   %d (%.1f %%), unacked %d, timeouts %d, failed and re-sent %d/%d, reconnects %d\n",
		s.Acked, pct, s.Unacked, s.Timeouts, s.Failed, s.Resent, s.Reconnects)
	fmt.Fprintf(w, "  PUBACK latency p50 %s, p99 %s, max %s\n", ms(s.P50), ms(s.P99), ms(s.Max))
	fmt.Fprintf(w, "  in the mix     duplicates %d, malformed %d, out-of-range %d, buffered %d in %d outages, still held %d\n",
		s.Duplicates, s.Malformed, s.OutOfRange, s.Buffered, s.Outages, s.Held)
	fmt.Fprintf(w, "  vidda replied  %d observations stored, %d already stored, %d items rejected\n", s.Stored, s.StoredBefore, s.Rejected)
}

// ms writes a latency in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}
