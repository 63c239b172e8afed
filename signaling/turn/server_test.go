package turn_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/vidda/vidda/signaling/turn"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func start(t *testing.T, mutate func(*turn.Config)) *turn.Server {
	t.Helper()
	cfg := turn.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Secret = "test-secret"
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := turn.New(cfg, quietLog())
	if err != nil {
		t.Fatalf("start TURN: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// client allocates a relay on s with the given credential; it returns
// the client and the allocation error.
func client(t *testing.T, s *turn.Server, user, pass string) (*pionturn.Client, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: s.Addr().String(),
		Username:       user,
		Password:       pass,
		Realm:          turn.DefaultRealm,
		Conn:           conn,
		RTO:            100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { _ = relay.Close() })
	}
	return c, err
}

func TestCredentialIsCoturnsUseAuthSecret(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	user, pass := turn.Credential("s3cret", "Patient/p1", now, 10*time.Minute)
	if user != "1700000600:Patient/p1" {
		t.Fatalf("username = %q", user)
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); pass != want {
		t.Fatalf("password = %q, want %q", pass, want)
	}
}

func TestAValidCredentialAllocatesARelay(t *testing.T) {
	s := start(t, nil)
	ice := s.ICEServers("Patient/p1", time.Now())
	if len(ice) != 1 || len(ice[0].URLs) != 2 {
		t.Fatalf("ICE servers = %+v", ice)
	}
	for _, u := range ice[0].URLs {
		if !strings.HasPrefix(u, "turn:127.0.0.1:") {
			t.Errorf("URL %q does not name the listener", u)
		}
	}
	if _, err := client(t, s, ice[0].Username, ice[0].Credential); err != nil {
		t.Fatalf("allocate with a fresh credential: %v", err)
	}
}

func TestBadCredentialsAreRefused(t *testing.T) {
	s := start(t, nil)
	good := s.ICEServers("Patient/p1", time.Now())[0]
	expiredUser, expiredPass := turn.Credential("test-secret", "Patient/p1", time.Now().Add(-time.Hour), 10*time.Minute)
	otherUser, otherPass := turn.Credential("another-secret", "Patient/p1", time.Now(), 10*time.Minute)
	for _, tc := range []struct{ name, user, pass string }{
		{"a wrong password", good.Username, "d3Jvbmc="},
		{"an expired credential", expiredUser, expiredPass},
		{"another secret's credential", otherUser, otherPass},
		{"a username without an expiry", "Patient/p1", good.Credential},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if _, err := client(t, s, tc.user, tc.pass); err == nil {
				t.Fatal("allocation succeeded")
			}
		})
	}
}

func TestRelayToLoopbackIsRefusedUnlessAllowed(t *testing.T) {
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	for _, tc := range []struct {
		name  string
		allow bool
	}{{"refused by default", false}, {"allowed with AllowLoopback", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, func(c *turn.Config) { c.AllowLoopback = tc.allow })
			ice := s.ICEServers("Patient/p1", time.Now())[0]
			c, err := client(t, s, ice.Username, ice.Credential)
			if err != nil {
				t.Fatal(err)
			}
			err = c.CreatePermission(peer)
			if tc.allow && err != nil {
				t.Fatalf("permission for loopback with AllowLoopback: %v", err)
			}
			if !tc.allow && err == nil {
				t.Fatal("permission for a loopback peer was granted")
			}
		})
	}
}

func TestRelayToPrivatePeersNeedsAllowPeers(t *testing.T) {
	peer := &net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 9}
	s := start(t, nil)
	ice := s.ICEServers("Patient/p1", time.Now())[0]
	c, err := client(t, s, ice.Username, ice.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePermission(peer); err == nil {
		t.Fatal("permission for a private peer was granted")
	}

	s2 := start(t, func(c *turn.Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")} })
	ice = s2.ICEServers("Patient/p1", time.Now())[0]
	c2, err := client(t, s2, ice.Username, ice.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.CreatePermission(peer); err != nil {
		t.Fatalf("permission for an allowed private network: %v", err)
	}
}

func TestExternalTURNOnlyHandsOutCredentials(t *testing.T) {
	cfg := turn.DefaultConfig()
	cfg.External = true
	cfg.Secret = "shared"
	cfg.URLs = []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp", "stun:turn.example.org:3478"}
	s, err := turn.New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Addr().IsValid() {
		t.Fatal("an external configuration listens")
	}
	ice := s.ICEServers("Practitioner/d1", time.Now())
	if len(ice) != 2 || ice[0].Username != "" || len(ice[1].URLs) != 2 || ice[1].Username == "" {
		t.Fatalf("ICE servers = %+v", ice)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*turn.Config)
	}{
		{"no TTL", func(c *turn.Config) { c.TTL = 0 }},
		{"no realm", func(c *turn.Config) { c.Realm = "" }},
		{"a bad listen address", func(c *turn.Config) { c.Listen = "nonsense" }},
		{"external without URLs", func(c *turn.Config) { c.External = true; c.Secret = "x" }},
		{"external without a secret", func(c *turn.Config) { c.External = true; c.URLs = []string{"turn:x:3478"} }},
		{"half a TLS setup", func(c *turn.Config) { c.TLSListen = ":5349" }},
		{"a bad public IP", func(c *turn.Config) { c.PublicIP = "example.org" }},
		{"an http URL", func(c *turn.Config) { c.URLs = []string{"http://x"} }},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			cfg := turn.DefaultConfig()
			tc.mutate(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := turn.DefaultConfig().Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
}
