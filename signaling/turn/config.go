package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config configures the embedded TURN server and the credentials.
// The wiring layer fills it from the environment: VIDDA_TURN_LISTEN is
// Listen, VIDDA_TURN_SECRET is Secret.
type Config struct {
	// Listen is the UDP and TCP address the server listens on
	// (VIDDA_TURN_LISTEN, default 127.0.0.1:3478). A port of 0 picks a
	// free one (tests).
	Listen string
	// TLSListen, CertFile and KeyFile add a TURN-over-TLS listener
	// (advertised as turns:); all three or none.
	TLSListen string
	CertFile  string
	KeyFile   string

	// Realm is the STUN realm (default "vidda").
	Realm string
	// Secret is the shared TURN-REST secret (VIDDA_TURN_SECRET). Empty:
	// New generates a random one, which is fine for one instance with the
	// embedded server; an external coturn or several instances need the
	// same configured secret. It is never logged.
	Secret string //nolint:gosec // a configuration field, not a hard-coded secret
	// TTL is how long handed-out credentials stay valid (default 10m).
	TTL time.Duration

	// PublicIP is the address relayed candidates carry and URLs name when
	// URLs is empty (VIDDA_PUBLIC_IP). Empty: the Listen host, or the
	// first non-loopback interface address when Listen is unspecified.
	PublicIP string
	// RelayBind is the IP relay sockets are bound to (default: the Listen
	// host).
	RelayBind string
	// URLs are the turn:/turns: URLs handed to clients. Empty: derived
	// from PublicIP (or the Listen host) and the listeners.
	URLs []string
	// STUN also hands out a stun: URL of the same server.
	STUN bool

	// External means an external coturn with use-auth-secret serves TURN:
	// no embedded server, only credentials for URLs (which must be set).
	External bool

	// AllowLoopback permits relaying to loopback peers. Tests need it on
	// one machine; production must leave it off.
	AllowLoopback bool
	// AllowPeers are private networks relaying may reach anyway (e.g. the
	// SFU's own private address when it has no public one).
	AllowPeers []netip.Prefix
}

// The defaults.
const (
	DefaultListen = "127.0.0.1:3478"
	DefaultRealm  = "vidda"
	DefaultTTL    = 10 * time.Minute
)

// DefaultConfig returns the defaults: 127.0.0.1:3478, realm vidda, 10
// minute credentials, a generated secret.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, Realm: DefaultRealm, TTL: DefaultTTL}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if c.TTL <= 0 {
		return errors.New("turn: TTL must be positive")
	}
	if c.Realm == "" {
		return errors.New("turn: realm must not be empty")
	}
	if c.External {
		if len(c.URLs) == 0 {
			return errors.New("turn: an external TURN server needs its URLs")
		}
		if c.Secret == "" {
			return errors.New("turn: an external TURN server needs the shared secret it was configured with")
		}
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("turn: listen address %q: %w", c.Listen, err)
	}
	tls := []string{c.TLSListen, c.CertFile, c.KeyFile}
	set := 0
	for _, s := range tls {
		if s != "" {
			set++
		}
	}
	if set != 0 && set != len(tls) {
		return errors.New("turn: TLS needs a listen address, a certificate and a key")
	}
	if c.PublicIP != "" {
		if _, err := netip.ParseAddr(c.PublicIP); err != nil {
			return fmt.Errorf("turn: public IP: %w", err)
		}
	}
	if c.RelayBind != "" {
		if _, err := netip.ParseAddr(c.RelayBind); err != nil {
			return fmt.Errorf("turn: relay bind address: %w", err)
		}
	}
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") && !strings.HasPrefix(u, "stun:") {
			return fmt.Errorf("turn: URL %q is not a turn:, turns: or stun: URL", u)
		}
	}
	return nil
}

// permitted says whether a relay may send to peer: public addresses
// always, loopback only with AllowLoopback, private and other special
// ranges only when AllowPeers names them.
func (c Config) permitted(peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range c.AllowPeers {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.IsLoopback() {
		return c.AllowLoopback
	}
	return !special(ip)
}

// special is every range a relay must not reach by default.
func special(ip netip.Addr) bool {
	if ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	// RFC 6598 shared address space (carrier-grade NAT) and 0.0.0.0/8.
	for _, p := range []netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("0.0.0.0/8"),
	} {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
