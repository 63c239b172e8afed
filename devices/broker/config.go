package broker

import (
	"errors"
	"fmt"
	"math"
	"net"
	"time"
)

// Defaults of Config.
const (
	DefaultListen         = "127.0.0.1:1883"
	DefaultMaxInFlight    = 256
	DefaultMaxPacketSize  = 1 << 20
	DefaultConnectTimeout = 10 * time.Second
	DefaultAuthTimeout    = 5 * time.Second
	DefaultAuthCacheTTL   = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultDrainTimeout   = 5 * time.Second
	DefaultSessionExpiry  = 24 * time.Hour
)

// Config configures the embedded broker. Zero values mean the defaults.
type Config struct {
	// Listen is the TCP address devices connect to.
	Listen string
	// TLSCertFile and TLSKeyFile are PEM files; when both are set the
	// listener speaks MQTT over TLS (1.2 or later).
	TLSCertFile string
	TLSKeyFile  string
	// MaxInFlight is how many messages of one connection may wait for their
	// PUBACK. A connection that reaches it is not read from until acks free
	// a slot. MQTT 5 clients are told it as Receive Maximum. At most 65535.
	MaxInFlight int
	// MaxPacketSize bounds one MQTT packet, and so one payload, in bytes.
	MaxPacketSize int
	// ConnectTimeout is how long a new connection may take for its TLS
	// handshake and CONNECT packet.
	ConnectTimeout time.Duration
	// AuthTimeout bounds one Credentials.CheckDevice call.
	AuthTimeout time.Duration
	// AuthCacheTTL is how long an answer of CheckDevice is reused for the
	// same username and password, so that a reconnect storm does not become
	// a storm of database queries. Negative turns the cache off.
	AuthCacheTTL time.Duration
	// WriteTimeout bounds each batch of PUBACK writes to one connection; a
	// device that does not read for that long is disconnected (its unwritten
	// PUBACKs are dropped and it sends those messages again).
	WriteTimeout time.Duration
	// DrainTimeout is how long Run, once its context ends, waits for the
	// PUBACKs of messages already handed to the Handler.
	DrainTimeout time.Duration
	// SessionExpiry is how long the broker keeps the session (subscriptions,
	// undelivered replies) of a device that asked for a persistent one,
	// after it disconnects.
	SessionExpiry time.Duration
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout},
		{"AuthTimeout", c.AuthTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"DrainTimeout", c.DrainTimeout},
		{"SessionExpiry", c.SessionExpiry},
	} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is negative", ErrInvalidConfig, f.name))
		}
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("%w: MaxInFlight %d is outside 0..65535", ErrInvalidConfig, c.MaxInFlight))
	}
	if c.MaxPacketSize < 0 || int64(c.MaxPacketSize) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("%w: MaxPacketSize %d is out of range", ErrInvalidConfig, c.MaxPacketSize))
	}
	if c.SessionExpiry/time.Second > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("%w: SessionExpiry is too long", ErrInvalidConfig))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%w: TLSCertFile and TLSKeyFile must be set together", ErrInvalidConfig))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("%w: Listen %q: %w", ErrInvalidConfig, c.Listen, err))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = DefaultAuthCacheTTL
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	return c
}

// tls reports whether the listener speaks TLS.
func (c Config) tls() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }
