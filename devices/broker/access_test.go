package broker

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestConnectionsWithoutTheDevicesCredentialsAreRefused(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{})
	tests := []struct {
		name, username, password string
	}{
		{"a wrong password", userA, "wrong"},
		{"an unknown username", "nobody", passA},
		{"no username at all", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dialPaho(t, b.Addr(), tt.username, tt.password, "gw-x"); err == nil {
				t.Fatal("connected")
			}
		})
	}
	if s := b.Stats(); s.AuthFailed != uint64(len(tests)) {
		t.Errorf("AuthFailed = %d, want %d", s.AuthFailed, len(tests))
	}
}

func TestCredentialAnswersAreCachedBriefly(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		wantCalls int64
	}{
		// One lookup for the right password, one for the wrong one.
		{"a reconnect within the TTL does not ask the registry again", 0, 2},
		{"with the cache off every connect asks", -1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, make(held), Config{AuthCacheTTL: tt.ttl})
			for range 2 {
				c := mustPaho(t, b.Addr(), userA, passA, "gw-a")
				c.Disconnect(20)
			}
			for range 3 {
				if _, err := dialPaho(t, b.Addr(), userA, "wrong", "gw-a"); err == nil {
					t.Fatal("connected with a wrong password")
				}
			}
			if got := b.reg.calls.Load(); got != tt.wantCalls {
				t.Errorf("CheckDevice called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestADeviceStaysInItsOwnTopics(t *testing.T) {
	h := make(held, 4)
	b := startBroker(t, h, Config{})
	lost := make(chan error, 1)
	a := mustPaho(t, b.Addr(), userA, passA, "gw-a", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})

	t.Run("it may subscribe only to its own acks and errors", func(t *testing.T) {
		for filter, want := range map[string]byte{
			devices.TopicPrefix + devA + "/acks":   1,
			devices.TopicPrefix + devA + "/errors": 1,
			devices.TopicPrefix + devB + "/acks":   0x80,
			devices.TopicPrefix + devB + "/errors": 0x80,
			devices.TopicPrefix + "+/acks":         0x80,
			devices.TopicPrefix + devA + "/#":      0x80,
			"#":                                    0x80,
			"$SYS/broker/#":                        0x80,
		} {
			tok := a.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
			if !tok.WaitTimeout(5 * time.Second) {
				t.Fatalf("subscribe %s: no SUBACK", filter)
			}
			st, ok := tok.(*paho.SubscribeToken)
			if !ok {
				t.Fatalf("subscribe token is %T", tok)
			}
			if got := st.Result()[filter]; got != want {
				t.Errorf("subscribe %s: granted %#x, want %#x", filter, got, want)
			}
		}
	})

	t.Run("a QoS 0 message to another device's topic never reaches the handler", func(t *testing.T) {
		waitToken(t, a.Publish(readingsTopic(devB), 0, false, `{"forged":true}`), "publish")
		// The next message on the same connection is the first the handler sees.
		tok := a.Publish(readingsTopic(devA), 1, false, `{"own":true}`)
		got := h.next(t)
		if got.m.Topic != readingsTopic(devA) {
			t.Fatalf("handler got a message on %s", got.m.Topic)
		}
		got.ack(Result{})
		waitToken(t, tok, "publish")
	})

	t.Run("a QoS 1 message to another device's topic disconnects an MQTT 3.1.1 client", func(t *testing.T) {
		a.Publish(readingsTopic(devB), 1, false, `{"forged":true}`)
		select {
		case err := <-lost:
			t.Logf("connection lost: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("still connected")
		}
		h.none(t, 200*time.Millisecond)
	})

	t.Run("an MQTT 5 client gets PUBACK not authorized for another device's topic", func(t *testing.T) {
		c := dialRaw(t, b.Addr(), 5, userA, passA, "gw-a5")
		for _, topic := range []string{readingsTopic(devB), devices.TopicPrefix + devA + "/other", devices.TopicPrefix + devA + "/acks", "elsewhere"} {
			id := c.publish(topic, 1, `{"forged":true}`)
			pk := c.read(5 * time.Second)
			if pk.FixedHeader.Type != packets.Puback || pk.PacketID != id || pk.ReasonCode != packets.ErrNotAuthorized.Code {
				t.Errorf("%s: got packet type %d id %d reason %#x, want PUBACK %d not authorized",
					topic, pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, id)
			}
		}
		for _, filter := range []string{devices.TopicPrefix + devB + "/acks", "$share/g/" + devices.TopicPrefix + devB + "/acks"} {
			if code := c.subscribe(filter); code != packets.ErrNotAuthorized.Code {
				t.Errorf("subscribe %s: %#x, want not authorized", filter, code)
			}
		}
		h.none(t, 200*time.Millisecond)
	})

	if s := b.Stats(); s.Received != 1 || s.Denied < 12 {
		t.Errorf("stats = %+v", s)
	}
}

func TestQoS2IsRefused(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{})

	t.Run("an MQTT 5 client is disconnected with QoS not supported", func(t *testing.T) {
		c := dialRaw(t, b.Addr(), 5, userA, passA, "gw-a5")
		c.publish(readingsTopic(devA), 2, `{}`)
		pk := c.read(5 * time.Second)
		if pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrQosNotSupported.Code {
			t.Fatalf("got packet type %d reason %#x, want DISCONNECT 0x9b", pk.FixedHeader.Type, pk.ReasonCode)
		}
	})

	t.Run("an MQTT 3.1.1 client is disconnected", func(t *testing.T) {
		c := dialRaw(t, b.Addr(), 4, userA, passA, "gw-a4")
		c.publish(readingsTopic(devA), 2, `{}`)
		_, err := c.tryRead(5 * time.Second)
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("read: %v, want the connection closed", err)
		}
		if !errors.Is(err, io.EOF) {
			t.Logf("connection ended with %v", err)
		}
	})

	h.none(t, 100*time.Millisecond)
	if s := b.Stats(); s.Denied != 2 || s.Received != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestWillMessagesAreDropped(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{})
	victim := mustPaho(t, b.Addr(), userB, passB, "gw-b")
	got := make(chan string, 1)
	waitToken(t, victim.Subscribe(devices.TopicPrefix+devB+"/acks", 1, func(_ paho.Client, m paho.Message) {
		got <- string(m.Payload())
	}), "subscribe")

	// A device sets a will on another device's acks topic and drops dead.
	params := connectParams(userA, passA, "gw-a")
	params.WillFlag = true
	params.WillQos = 1
	params.WillTopic = devices.TopicPrefix + devB + "/acks"
	params.WillPayload = []byte(`{"stored":["forged"]}`)
	c := connectRaw(t, b.Addr(), 4, params)
	_ = c.conn.Close()
	select {
	case p := <-got:
		t.Fatalf("the victim got %q", p)
	case <-time.After(300 * time.Millisecond):
	}
}
