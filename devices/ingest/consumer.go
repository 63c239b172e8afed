package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vidda/vidda/devices"
)

// ConsumerConfig says how vidda reads an external broker (VIDDA_MQTT_URL).
type ConsumerConfig struct {
	// URL is the broker, tcp:// (or mqtt://) or ssl:// (or mqtts://), with
	// vidda's own username and password as user info.
	URL string
	// ClientID is stable per instance (VIDDA_INSTANCE_ID), so the broker
	// keeps its persistent session, and the messages in it, across a
	// restart.
	ClientID string
	// Group names the shared subscription that splits the device stream
	// between instances.
	Group string
	// DrainTimeout bounds the wait for in-flight messages on stop.
	DrainTimeout time.Duration
}

// Validate reports settings that cannot work.
func (c ConsumerConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		// Not quoted: the value carries vidda's broker password.
		return errors.New("VIDDA_MQTT_URL: not a broker URL like tcp://user:pass@host:1883")
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "mqtts", "tls":
	default:
		return fmt.Errorf("VIDDA_MQTT_URL: scheme %q is not tcp, mqtt, ssl or mqtts", u.Scheme)
	}
	if c.ClientID == "" || strings.ContainsAny(c.ClientID, "/+#") {
		return fmt.Errorf("VIDDA_INSTANCE_ID: %q cannot be an MQTT client id", c.ClientID)
	}
	return nil
}

// ErrDisconnected is Ping's answer while the consumer has no connection to
// the external broker.
var ErrDisconnected = errors.New("not connected to the MQTT broker")

// Consumer feeds an external broker's device messages into the pipeline
// through a shared subscription with a persistent session, and acks each
// message to the broker only after the pipeline committed it: the broker
// redelivers whatever vidda had not committed.
type Consumer struct {
	cfg      ConsumerConfig
	pipe     *Pipeline
	log      *slog.Logger
	inflight sync.WaitGroup
	mu       sync.Mutex
	stopping bool
	client   mqtt.Client // set by Run; nil before
}

// NewConsumer returns a consumer for pipe.
func NewConsumer(cfg ConsumerConfig, pipe *Pipeline, log *slog.Logger) *Consumer {
	if cfg.Group == "" {
		cfg.Group = "vidda"
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	return &Consumer{cfg: cfg, pipe: pipe, log: log}
}

// reconnectEvery caps the wait between attempts to reach a lost broker.
// Short, because Mosquitto 2.0 does not keep shared subscriptions across
// its restart: until vidda subscribes again, what devices publish is
// acknowledged to them and delivered to no one (make faults measures it).
const reconnectEvery = time.Second

// Filters are the shared subscriptions of a group.
func Filters(group string) []string {
	out := make([]string, 0, 3)
	for _, k := range []devices.Kind{devices.KindReadings, devices.KindSenML, devices.KindFHIR} {
		out = append(out, "$share/"+group+"/"+devices.TopicPrefix+"+/"+string(k))
	}
	return out
}

// Run consumes until ctx ends, then waits (up to DrainTimeout) for the
// messages in flight to be committed and acknowledged, and disconnects.
func (c *Consumer) Run(ctx context.Context) error {
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	client := mqtt.NewClient(opts)
	c.mu.Lock()
	c.client = client
	c.mu.Unlock()
	tok := client.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("VIDDA_MQTT_URL: connect: %w", err)
		}
	case <-ctx.Done():
		client.Disconnect(0)
		return nil
	}
	<-ctx.Done()
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	drained := make(chan struct{})
	go func() { c.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("mqtt: stopping with messages in flight; the broker will redeliver them")
	}
	client.Disconnect(250)
	return nil
}

// Ping reports whether the consumer is connected to the broker: while it is
// not, no device message reaches vidda (the broker keeps them for vidda's
// session), so the instance is not ready. It fails with ErrDisconnected
// before Run connects, while paho reconnects, and once Run is stopping.
func (c *Consumer) Ping(context.Context) error {
	c.mu.Lock()
	client, stopping := c.client, c.stopping
	c.mu.Unlock()
	if client == nil || stopping || !client.IsConnectionOpen() {
		return ErrDisconnected
	}
	return nil
}

func (c *Consumer) options(ctx context.Context) (*mqtt.ClientOptions, error) {
	u, err := url.Parse(c.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_MQTT_URL: %w", err)
	}
	scheme := "tcp"
	if u.Scheme == "ssl" || u.Scheme == "mqtts" || u.Scheme == "tls" {
		scheme = "ssl"
	}
	opts := mqtt.NewClientOptions().AddBroker(scheme + "://" + u.Host).SetClientID(c.cfg.ClientID).
		SetCleanSession(false).SetResumeSubs(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(reconnectEvery).
		SetAutoAckDisabled(true).SetOrderMatters(true).SetKeepAlive(30 * time.Second)
	if u.User != nil {
		opts.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			opts.SetPassword(p)
		}
	}
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		filters := map[string]byte{}
		for _, f := range Filters(c.cfg.Group) {
			filters[f] = 1
		}
		tok := cl.SubscribeMultiple(filters, func(cl mqtt.Client, m mqtt.Message) { c.handle(ctx, cl, m) })
		if tok.Wait() && tok.Error() != nil {
			c.log.Error("mqtt: subscribe failed", "err", tok.Error())
			return
		}
		c.log.Info("mqtt: consuming", "broker", u.Host, "client_id", c.cfg.ClientID, "group", c.cfg.Group)
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.log.Warn("mqtt: connection lost, reconnecting", "err", err)
	})
	return opts, nil
}

// handle runs in paho's delivery goroutine, one message at a time, so acks
// go back in the order the messages came.
func (c *Consumer) handle(ctx context.Context, cl mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	stopping := c.stopping
	if !stopping {
		c.inflight.Add(1)
	}
	c.mu.Unlock()
	if stopping {
		return // not acknowledged: redelivered after the restart
	}
	deviceID, kind, ok := devices.ParseTopic(m.Topic())
	if !ok {
		// Our filters only match device topics; anything else is acked
		// so it is not redelivered forever.
		m.Ack()
		c.inflight.Done()
		return
	}
	msg := Message{DeviceID: deviceID, Kind: kind, Topic: m.Topic(), Payload: m.Payload(), Received: time.Now()}
	err := c.pipe.Submit(ctx, msg, func(o Outcome) {
		defer c.inflight.Done()
		if !o.Committed {
			return
		}
		c.reply(cl, deviceID, o)
		m.Ack()
	})
	if err != nil {
		c.inflight.Done()
		if !errors.Is(err, ErrStopped) && ctx.Err() == nil {
			c.log.Warn("mqtt: message not queued", "device", deviceID, "err", err)
		}
	}
}

// reply tells the device what became of its message. Replies are QoS 1
// but not waited for: the reading is already safe.
func (c *Consumer) reply(cl mqtt.Client, deviceID string, o Outcome) {
	if o.Reply != nil {
		cl.Publish(devices.ReplyTopic(deviceID, o.Rejected), 1, false, o.Reply)
	}
	if o.Errors != nil {
		cl.Publish(devices.ReplyTopic(deviceID, true), 1, false, o.Errors)
	}
}
