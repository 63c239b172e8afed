package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// listenerID names the device listener inside mochi.
const listenerID = "vidda-devices"

// closeWriteGrace is how long the goodbye DISCONNECT packets of a shutdown
// may take to write before the connections are closed under them.
const closeWriteGrace = time.Second

// listener accepts device connections itself and hands each to mochi.
// mochi's own listeners start goroutines nobody waits for; owning the accept
// loop lets Run wait for every connection goroutine, and knowing every
// connection lets it close those that never finished CONNECT. It implements
// mochi's listeners.Listener so that mochi's Close disconnects its clients.
type listener struct {
	ln             net.Listener
	srv            *mqtt.Server
	log            *slog.Logger
	connectTimeout time.Duration

	wg         sync.WaitGroup // the accept loop and every connection goroutine
	stop       chan struct{}  // closed when accepting stops
	acceptDone chan struct{}  // closed when the accept loop has returned
	stopOnce   sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

var _ listeners.Listener = (*listener)(nil)

func newListener(ln net.Listener, srv *mqtt.Server, log *slog.Logger, connectTimeout time.Duration) *listener {
	return &listener{
		ln:             ln,
		srv:            srv,
		log:            log,
		connectTimeout: connectTimeout,
		stop:           make(chan struct{}),
		acceptDone:     make(chan struct{}),
		conns:          make(map[net.Conn]struct{}),
	}
}

// ID implements listeners.Listener.
func (l *listener) ID() string { return listenerID }

// Address implements listeners.Listener.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *listener) Protocol() string { return "tcp" }

// Init implements listeners.Listener.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve implements listeners.Listener. It does nothing: start runs the
// accept loop in a goroutine the listener owns.
func (l *listener) Serve(listeners.EstablishFn) {}

// Close implements listeners.Listener; mochi's Server.Close calls it. It
// stops accepting, lets closeClients send authenticated clients a
// DISCONNECT, for at most closeWriteGrace (a write to a client that does not
// read blocks), then closes every connection, including those still in
// their TLS handshake or CONNECT, which also unblocks those writes.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.stopAccepting()
	done := make(chan struct{})
	go func() {
		defer close(done)
		closeClients(l.ID())
	}()
	grace := time.NewTimer(closeWriteGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
	}
	for _, c := range l.snapshot() {
		_ = c.Close()
	}
	<-done
}

// start runs the accept loop.
func (l *listener) start() {
	l.wg.Add(1)
	go l.acceptLoop()
}

// stopAccepting closes the listening socket and waits for the accept loop
// to return; connections stay open.
func (l *listener) stopAccepting() {
	l.stopOnce.Do(func() {
		close(l.stop)
		_ = l.ln.Close()
	})
	<-l.acceptDone
}

// wait waits for the accept loop and every connection goroutine.
func (l *listener) wait() { l.wg.Wait() }

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.acceptDone)
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt accept failed", "error", err, "retry_in", backoff)
			select {
			case <-l.stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		l.track(conn)
		l.wg.Add(1)
		// Held for mochi: its Close waits on ClientsWg, and a connection
		// goroutine adds itself only once running, which could be after
		// Close started waiting.
		l.srv.Listeners.ClientsWg.Add(1)
		go l.serve(conn)
	}
}

// serve runs one connection through mochi until it ends.
func (l *listener) serve(conn net.Conn) {
	defer l.wg.Done()
	defer l.srv.Listeners.ClientsWg.Done()
	defer l.untrack(conn)
	// mochi sets no deadline before CONNECT; after it, mochi replaces this
	// one with its keepalive deadline.
	_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
	err := l.srv.EstablishConnection(l.ID(), conn)
	l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "error", err)
}

func (l *listener) track(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[c] = struct{}{}
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	_ = c.Close()
}

func (l *listener) snapshot() []net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		out = append(out, c)
	}
	return out
}
