package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vidda/vidda/devices"
)

// conn is one device's MQTT connection with the gateway logic around it:
// the in-flight window, PUBACK waits, and the buffer of failed publishes.
type conn struct {
	dev    Device
	gen    *Generator
	cfg    Config
	stats  *counters
	log    *slog.Logger
	client mqtt.Client
	// slots is the in-flight window: a message takes a slot when it is
	// published and frees it when its PUBACK (or failure) arrives.
	slots chan struct{}
	// connected is signalled by paho on every connection, so that the
	// device subscribes again and re-sends its failed publishes.
	connected chan struct{}
	// flights owns the goroutines that wait for PUBACKs.
	flights sync.WaitGroup

	mu    sync.Mutex
	retry []Message // publishes that failed, to send again

	// unsent counts messages the run ended before they could be
	// published; touched by the device's run goroutine only.
	unsent int
}

func newConn(cfg Config, d Device, st *counters, log *slog.Logger) *conn {
	c := &conn{
		dev: d, gen: NewGenerator(cfg, d), cfg: cfg, stats: st, log: log,
		slots: make(chan struct{}, cfg.InFlight), connected: make(chan struct{}, 1),
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID("sim-" + d.ID).
		SetUsername(d.Username).
		SetPassword(d.Password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		SetConnectRetry(false).
		// A lost connection comes back by itself; paho then re-sends
		// what was in flight, as a gateway must until it has a PUBACK.
		SetAutoReconnect(true).
		SetMaxReconnectInterval(2 * time.Second).
		SetOnConnectHandler(func(mqtt.Client) {
			select {
			case c.connected <- struct{}{}:
			default: // one signal pending is enough
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			st.reconnects.Add(1)
			log.Warn("simulated device lost its connection", "device", d.ID, "err", err)
		})
	c.client = mqtt.NewClient(opts)
	return c
}

// connect makes the first connection and subscribes to the replies.
func (c *conn) connect(ctx context.Context) error {
	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return fmt.Errorf("connect device %s: %w", c.dev.ID, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect device %s: %w", c.dev.ID, err)
	}
	c.subscribe(ctx)
	return nil
}

// subscribe reads the device's acks and errors topics (QoS 0: the replies
// are for counting; the PUBACK is the promise).
func (c *conn) subscribe(ctx context.Context) {
	tok := c.client.SubscribeMultiple(map[string]byte{
		devices.ReplyTopic(c.dev.ID, false): 0,
		devices.ReplyTopic(c.dev.ID, true):  0,
	}, c.onReply)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			c.log.WarnContext(ctx, "simulated device could not subscribe to its replies", "device", c.dev.ID, "err", err)
		}
	case <-ctx.Done():
	}
}

// reply is what the counters need of vidda's acks and errors messages.
type reply struct {
	Stored []struct {
		Duplicate bool `json:"duplicate"`
	} `json:"stored"`
	Rejected []json.RawMessage `json:"rejected"`
}

// onReply counts a reply; paho calls it from its router goroutine.
func (c *conn) onReply(_ mqtt.Client, m mqtt.Message) {
	var r reply
	if err := json.Unmarshal(m.Payload(), &r); err != nil {
		c.log.Warn("simulated device got a reply that is not JSON", "device", c.dev.ID, "topic", m.Topic())
		return
	}
	for _, s := range r.Stored {
		if s.Duplicate {
			c.stats.storedBefore.Add(1)
		} else {
			c.stats.stored.Add(1)
		}
	}
	c.stats.rejected.Add(int64(len(r.Rejected)))
}

// run publishes a measurement for every token it takes until ctx ends.
// PUBACKs are waited for until drain ends.
func (c *conn) run(ctx, drain context.Context, tokens <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.connected:
			c.subscribe(ctx) // a clean session forgot the subscriptions
			c.resend(ctx, drain)
		case <-tokens:
			c.resend(ctx, drain)
			ms := c.gen.Next()
			if len(ms) > 0 && ms[0].Buffered {
				c.stats.outages.Add(1)
			}
			for i, m := range ms {
				if !c.publish(ctx, drain, m, false) {
					c.unsent += len(ms) - i
					break
				}
			}
		}
	}
}

// resend publishes again what failed, once the device is connected.
func (c *conn) resend(ctx, drain context.Context) {
	if !c.client.IsConnectionOpen() {
		return
	}
	c.mu.Lock()
	again := c.retry
	c.retry = nil
	c.mu.Unlock()
	for i, m := range again {
		if !c.publish(ctx, drain, m, true) {
			c.mu.Lock()
			c.retry = append(again[i:], c.retry...)
			c.mu.Unlock()
			return
		}
	}
}

// publish sends m with QoS 1 once a slot of the window is free; false
// when ctx ended first.
func (c *conn) publish(ctx, drain context.Context, m Message, again bool) bool {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if again {
		c.stats.resent.Add(1)
	} else {
		c.stats.count(m)
	}
	sent := time.Now()
	tok := c.client.Publish(m.Topic, 1, false, m.Payload)
	c.flights.Go(func() { c.await(drain, m, tok, sent) })
	return true
}

// await waits for m's PUBACK until drain ends, then frees its slot. A
// failed publish goes to the retry buffer.
func (c *conn) await(drain context.Context, m Message, tok mqtt.Token, sent time.Time) {
	defer func() { <-c.slots }()
	late := time.NewTimer(c.cfg.AckTimeout)
	defer late.Stop()
	select {
	case <-tok.Done():
	case <-late.C:
		c.stats.timeouts.Add(1)
		if !waitDone(drain, tok) {
			c.stats.unacked.Add(1)
			return
		}
	case <-drain.Done():
		if !waitDone(drain, tok) {
			c.stats.unacked.Add(1)
			return
		}
	}
	if err := tok.Error(); err != nil {
		c.stats.failed.Add(1)
		c.log.Debug("simulated publish failed; kept to send again", "device", c.dev.ID, "err", err)
		c.mu.Lock()
		c.retry = append(c.retry, m)
		c.mu.Unlock()
		return
	}
	latency := time.Since(sent)
	c.stats.acked.Add(1)
	c.stats.latency.add(latency)
	if c.cfg.Delivered != nil {
		c.cfg.Delivered(Delivery{DeviceID: m.DeviceID, Class: m.Class, Keys: m.Keys, Latency: latency})
	}
}

// waitDone waits for tok until drain ends; a token done by then wins.
func waitDone(drain context.Context, tok mqtt.Token) bool {
	select {
	case <-tok.Done():
		return true
	case <-drain.Done():
		select {
		case <-tok.Done():
			return true
		default:
			return false
		}
	}
}

// pending is what the device still holds when the run is over: messages
// never published and failed publishes never re-sent.
func (c *conn) pending() (held, unacked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen.Held() + c.unsent, len(c.retry)
}
