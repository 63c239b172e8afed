package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vidda/vidda/devices"
)

// mqttVersion is MQTT 3.1.1, what home gateways speak.
const mqttVersion = 4

// keepalive is what a connection announces. A fleet is busy while it
// runs; it must not idle longer than this between Dial and Run.
const keepalive = 60 // seconds

// writeTimeout bounds one write: a broker that stops reading fails the
// connection instead of hanging the run.
const writeTimeout = 10 * time.Second

// maxInbound bounds a packet a connection accepts from the broker.
const maxInbound = 1 << 20

// Errors of a connection.
var (
	errRefused   = errors.New("mqtt connect refused")
	errClosed    = errors.New("connection closed by the broker")
	errTooLarge  = errors.New("inbound packet too large")
	errSubscribe = errors.New("subscription refused")
)

// conn is one simulated home: a raw MQTT 3.1.1 connection.
type conn struct {
	home  Home
	nc    net.Conn
	r     *bufio.Reader
	topic string // where it publishes
	mode  Confirm

	wmu sync.Mutex // serializes writes: the run's writer and the reader's PUBACKs

	win     atomic.Pointer[window] // the current run's, nil between runs
	pubacks atomic.Int64           // PUBACKs received since Dial

	closing atomic.Bool
	dead    chan struct{} // closed when the read loop has ended
	err     error         // why it ended; set before dead is closed

	// The writer's: packet ids, the payload being built, the packets
	// encoded and not yet written.
	nextID  uint16
	payload []byte
	out     bytes.Buffer

	inbound []byte // the read loop's: the body of the packet being read
}

// dial connects and authenticates h; with ConfirmReply it also subscribes
// to h's acks topic. It starts the read loop.
func dial(ctx context.Context, addr string, h Home, mode Confirm, timeout time.Duration) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	c := &conn{
		home: h, nc: nc, r: bufio.NewReaderSize(nc, 4096), mode: mode,
		topic: devices.TopicPrefix + h.DeviceID + "/" + string(devices.KindReadings),
		dead:  make(chan struct{}),
	}
	if err := c.handshake(); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("home %s: %w", h.DeviceID, err)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// handshake sends CONNECT (and SUBSCRIBE) and checks the answers.
func (c *conn) handshake() error {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: mqttVersion,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive,
			ClientIdentifier: "loadgen-" + c.home.DeviceID,
			UsernameFlag:     true, Username: []byte(c.home.Username),
			PasswordFlag: true, Password: []byte(c.home.Password),
		},
	}
	if err := pk.ConnectEncode(&c.out); err != nil {
		return fmt.Errorf("encode connect: %w", err)
	}
	if err := c.flushOut(); err != nil {
		return err
	}
	ack, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("read connack: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		return fmt.Errorf("%w: packet type %d, return code %#x", errRefused, ack.FixedHeader.Type, ack.ReasonCode)
	}
	if c.mode != ConfirmReply {
		return nil
	}
	sub := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: mqttVersion,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: devices.ReplyTopic(c.home.DeviceID, false), Qos: 1}},
	}
	if err := sub.SubscribeEncode(&c.out); err != nil {
		return fmt.Errorf("encode subscribe: %w", err)
	}
	if err := c.flushOut(); err != nil {
		return err
	}
	suback, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("read suback: %w", err)
	}
	if suback.FixedHeader.Type != packets.Suback || len(suback.ReasonCodes) != 1 || suback.ReasonCodes[0] > 1 {
		return fmt.Errorf("%w: packet type %d, codes %v", errSubscribe, suback.FixedHeader.Type, suback.ReasonCodes)
	}
	return nil
}

// flushOut writes and empties c.out.
func (c *conn) flushOut() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(c.out.Bytes())
	c.out.Reset()
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readPacket reads one packet and decodes the kinds a publisher gets.
func (c *conn) readPacket() (packets.Packet, error) {
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: mqttVersion}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, fmt.Errorf("decode header: %w", err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, fmt.Errorf("decode length: %w", err)
	}
	if n > maxInbound {
		return pk, fmt.Errorf("%w: %d bytes", errTooLarge, n)
	}
	pk.FixedHeader.Remaining = n
	if cap(c.inbound) < n {
		c.inbound = make([]byte, n)
	}
	body := c.inbound[:n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, fmt.Errorf("read body: %w", err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		if n < 2 {
			return pk, errors.New("short puback")
		}
		pk.PacketID = binary.BigEndian.Uint16(body)
	case packets.Publish:
		err = pk.PublishDecode(body) // Payload aliases c.inbound until the next read
	case packets.Disconnect:
		err = errClosed
	}
	if err != nil {
		return pk, fmt.Errorf("decode packet type %d: %w", pk.FixedHeader.Type, err)
	}
	return pk, nil
}

// readLoop takes confirmations until the connection ends.
func (c *conn) readLoop() {
	var err error
	defer func() {
		if c.closing.Load() {
			err = nil
		}
		c.err = err
		close(c.dead)
	}()
	var ackOut bytes.Buffer
	for {
		var pk packets.Packet
		pk, err = c.readPacket()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errClosed
			}
			return
		}
		now := time.Now()
		switch pk.FixedHeader.Type {
		case packets.Puback:
			c.pubacks.Add(1)
			if w := c.win.Load(); w != nil && c.mode == ConfirmPuback {
				w.confirmAt(uint32(pk.PacketID), now)
			}
		case packets.Publish:
			if w := c.win.Load(); w != nil && c.mode == ConfirmReply {
				replyReadings(pk.Payload, w.prefix, func(seq int) { w.confirmAt(uint32(seq), now) }) //nolint:gosec // 0 ≤ seq ≤ maxSeq
			}
			if pk.FixedHeader.Qos > 0 {
				if err = c.puback(&ackOut, pk.PacketID); err != nil {
					return
				}
			}
		}
	}
}

// puback acknowledges a reply the broker delivered at QoS 1.
func (c *conn) puback(buf *bytes.Buffer, id uint16) error {
	buf.Reset()
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: mqttVersion, PacketID: id}
	if err := ack.PubackEncode(buf); err != nil {
		return fmt.Errorf("encode puback: %w", err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write puback: %w", err)
	}
	return nil
}

// close says goodbye and waits for the read loop.
func (c *conn) close() {
	c.closing.Store(true)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: mqttVersion}
	c.wmu.Lock()
	var buf bytes.Buffer
	if pk.DisconnectEncode(&buf) == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(buf.Bytes())
	}
	c.wmu.Unlock()
	_ = c.nc.Close()
	<-c.dead
}
