package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
)

// This file is the rig of the fault tests (faults_test.go) and of the
// readiness tests: a Mosquitto that can be stopped and started again on
// its port, a fleet of home gateways that keep every reading until it is
// acknowledged and send it again after any failure, and the count of what
// reached the database.

// mosquittoProc is Debian's mosquitto started by a test on a fixed loopback
// port, so that it can be stopped and started again where its clients
// expect it. With persistence it saves its sessions and their queued
// messages when stopped with SIGTERM, and loads them on the next start.
type mosquittoProc struct {
	t      *testing.T
	bin    string
	conf   string
	addr   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func newMosquitto(t *testing.T, persist bool) *mosquittoProc {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n"+
		"max_queued_messages 0\nmax_inflight_messages 500\nlog_dest stderr\nlog_type error\n", port, me.Username)
	if persist {
		body += fmt.Sprintf("persistence true\npersistence_location %s/\n", dir)
	} else {
		body += "persistence false\n"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquittoProc{t: t, bin: bin, conf: conf, addr: addr}
	m.start()
	t.Cleanup(func() { m.stop(syscall.SIGKILL) })
	return m
}

// start runs mosquitto and waits until it takes connections.
func (m *mosquittoProc) start() {
	m.t.Helper()
	m.mu.Lock()
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		m.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + m.addr).SetClientID("probe"))
		if tok := c.Connect(); tok.WaitTimeout(time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatal("mosquitto did not start")
}

// stop signals mosquitto and waits for it to exit.
func (m *mosquittoProc) stop(sig syscall.Signal) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-exited
}

// home is one simulated home: its device's MQTT credentials.
type home struct {
	Device   string `json:"device"`
	Username string `json:"username"`
	Password string `json:"password"`
	Topic    string `json:"topic"`
}

// addHomes registers n devices of demo-patient-1 (seed must have run).
func addHomes(t *testing.T, env map[string]string, n int) []home {
	t.Helper()
	homes := make([]home, n)
	for i := range homes {
		out, _, err := runCmd(t, context.Background(), env, "device", "add", "--patient", "demo-patient-1", "--serial", fmt.Sprintf("FAULT-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &homes[i]); err != nil {
			t.Fatal(err)
		}
	}
	return homes
}

// fleet plays home gateways: each home has its own device and connection,
// keeps up to window readings unacknowledged, and keeps every reading until
// its PUBACK comes. When its connection breaks (a broker restarting, vidda
// stopping under the embedded broker) it connects again and sends every
// unacknowledged reading again, as a gateway flushing its buffer does; the
// reading ids make those re-sends duplicates vidda must store once.
type fleet struct {
	addr   string
	homes  []home
	per    int // readings per home
	window int
	at     time.Time // measurement time of each home's first reading

	acked      []atomic.Bool // home*per + i: PUBACKed
	nAcked     atomic.Int64
	published  atomic.Int64
	reconnects atomic.Int64

	// With replies, each home also listens on its acks topic, where vidda
	// names the readings it committed: what a gateway must wait for when
	// the broker's PUBACK is not vidda's promise (see resendUnconfirmed).
	replies    bool
	confirmed  []atomic.Bool
	nConfirmed atomic.Int64
}

func newFleet(addr string, homes []home, perHome, window int) *fleet {
	return &fleet{
		addr: addr, homes: homes, per: perHome, window: window,
		at:        time.Now().Add(-time.Duration(perHome+3600) * time.Second).Truncate(time.Second),
		acked:     make([]atomic.Bool, len(homes)*perHome),
		confirmed: make([]atomic.Bool, len(homes)*perHome),
	}
}

func (f *fleet) total() int { return len(f.homes) * f.per }

// run sends every reading of every home until each one is acknowledged or
// ctx ends.
func (f *fleet) run(ctx context.Context) {
	var wg sync.WaitGroup
	for h := range f.homes {
		wg.Go(func() { f.home(ctx, h) })
	}
	wg.Wait()
}

// start runs the fleet in the background; the channel closes when it is done.
func (f *fleet) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx) }()
	return done
}

func (f *fleet) home(ctx context.Context, h int) {
	for first := true; ctx.Err() == nil; first = false {
		pending := f.unacked(h)
		if len(pending) == 0 {
			return
		}
		if !first {
			f.reconnects.Add(1)
		}
		lost := make(chan struct{})
		var once sync.Once
		hm := f.homes[h]
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + f.addr).SetClientID("gw-" + hm.Device).
			SetUsername(hm.Username).SetPassword(hm.Password).
			// A gateway waiting for replies keeps its session, so that the
			// broker queues the replies while it is away.
			SetCleanSession(!f.replies).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(2 * time.Second).
			SetKeepAlive(5 * time.Second).SetPingTimeout(5 * time.Second).
			SetConnectionLostHandler(func(mqtt.Client, error) { once.Do(func() { close(lost) }) })
		c := mqtt.NewClient(opts)
		if !f.connect(c, h) {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		f.send(ctx, c, h, pending, lost)
		if f.replies {
			f.awaitReplies(ctx, h, lost)
		}
		c.Disconnect(0)
	}
}

// connect connects home h and, with replies, subscribes to its acks topic.
func (f *fleet) connect(c mqtt.Client, h int) bool {
	if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		return false
	}
	if !f.replies {
		return true
	}
	tok := c.Subscribe(f.homes[h].Topic+"/acks", 1, func(_ mqtt.Client, m mqtt.Message) {
		var reply struct {
			Stored []struct {
				Reading string `json:"reading"`
			} `json:"stored"`
		}
		if json.Unmarshal(m.Payload(), &reply) != nil {
			return
		}
		for _, r := range reply.Stored {
			if seq, err := strconv.Atoi(strings.TrimPrefix(r.Reading, "r-")); err == nil && seq >= 0 && seq < f.per {
				if !f.confirmed[h*f.per+seq].Swap(true) {
					f.nConfirmed.Add(1)
				}
			}
		}
	})
	if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return false
	}
	return true
}

// awaitReplies stays connected until vidda has confirmed every reading of
// home h, the connection is lost, or replies stop coming for 2 s.
func (f *fleet) awaitReplies(ctx context.Context, h int, lost <-chan struct{}) {
	last, quiet := f.unconfirmed(h), time.Now()
	for last > 0 && time.Since(quiet) < 2*time.Second {
		select {
		case <-lost:
			return
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if n := f.unconfirmed(h); n != last {
			last, quiet = n, time.Now()
		}
	}
}

func (f *fleet) unconfirmed(h int) int {
	n := 0
	for i := h * f.per; i < (h+1)*f.per; i++ {
		if !f.confirmed[i].Load() {
			n++
		}
	}
	return n
}

// collectReplies connects every home again (its session kept the replies
// that came while it was away) and waits for the replies to settle.
func (f *fleet) collectReplies(ctx context.Context) {
	var wg sync.WaitGroup
	for h, hm := range f.homes {
		wg.Go(func() {
			lost := make(chan struct{})
			var once sync.Once
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + f.addr).SetClientID("gw-" + hm.Device).
				SetUsername(hm.Username).SetPassword(hm.Password).SetCleanSession(false).SetAutoReconnect(false).
				SetConnectionLostHandler(func(mqtt.Client, error) { once.Do(func() { close(lost) }) }))
			if f.connect(c, h) {
				f.awaitReplies(ctx, h, lost)
				c.Disconnect(0)
			}
		})
	}
	wg.Wait()
}

// resendUnconfirmed makes every reading vidda has not confirmed on the
// acks topic due again, as a gateway that waits for those replies does
// after its timeout, and returns how many.
func (f *fleet) resendUnconfirmed() int {
	n := 0
	for i := range f.acked {
		if !f.confirmed[i].Load() && f.acked[i].Swap(false) {
			f.nAcked.Add(-1)
			n++
		}
	}
	return n
}

type publish struct {
	i   int
	tok mqtt.Token
}

// send publishes pending with at most window unacknowledged, and returns
// when all are acknowledged, the connection is lost or ctx ends.
func (f *fleet) send(ctx context.Context, c mqtt.Client, h int, pending []int, lost <-chan struct{}) {
	inflight := make(chan publish, f.window)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for p := range inflight {
			select {
			case <-p.tok.Done():
			case <-lost:
			case <-ctx.Done():
			}
			select {
			case <-p.tok.Done():
				if p.tok.Error() == nil && !f.acked[p.i].Swap(true) {
					f.nAcked.Add(1)
				}
			default:
			}
		}
	}()
	topic := f.homes[h].Topic + "/readings"
publishing:
	for _, i := range pending {
		tok := c.Publish(topic, 1, false, f.payload(h, i))
		f.published.Add(1)
		select {
		case inflight <- publish{i, tok}:
		case <-lost:
			break publishing
		case <-ctx.Done():
			break publishing
		}
	}
	close(inflight)
	<-collected
}

func (f *fleet) payload(h, i int) string {
	seq := i - h*f.per
	return fmt.Sprintf(`{"id":"r-%d","t":%q,"type":"weight","value":%0.1f,"unit":"kg"}`,
		seq, f.at.Add(time.Duration(seq)*time.Second).Format(time.RFC3339), 60+float64(seq%400)/10)
}

func (f *fleet) unacked(h int) []int {
	var out []int
	for i := h * f.per; i < (h+1)*f.per; i++ {
		if !f.acked[i].Load() {
			out = append(out, i)
		}
	}
	return out
}

// key is the idempotency key vidda stores for reading i.
func (f *fleet) key(i int) string {
	return f.homes[i/f.per].Device + "/r-" + strconv.Itoa(i%f.per)
}

func (f *fleet) devices() []string {
	out := make([]string, len(f.homes))
	for i, h := range f.homes {
		out[i] = h.Device
	}
	return out
}

// tally is what the database holds of a fleet's readings.
type tally struct {
	sent, rows, distinct, missing, duplicated, unexpected int
	missingAcked                                          int // acknowledged to the gateway, yet not stored
}

func (r tally) String() string {
	return fmt.Sprintf("sent %d, stored %d, missing %d, duplicated %d", r.sent, r.distinct, r.missing, r.duplicated)
}

// count compares the Observations of the fleet's devices with what it sent,
// and with what its gateways saw acknowledged so far.
func (f *fleet) count(t *testing.T, dbURL string) tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT ingest_key FROM observation WHERE split_part(ingest_key, '/', 1) = ANY($1)`, f.devices())
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int, f.total())
	n := 0
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		seen[k]++
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	r := tally{sent: f.total(), rows: n, distinct: len(seen), duplicated: n - len(seen)}
	expected := 0
	for i := range f.total() {
		if _, ok := seen[f.key(i)]; ok {
			expected++
			continue
		}
		r.missing++
		if f.acked[i].Load() {
			r.missingAcked++
		}
	}
	r.unexpected = len(seen) - expected
	return r
}

// stored is how many of the fleet's readings are in the database.
func (f *fleet) stored(t *testing.T, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return -1 // the database is down: a fault test's doing
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM observation WHERE split_part(ingest_key, '/', 1) = ANY($1)`, f.devices()).Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitStored polls until the database holds at least n of the fleet's
// readings, or fails after timeout.
func (f *fleet) waitStored(t *testing.T, dbURL string, n int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for got := 0; ; {
		if got = f.stored(t, dbURL); got >= n {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%d of %d readings stored after %v", got, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSettled polls until the fleet's stored count has not moved for
// quiet, and returns it.
func (f *fleet) waitSettled(t *testing.T, dbURL string, quiet, timeout time.Duration) int {
	t.Helper()
	start, last, since := time.Now(), -2, time.Now()
	for time.Since(start) < timeout {
		if n := f.stored(t, dbURL); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stored readings still changing after %v", timeout)
	return 0
}

// readyz returns the status of GET /readyz and its body (0 when vidda does
// not answer).
func readyz(addr string) (int, map[string]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// waitReadyz polls /readyz until it answers status, and returns how long
// that took and the last body.
func waitReadyz(t *testing.T, addr string, status int, timeout time.Duration) (time.Duration, map[string]string) {
	t.Helper()
	start := time.Now()
	for {
		got, body := readyz(addr)
		if got == status {
			return time.Since(start), body
		}
		if time.Since(start) > timeout {
			t.Fatalf("/readyz of %s answered %d %v for %v, want %d", addr, got, body, timeout, status)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// metric sums the samples of a counter in an instance's /metrics (token:
// admin or system), e.g. vidda_ingest_messages_total over its formats; 0
// before the counter has any.
func metric(t *testing.T, addr, token, name string) int {
	t.Helper()
	total, _ := scrapeMetric(t, "http://"+addr, token, name)
	return int(total)
}

// waitExit waits up to timeout for p to exit and returns its exit code and
// how long it took; -1 if it did not exit.
func (p *viddaProcess) waitExit(timeout time.Duration) (int, time.Duration) {
	start := time.Now()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(timeout):
		return -1, time.Since(start)
	}
}
