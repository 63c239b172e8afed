package signaling

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the visit layer.
type Config struct {
	// TokenTTL is how long a join token may be used for a first join.
	TokenTTL time.Duration
	// TokenKey signs join tokens (HMAC-SHA256), at least 32 bytes. Empty:
	// a random key per process, which is enough while one instance both
	// issues the token and serves the websocket (rooms are pinned to one
	// instance by appointment id); instances behind a load balancer that
	// does not pin POST /video/visits/{id}/join and the websocket alike
	// must share one key.
	TokenKey []byte
	// Grace is how long a dropped participant keeps their place (and
	// their admission) for a rejoin, and how long an empty room waits
	// for someone to come back before the visit ends.
	Grace time.Duration
	// PingInterval is how often the server pings each connection; a
	// connection silent for three intervals is dropped.
	PingInterval time.Duration
	// JoinTimeout is how long a new connection has to send its join.
	JoinTimeout time.Duration
	// MaxMessage is the largest message accepted, in bytes.
	MaxMessage int
	// MaxChat is the longest chat text, in characters.
	MaxChat int
	// RatePerSecond and RateBurst limit the messages one connection may
	// send (a token bucket); a connection that keeps sending over the
	// limit is closed.
	RatePerSecond float64
	RateBurst     int
	// SendQueue is how many messages may wait for a slow connection
	// before it is dropped.
	SendQueue int
	// MaxParticipants caps the people in one room, waiting or admitted.
	MaxParticipants int
	// StoreTimeout bounds each read or write of Appointments and
	// Encounters.
	StoreTimeout time.Duration
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		TokenTTL:     5 * time.Minute,
		Grace:        30 * time.Second,
		PingInterval: 10 * time.Second,
		JoinTimeout:  10 * time.Second,
		// An SDP offer of a browser with audio, video and a data channel
		// is 5–10 KiB; 64 KiB leaves room for many tracks.
		MaxMessage:      64 << 10,
		MaxChat:         2000,
		RatePerSecond:   50,
		RateBurst:       50,
		SendQueue:       256,
		MaxParticipants: 8,
		StoreTimeout:    10 * time.Second,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("signaling: %s must be positive (got %s)", name, d))
		}
	}
	positive("TokenTTL", c.TokenTTL)
	positive("Grace", c.Grace)
	positive("PingInterval", c.PingInterval)
	positive("JoinTimeout", c.JoinTimeout)
	positive("StoreTimeout", c.StoreTimeout)
	if c.TokenKey != nil && len(c.TokenKey) < 32 {
		errs = append(errs, fmt.Errorf("signaling: TokenKey must be at least 32 bytes (got %d)", len(c.TokenKey)))
	}
	if c.MaxMessage < 16<<10 {
		errs = append(errs, fmt.Errorf("signaling: MaxMessage must be at least 16 KiB to carry an SDP (got %d)", c.MaxMessage))
	}
	if c.MaxChat < 1 || c.MaxChat > c.MaxMessage/8 {
		errs = append(errs, fmt.Errorf("signaling: MaxChat must be from 1 to MaxMessage/8 (got %d)", c.MaxChat))
	}
	if c.RatePerSecond <= 0 || c.RateBurst < 1 {
		errs = append(errs, errors.New("signaling: RatePerSecond and RateBurst must be positive"))
	}
	if c.SendQueue < 8 {
		errs = append(errs, fmt.Errorf("signaling: SendQueue must be at least 8 (got %d)", c.SendQueue))
	}
	if c.MaxParticipants < 2 {
		errs = append(errs, fmt.Errorf("signaling: MaxParticipants must be at least 2 (got %d)", c.MaxParticipants))
	}
	return errors.Join(errs...)
}
