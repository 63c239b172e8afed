package turn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/turn/v5"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/pionlog"
)

// Server is the embedded TURN server (or, with Config.External, only the
// credential issuer for an external coturn). It implements
// signaling.ICEServers.
type Server struct {
	cfg    Config
	log    *slog.Logger
	turn   *turn.Server // nil when External
	udp    net.PacketConn
	tcp    net.Listener
	tls    net.Listener
	urls   []string
	secret string
	m      *metrics

	closeOnce sync.Once
}

var _ signaling.ICEServers = (*Server)(nil)

// New validates cfg, generates a secret if none is set, and (unless
// External) starts listening. Close stops it.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, secret: cfg.Secret, m: newMetrics()}
	if s.secret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("turn: generate secret: %w", err)
		}
		s.secret = base64.RawURLEncoding.EncodeToString(b)
	}
	if cfg.External {
		s.urls = cfg.URLs
		return s, nil
	}
	if err := s.listen(); err != nil {
		s.closeListeners()
		return nil, err
	}
	if err := s.start(); err != nil {
		s.closeListeners()
		return nil, err
	}
	log.Info("turn server listening", "udp", s.udp.LocalAddr().String(), "tcp", s.tcp.Addr().String(),
		"tls", s.tls != nil, "realm", cfg.Realm, "urls", s.urls, "allow_loopback", cfg.AllowLoopback)
	return s, nil
}

func (s *Server) listen() error {
	var lc net.ListenConfig
	ctx := context.Background()
	// TCP on the same port as UDP, so one address serves both. With port
	// 0 the free UDP port may be taken for TCP: try a few.
	_, port, _ := net.SplitHostPort(s.cfg.Listen)
	tries := 1
	if port == "0" {
		tries = 20
	}
	var err error
	for range tries {
		if s.udp, err = lc.ListenPacket(ctx, "udp4", s.cfg.Listen); err != nil {
			return fmt.Errorf("turn: listen udp %s: %w", s.cfg.Listen, err)
		}
		tcpAddr := s.udp.LocalAddr().String()
		if s.tcp, err = lc.Listen(ctx, "tcp4", tcpAddr); err == nil {
			break
		}
		err = fmt.Errorf("turn: listen tcp %s: %w", tcpAddr, err)
		_ = s.udp.Close()
		s.udp = nil
	}
	if err != nil {
		return err
	}
	if s.cfg.TLSListen != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("turn: load TLS certificate: %w", err)
		}
		l, err := lc.Listen(ctx, "tcp4", s.cfg.TLSListen)
		if err != nil {
			return fmt.Errorf("turn: listen tls %s: %w", s.cfg.TLSListen, err)
		}
		s.tls = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return nil
}

func (s *Server) start() error {
	udpAddr, ok := s.udp.LocalAddr().(*net.UDPAddr)
	if !ok {
		return errors.New("turn: udp listener has no UDP address")
	}
	public, err := s.publicIP(udpAddr.IP)
	if err != nil {
		return err
	}
	bind := s.cfg.RelayBind
	if bind == "" {
		bind = udpAddr.IP.String()
	}
	relay := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: public, Address: bind}
	}
	permit := func(_ net.Addr, peer net.IP) bool {
		ok := s.cfg.permitted(peer)
		if !ok {
			s.m.relaysRefused.Inc()
			s.log.Debug("turn relay refused", "peer", peer.String())
		}
		return ok
	}
	conf := turn.ServerConfig{
		Realm:         s.cfg.Realm,
		AuthHandler:   s.authenticate,
		LoggerFactory: pionlog.Factory{Log: s.log},
		EventHandler:  s.m.events(),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: s.udp, RelayAddressGenerator: relay(), PermissionHandler: permit,
		}},
		ListenerConfigs: []turn.ListenerConfig{{
			Listener: s.tcp, RelayAddressGenerator: relay(), PermissionHandler: permit,
		}},
	}
	if s.tls != nil {
		conf.ListenerConfigs = append(conf.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tls, RelayAddressGenerator: relay(), PermissionHandler: permit,
		})
	}
	s.turn, err = turn.NewServer(conf)
	if err != nil {
		return fmt.Errorf("turn: start server: %w", err)
	}
	s.urls = s.cfg.URLs
	if len(s.urls) == 0 {
		s.urls = s.defaultURLs(public)
	}
	return nil
}

// publicIP is the address relayed candidates carry.
func (s *Server) publicIP(listen net.IP) (net.IP, error) {
	if s.cfg.PublicIP != "" {
		return net.ParseIP(s.cfg.PublicIP), nil
	}
	if !listen.IsUnspecified() {
		return listen, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("turn: list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP, nil
		}
	}
	return nil, errors.New("turn: no public IP configured and no non-loopback interface address")
}

func (s *Server) defaultURLs(public net.IP) []string {
	port := strconv.Itoa(s.udp.LocalAddr().(*net.UDPAddr).Port) //nolint:forcetypeassert // checked in start
	host := net.JoinHostPort(public.String(), port)
	urls := []string{"turn:" + host + "?transport=udp", "turn:" + host + "?transport=tcp"}
	if s.tls != nil {
		_, tlsPort, _ := net.SplitHostPort(s.tls.Addr().String())
		urls = append(urls, "turns:"+net.JoinHostPort(public.String(), tlsPort)+"?transport=tcp")
	}
	if s.cfg.STUN {
		urls = append(urls, "stun:"+host)
	}
	return urls
}

// authenticate is pion's AuthHandler: TURN-REST usernames that have not
// expired, with the key derived from the HMAC password.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	if !checkUsername(ra.Username, time.Now()) {
		// The username holds only an expiry and a participant id.
		s.log.Info("turn credential refused", "src", ra.SrcAddr.String())
		return "", nil, false
	}
	return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, restPassword(s.secret, ra.Username)), true
}

// ICEServers returns the TURN (and optional STUN) URLs with a fresh
// TURN-REST credential for participant.
func (s *Server) ICEServers(participant string, now time.Time) []signaling.ICEServer {
	var turnURLs, stunURLs []string
	for _, u := range s.urls {
		if len(u) > 5 && u[:5] == "stun:" {
			stunURLs = append(stunURLs, u)
		} else {
			turnURLs = append(turnURLs, u)
		}
	}
	var out []signaling.ICEServer
	if len(stunURLs) > 0 {
		out = append(out, signaling.ICEServer{URLs: stunURLs})
	}
	if len(turnURLs) > 0 {
		user, pass := Credential(s.secret, participant, now, s.cfg.TTL)
		out = append(out, signaling.ICEServer{URLs: turnURLs, Username: user, Credential: pass})
	}
	return out
}

// URLs are the URLs handed to clients.
func (s *Server) URLs() []string { return append([]string(nil), s.urls...) }

// Addr is the UDP (and TCP) address the embedded server listens on; the
// zero value with External.
func (s *Server) Addr() netip.AddrPort {
	if s.udp == nil {
		return netip.AddrPort{}
	}
	return s.udp.LocalAddr().(*net.UDPAddr).AddrPort() //nolint:forcetypeassert // a udp4 listener
}

// Run blocks until ctx is done, then closes the server.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	return s.Close()
}

// Close stops the server and its relays. It is safe to call more than
// once.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.turn == nil {
			s.closeListeners()
			return
		}
		// pion closes the listeners it was given.
		if cerr := s.turn.Close(); cerr != nil {
			err = fmt.Errorf("turn: close: %w", cerr)
		}
	})
	return err
}

func (s *Server) closeListeners() {
	for _, c := range []interface{ Close() error }{s.udp, s.tcp, s.tls} {
		if c != nil {
			_ = c.Close()
		}
	}
}
