package sfu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Config configures the SFU. The wiring layer fills it from the
// environment: VIDDA_MEDIA_UDP is UDPAddr, VIDDA_MEDIA_TCP is TCPAddr,
// VIDDA_PUBLIC_IP is PublicIPs.
type Config struct {
	// UDPAddr is the one UDP address all media of all participants use
	// (ICE UDP mux). Default 127.0.0.1:3479, next to the TURN server's
	// 3478; a deployment reachable from browsers elsewhere sets
	// 0.0.0.0:3479 (and PublicIPs behind NAT). Port 0 picks a free port.
	UDPAddr string
	// TCPAddr is the ICE-TCP (passive) address for clients whose UDP is
	// blocked. Default 127.0.0.1:3479 (TCP); empty disables ICE-TCP.
	TCPAddr string
	// PublicIPs are announced instead of the local addresses in host
	// candidates (NAT 1:1 mapping, e.g. a cloud VM's public address).
	PublicIPs []string

	// AudioOnlyBelow is the bandwidth estimate (bits/s) under which a
	// participant's link cannot carry the lowest video layer: video to and
	// from it stops (default 150 kbit/s). 0 turns the fallback off.
	AudioOnlyBelow uint64
	// ResumeAbove is the estimate video resumes at (default 250 kbit/s);
	// it is higher than AudioOnlyBelow so the decision does not flap.
	ResumeAbove uint64
	// AudioOnlyLoss is the fraction of packets lost that also means
	// audio only (default 0.15); video resumes below a third of it.
	AudioOnlyLoss float64
	// BadTicks and GoodTicks are how many consecutive monitor ticks the
	// link must be bad before video stops (default 2) and good before it
	// resumes (default 5).
	BadTicks, GoodTicks int
	// MonitorInterval is how often each participant's quality, bandwidth
	// and simulcast layers are re-evaluated (default 1s).
	MonitorInterval time.Duration
	// InitialEstimate is where the bandwidth estimator starts (default
	// 1 Mbit/s); it moves with the receiver's transport-cc feedback.
	InitialEstimate uint64
}

// The default addresses.
const (
	DefaultUDPAddr = "127.0.0.1:3479"
	DefaultTCPAddr = "127.0.0.1:3479"
)

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		UDPAddr:         DefaultUDPAddr,
		TCPAddr:         DefaultTCPAddr,
		AudioOnlyBelow:  150_000,
		ResumeAbove:     250_000,
		AudioOnlyLoss:   0.15,
		BadTicks:        2,
		GoodTicks:       5,
		MonitorInterval: time.Second,
		InitialEstimate: 1_000_000,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if _, err := net.ResolveUDPAddr("udp", c.UDPAddr); err != nil || c.UDPAddr == "" {
		return fmt.Errorf("sfu: UDP address %q: %w", c.UDPAddr, errOr(err, "missing"))
	}
	if c.TCPAddr != "" {
		if _, err := net.ResolveTCPAddr("tcp", c.TCPAddr); err != nil {
			return fmt.Errorf("sfu: TCP address %q: %w", c.TCPAddr, err)
		}
	}
	for _, ip := range c.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("sfu: public IP: %w", err)
		}
	}
	switch {
	case c.AudioOnlyBelow > 0 && c.ResumeAbove < c.AudioOnlyBelow:
		return errors.New("sfu: ResumeAbove must not be below AudioOnlyBelow")
	case c.AudioOnlyLoss < 0 || c.AudioOnlyLoss > 1:
		return errors.New("sfu: AudioOnlyLoss must be a fraction")
	case c.BadTicks < 1 || c.GoodTicks < 1:
		return errors.New("sfu: BadTicks and GoodTicks must be at least 1")
	case c.MonitorInterval <= 0:
		return errors.New("sfu: MonitorInterval must be positive")
	case c.InitialEstimate < 10_000:
		return errors.New("sfu: InitialEstimate must be at least 10 kbit/s")
	}
	return nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
