package sim

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/vidda/vidda/devices"
)

// Defaults of Config.
const (
	DefaultBroker         = "tcp://127.0.0.1:1883"
	DefaultRate           = 10
	DefaultInFlight       = 20 // Mosquitto's max_inflight_messages
	DefaultAckTimeout     = 10 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultProgressEvery  = 5 * time.Second
	// DefaultWindow keeps every simulated measurement well inside
	// ingestion's default maximum age (devices.DefaultMaxAge).
	DefaultWindow = 14 * 24 * time.Hour
)

// maxWindow keeps the oldest simulated measurement (a day before the
// window, at most) inside ingestion's default maximum age, with a day to
// spare for the run itself.
const maxWindow = devices.DefaultMaxAge - 2*24*time.Hour

// Mix is how often a device sends something other than a fresh, valid
// reading, as a probability per message (0.01 is 1 %). Zero means the
// default; a negative value turns that kind off.
type Mix struct {
	// OutOfRange is a reading with an impossible value (ClassOutOfRange).
	OutOfRange float64
	// Duplicate is a re-send of the previous reading (ClassDuplicate).
	Duplicate float64
	// Malformed is a payload vidda cannot read (ClassMalformed).
	Malformed float64
	// Outage is the chance, per measurement, that the gateway goes
	// offline for the next 3 to 30 measurements and then flushes them.
	Outage float64
}

// DefaultMix is 2 % out of range, 1 % duplicates, 0.5 % malformed and an
// outage every 500 measurements.
func DefaultMix() Mix {
	return Mix{OutOfRange: 0.02, Duplicate: 0.01, Malformed: 0.005, Outage: 0.002}
}

func (m Mix) withDefaults() Mix {
	d := DefaultMix()
	pick := func(v, def float64) float64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return Mix{
		OutOfRange: pick(m.OutOfRange, d.OutOfRange),
		Duplicate:  pick(m.Duplicate, d.Duplicate),
		Malformed:  pick(m.Malformed, d.Malformed),
		Outage:     pick(m.Outage, d.Outage),
	}
}

// Config configures a simulation. Zero values mean the defaults.
type Config struct {
	// Broker is the MQTT broker URL: tcp://host:port, or ssl://host:port
	// for TLS with the system's roots.
	Broker string
	// Rate is messages per second across all devices. A message is one
	// measurement (an oximeter's SpO2 and pulse travel together), a
	// duplicate or a malformed payload; readings flushed after an outage
	// were counted when they were measured.
	Rate float64
	// Duration ends the run; zero runs until the context ends.
	Duration time.Duration
	// Seed makes the readings reproducible.
	Seed uint64
	// Start is the simulated now: no measurement is later. Zero: when Run
	// starts.
	Start time.Time
	// Window is how far back of Start measurements go.
	Window time.Duration
	// Mix sets how often readings are out of range, duplicated or
	// malformed, and how often a gateway has an outage.
	Mix Mix
	// InFlight is how many messages a connection may have waiting for
	// their PUBACK; the device waits for a slot before it publishes more.
	InFlight int
	// AckTimeout is how long a PUBACK may take before it counts as a
	// timeout in Stats (the message is still waited for).
	AckTimeout time.Duration
	// DrainTimeout is how long Run waits for the PUBACKs of messages in
	// flight once the run ends; those still missing are Stats.Unacked.
	DrainTimeout time.Duration
	// ConnectTimeout bounds each device's first connection.
	ConnectTimeout time.Duration
	// Progress, when set, is called with the running totals every
	// ProgressEvery, from Run's goroutine.
	Progress      func(Stats)
	ProgressEvery time.Duration
	// Delivered, when set, is called once for every message that got its
	// PUBACK, from several goroutines at once.
	Delivered func(Delivery)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Broker != "" {
		u, err := url.Parse(c.Broker)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("%w: broker is not a URL like tcp://127.0.0.1:1883", ErrInvalidConfig))
		}
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("%w: rate must be a positive number of messages per second", ErrInvalidConfig))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"duration", c.Duration},
		{"window", c.Window},
		{"ack timeout", c.AckTimeout},
		{"drain timeout", c.DrainTimeout},
		{"connect timeout", c.ConnectTimeout},
		{"progress interval", c.ProgressEvery},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is negative", ErrInvalidConfig, d.name))
		}
	}
	if c.Window != 0 && (c.Window < 24*time.Hour || c.Window > maxWindow) {
		errs = append(errs, fmt.Errorf("%w: window must be between a day and %s (vidda refuses older readings)", ErrInvalidConfig, maxWindow))
	}
	if c.InFlight < 0 || c.InFlight > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("%w: in-flight window %d is outside 1..65535", ErrInvalidConfig, c.InFlight))
	}
	for _, p := range []float64{c.Mix.OutOfRange, c.Mix.Duplicate, c.Mix.Malformed, c.Mix.Outage} {
		if p > 1 || math.IsNaN(p) {
			errs = append(errs, fmt.Errorf("%w: mix probabilities must be at most 1", ErrInvalidConfig))
			break
		}
	}
	if m := c.Mix.withDefaults(); m.OutOfRange+m.Duplicate+m.Malformed > 1 {
		errs = append(errs, fmt.Errorf("%w: out-of-range, duplicate and malformed add up to more than 1", ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Broker == "" {
		c.Broker = DefaultBroker
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	c.Mix = c.Mix.withDefaults()
	if c.InFlight == 0 {
		c.InFlight = DefaultInFlight
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	return c
}
