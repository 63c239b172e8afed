package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Two devices the fake registry knows.
const (
	devA, userA, passA = "dev-a", "user-a", "secret-a"
	devB, userB, passB = "dev-b", "user-b", "secret-b"
)

func readingsTopic(deviceID string) string { return devices.TopicPrefix + deviceID + "/readings" }

// registry is a fake device registry that counts its lookups.
type registry struct{ calls atomic.Int64 }

func (r *registry) CheckDevice(_ context.Context, username, password string) (string, bool, error) {
	r.calls.Add(1)
	switch {
	case username == userA && password == passA:
		return devA, true, nil
	case username == userB && password == passB:
		return devB, true, nil
	}
	return "", false, nil
}

// call is one message as a held Handler saw it, with its ack.
type call struct {
	m   Message
	ack func(Result)
}

// held hands every message and its ack to the test, which decides when to
// acknowledge.
type held chan call

func (h held) Handle(ctx context.Context, m Message, ack func(Result)) {
	select {
	case h <- call{m: m, ack: ack}:
	case <-ctx.Done():
	}
}

// next waits for the next message the handler got.
func (h held) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-h:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the handler got no message")
		return call{}
	}
}

// none asserts the handler gets nothing for a while.
func (h held) none(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case c := <-h:
		t.Fatalf("the handler got a message on %s", c.m.Topic)
	case <-time.After(wait):
	}
}

func testLog(t *testing.T) *slog.Logger {
	t.Helper()
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// running is a broker started by startBroker.
type running struct {
	*Broker
	reg  *registry
	stop func() // cancels Run and waits for it to return
}

// startBroker runs a broker on a free port until the test ends.
func startBroker(t *testing.T, h Handler, cfg Config) *running {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	reg := &registry{}
	b, err := New(cfg, reg, h, testLog(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("broker not ready")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return &running{Broker: b, reg: reg, stop: stop}
}

// dialPaho connects an MQTT 3.1.1 paho client, the kind of client a
// gateway runs.
func dialPaho(t *testing.T, addr, username, password, clientID string, edit ...func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(username).
		SetPassword(password).
		SetProtocolVersion(4). // no silent retry as MQTT 3.1
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(false)
	for _, e := range edit {
		e(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("connect %s: timed out", clientID)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(20) })
	return c, nil
}

func mustPaho(t *testing.T, addr, username, password, clientID string, edit ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := dialPaho(t, addr, username, password, clientID, edit...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitToken waits for a paho token and fails on an error.
func waitToken(t *testing.T, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("%s: no answer", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// rawClient speaks MQTT through mochi's packet codec, so a test sees every
// packet in wire order and can use MQTT 5 (paho.mqtt.golang is 3.1.1
// only).
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
}

// dialRaw connects and authenticates; version is 4 (3.1.1) or 5.
func dialRaw(t *testing.T, addr string, version byte, username, password, clientID string) *rawClient {
	t.Helper()
	return connectRaw(t, addr, version, connectParams(username, password, clientID))
}

func connectParams(username, password, clientID string) packets.ConnectParams {
	return packets.ConnectParams{
		ProtocolName:     []byte("MQTT"),
		Clean:            true,
		Keepalive:        30,
		ClientIdentifier: clientID,
		UsernameFlag:     true,
		Username:         []byte(username),
		PasswordFlag:     true,
		Password:         []byte(password),
	}
}

// connectRaw connects with params and expects a successful CONNACK.
func connectRaw(t *testing.T, addr string, version byte, params packets.ConnectParams) *rawClient {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: params})
	ack := c.read(5 * time.Second)
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: got packet type %d, reason %#x", params.ClientIdentifier, ack.FixedHeader.Type, ack.ReasonCode)
	}
	return c
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		pk.ProtocolVersion = c.version
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	default:
		c.t.Fatalf("rawClient cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// publish sends a PUBLISH and returns its packet id (0 for QoS 0).
func (c *rawClient) publish(topic string, qos byte, payload string) uint16 {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     []byte(payload),
	}
	if qos > 0 {
		c.nextID++
		pk.PacketID = c.nextID
	}
	c.send(pk)
	return pk.PacketID
}

// subscribe subscribes with QoS 1 and returns the SUBACK's code.
func (c *rawClient) subscribe(filter string) byte {
	c.t.Helper()
	c.nextID++
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    c.nextID,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: 1}},
	})
	ack := c.read(5 * time.Second)
	if ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 {
		c.t.Fatalf("subscribe: got packet type %d", ack.FixedHeader.Type)
	}
	return ack.ReasonCodes[0]
}

// read returns the next packet, failing the test after wait.
func (c *rawClient) read(wait time.Duration) packets.Packet {
	c.t.Helper()
	pk, err := c.tryRead(wait)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return pk
}

// tryRead returns the next packet or the error that stopped it (a timeout
// after wait, io.EOF when the broker closed the connection).
func (c *rawClient) tryRead(wait time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		return packets.Packet{}, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return packets.Packet{}, err
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: c.version}
	switch fh.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// waitStats waits until the broker's counters satisfy ok: a client sees its
// PUBACK a moment before the broker counts it.
func waitStats(t *testing.T, b *running, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(b.Stats()) {
		if time.Now().After(deadline) {
			t.Errorf("stats = %+v", b.Stats())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
