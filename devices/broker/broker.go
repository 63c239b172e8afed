package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// sysTopicInterval is how often mochi refreshes its $SYS topics (which no
// device may read); each refresh reads runtime.MemStats.
const sysTopicInterval = 60 // seconds

// drainPoll is how often a stopping Run looks whether all PUBACKs are out.
const drainPoll = 5 * time.Millisecond

// Broker is the embedded MQTT broker. Create it with New and start it with
// Run, once.
type Broker struct {
	cfg     Config
	creds   Credentials
	handler Handler
	log     *slog.Logger
	tlsConf *tls.Config
	srv     *mqtt.Server
	auth    *authCache // nil when the cache is off

	started  atomic.Bool
	draining atomic.Bool
	ready    chan struct{}
	addr     string // set before ready is closed
	// hardCtx is given to the Handler and to CheckDevice; Run sets it before
	// it accepts the first connection and cancels it when it gives up
	// draining.
	hardCtx context.Context

	mu       sync.RWMutex
	devices  map[string]string // username → device id, learnt at CONNECT
	sessions map[*mqtt.Client]*session

	writers  sync.WaitGroup // session writers
	inflight atomic.Int64   // messages handed over whose PUBACK is not yet written or dropped
	stats    counters
}

// New returns a Broker that authenticates devices with creds and hands
// their messages to h. A nil log discards.
func New(cfg Config, creds Credentials, h Handler, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if creds == nil || h == nil {
		return nil, fmt.Errorf("%w: Credentials and Handler are required", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	b := &Broker{
		cfg:      cfg,
		creds:    creds,
		handler:  h,
		log:      log,
		ready:    make(chan struct{}),
		hardCtx:  context.Background(),
		devices:  make(map[string]string),
		sessions: make(map[*mqtt.Client]*session),
	}
	if cfg.AuthCacheTTL > 0 {
		b.auth = newAuthCache(cfg.AuthCacheTTL)
	}
	if cfg.tls() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load mqtt tls key pair: %w", err)
		}
		b.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:           capabilities(cfg),
		InlineClient:           true, // publishes the replies
		Logger:                 newMochiLogger(log),
		SysTopicResendInterval: sysTopicInterval,
	})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add mqtt hook: %w", err)
	}
	return b, nil
}

// capabilities are mochi's defaults with the choices of this package (see
// the package documentation).
func capabilities(cfg Config) *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1        // advertised to MQTT 5 clients; QoS 2 is refused
	caps.TopicAliasMaximum = 0 // mochi checks the ACL before resolving aliases
	// Validate bounds these conversions.
	caps.ReceiveMaximum = uint16(cfg.MaxInFlight)                               //nolint:gosec // ≤ 65535, checked by Validate
	caps.MaximumClientWritesPending = int32(cfg.MaxInFlight)                    //nolint:gosec // ≤ 65535, checked by Validate
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize)                          //nolint:gosec // ≤ MaxUint32, checked by Validate
	caps.MaximumSessionExpiryInterval = uint32(cfg.SessionExpiry / time.Second) //nolint:gosec // checked by Validate
	return caps
}

// Ready is closed once the broker listens.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// Ping reports whether the broker takes device connections: it fails with
// ErrNotListening before Run listens and from the moment it starts to stop.
func (b *Broker) Ping(context.Context) error {
	select {
	case <-b.ready:
	default:
		return ErrNotListening
	}
	if b.draining.Load() {
		return ErrNotListening
	}
	return nil
}

// Addr is the address the broker listens on ("" before Ready), useful when
// Config.Listen has port 0.
func (b *Broker) Addr() string {
	select {
	case <-b.ready:
		return b.addr
	default:
		return ""
	}
}

// Stats returns the counters.
func (b *Broker) Stats() Stats { return b.stats.snapshot() }

// Run listens and serves devices until ctx ends, then stops accepting,
// waits up to Config.DrainTimeout for the PUBACKs of messages already
// handed to the Handler, disconnects every client and returns once every
// goroutine it started has ended. It returns an error only when it cannot
// start.
func (b *Broker) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	var lc net.ListenConfig
	nl, err := lc.Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("mqtt listen on %s: %w", b.cfg.Listen, err)
	}
	if b.tlsConf != nil {
		nl = tls.NewListener(nl, b.tlsConf)
	}
	hardCtx, stopHard := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHard()
	b.hardCtx = hardCtx

	ln := newListener(nl, b.srv, b.log, b.cfg.ConnectTimeout)
	if err := b.srv.AddListener(ln); err != nil {
		_ = nl.Close()
		return fmt.Errorf("add mqtt listener: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = nl.Close()
		return fmt.Errorf("start mqtt server: %w", err)
	}
	ln.start()
	b.addr = nl.Addr().String()
	close(b.ready)
	b.log.InfoContext(ctx, "mqtt broker listening", "addr", b.addr, "tls", b.tlsConf != nil)

	<-ctx.Done()
	b.stop(ctx, ln, stopHard)
	return nil
}

// stop is Run's shutdown, in order: no new connections or messages; the
// PUBACKs of messages already taken (bounded); the Handler's context; every
// client; every goroutine.
func (b *Broker) stop(ctx context.Context, ln *listener, stopHard context.CancelFunc) {
	b.draining.Store(true)
	ln.stopAccepting()
	if !b.drain(b.cfg.DrainTimeout) {
		b.log.WarnContext(ctx, "mqtt drain timed out; messages left unacknowledged",
			"pending", b.inflight.Load(), "timeout", b.cfg.DrainTimeout)
	}
	stopHard()
	_ = b.srv.Close() // disconnects clients through ln.Close; always nil
	ln.wait()
	b.writers.Wait()
	b.log.InfoContext(ctx, "mqtt broker stopped")
}

// drain waits until every message handed over has its PUBACK written (or
// dropped), or timeout passes.
func (b *Broker) drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for b.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(drainPoll)
	}
	return true
}

// checkDevice asks Credentials, through the cache.
func (b *Broker) checkDevice(username, password string) (string, bool, error) {
	var key string
	if b.auth != nil {
		key = authKey(username, password)
		if e, ok := b.auth.get(key, time.Now()); ok {
			return e.deviceID, e.ok, nil
		}
	}
	ctx, cancel := context.WithTimeout(b.hardCtx, b.cfg.AuthTimeout)
	defer cancel()
	deviceID, ok, err := b.creds.CheckDevice(ctx, username, password)
	if err != nil {
		return "", false, fmt.Errorf("check device credentials: %w", err)
	}
	if ok && !validDeviceID(deviceID) {
		return "", false, fmt.Errorf("check device credentials: %w", errBadDeviceID)
	}
	if b.auth != nil {
		b.auth.put(key, deviceID, ok, time.Now())
	}
	return deviceID, ok, nil
}

// errBadDeviceID means Credentials returned an id that cannot be a topic
// level.
var errBadDeviceID = errors.New("device id unusable in a topic")

// rememberDevice binds a username to its device for the ACL. It outlives
// the connection: mochi checks the ACL when it delivers to a persistent
// session whose device is offline.
func (b *Broker) rememberDevice(username, deviceID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.devices[username] = deviceID
}

// deviceOf returns the device a client authenticated as.
func (b *Broker) deviceOf(cl *mqtt.Client) (string, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	id, ok := b.devices[string(cl.Properties.Username)]
	return id, ok
}

// session returns the live session of a client, or nil.
func (b *Broker) session(cl *mqtt.Client) *session {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.sessions[cl]
}

// openSession starts the ack writer of a newly connected client. It runs
// in the client's connection goroutine, which Run waits for before it
// waits for the writers.
func (b *Broker) openSession(cl *mqtt.Client) {
	deviceID, ok := b.deviceOf(cl)
	if !ok {
		cl.Stop(errSessionClosed) // cannot happen: authentication remembered it
		return
	}
	s := newSession(b, cl, deviceID)
	b.mu.Lock()
	b.sessions[cl] = s
	b.mu.Unlock()
	b.writers.Add(1)
	go s.run()
	b.log.Debug("mqtt device connected", "device", deviceID, "client", cl.ID, "protocol", cl.Properties.ProtocolVersion)
}

// closeSession ends the session of a client whose read loop has ended.
func (b *Broker) closeSession(cl *mqtt.Client, err error) {
	b.mu.Lock()
	s := b.sessions[cl]
	delete(b.sessions, cl)
	b.mu.Unlock()
	if s == nil {
		return
	}
	s.shutdown()
	b.log.Debug("mqtt device disconnected", "device", s.deviceID, "client", cl.ID, "error", err)
}
