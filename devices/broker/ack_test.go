package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestThePubackWaitsForTheHandlersAck(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{})
	c := mustPaho(t, b.Addr(), userA, passA, "gw-a")

	payload := `{"type":"spo2","value":97}`
	tok := c.Publish(readingsTopic(devA), 1, false, payload)
	got := h.next(t)
	if got.m.DeviceID != devA || got.m.Kind != KindReadings || got.m.Topic != readingsTopic(devA) ||
		string(got.m.Payload) != payload || got.m.QoS != 1 || got.m.Received.IsZero() {
		t.Fatalf("handler got %+v", got.m)
	}

	select {
	case <-tok.Done():
		t.Fatal("the PUBACK arrived before the handler acknowledged")
	case <-time.After(300 * time.Millisecond):
	}
	got.ack(Result{})
	waitToken(t, tok, "publish")

	waitStats(t, b, func(s Stats) bool {
		return s.Received == 1 && s.Stored == 1 && s.Acked == 1 && s.Dropped == 0
	})
}

// batcher acknowledges, every tick, everything it got since the last one,
// like a pipeline committing a batch.
type batcher struct {
	mu      sync.Mutex
	pending []func(Result)
	batches []int
}

func (b *batcher) Handle(_ context.Context, _ Message, ack func(Result)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, ack)
}

// run commits every tick until ctx ends.
func (b *batcher) run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		batch := b.pending
		b.pending = nil
		if len(batch) > 0 {
			b.batches = append(b.batches, len(batch))
		}
		b.mu.Unlock()
		for _, ack := range batch {
			ack(Result{})
		}
	}
}

// startBatcher runs a batcher until the end of the test, after the broker
// (cleanups run last-in first-out).
func startBatcher(t *testing.T, tick time.Duration) *batcher {
	t.Helper()
	bt := &batcher{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { bt.run(ctx, tick) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return bt
}

// publishAll publishes n QoS 1 messages on one connection without waiting
// in between and returns how long all PUBACKs took.
func publishAll(t *testing.T, c paho.Client, n int) time.Duration {
	t.Helper()
	start := time.Now()
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = c.Publish(readingsTopic(devA), 1, false, fmt.Sprintf(`{"type":"heart-rate","value":%d}`, 60+i%40))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30 * time.Second) {
			t.Fatalf("message %d: no PUBACK", i)
		}
		if err := tok.Error(); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	return time.Since(start)
}

func TestOneConnectionPipelinesMessagesIntoBatches(t *testing.T) {
	const commit = 10 * time.Millisecond

	t.Run("held PUBACKs let many messages ride in one commit", func(t *testing.T) {
		const n = 200
		bt := startBatcher(t, commit)
		b := startBroker(t, bt, Config{})
		c := mustPaho(t, b.Addr(), userA, passA, "gw-a")

		elapsed := publishAll(t, c, n)
		bt.mu.Lock()
		batches := bt.batches
		bt.mu.Unlock()
		t.Logf("%d messages on one connection with a %v commit: %v, %.0f messages/s, %d commits (largest %d)",
			n, commit, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(batches), maxOf(batches))
		if elapsed >= time.Second {
			t.Errorf("%d messages took %v, want well under %v", n, elapsed, n*commit)
		}
		if len(batches) >= n/4 {
			t.Errorf("%d commits for %d messages: messages are not batched", len(batches), n)
		}
		waitStats(t, b, func(s Stats) bool { return s.Received == n && s.Acked == n })
	})

	t.Run("baseline: a handler that blocks the read loop until its commit", func(t *testing.T) {
		const n = 50
		blocking := HandlerFunc(func(_ context.Context, _ Message, ack func(Result)) {
			time.Sleep(commit)
			ack(Result{})
		})
		b := startBroker(t, blocking, Config{})
		c := mustPaho(t, b.Addr(), userA, passA, "gw-a")
		elapsed := publishAll(t, c, n)
		t.Logf("baseline, %d messages: %v, %.0f messages/s (a window of one)",
			n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	})
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func TestPubacksLeaveInArrivalOrderWhateverOrderTheHandlerAcks(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprintf("MQTT protocol level %d", version), func(t *testing.T) {
			const n = 50
			h := make(held, n)
			b := startBroker(t, h, Config{})
			c := dialRaw(t, b.Addr(), version, userA, passA, "gw-a")
			for i := range n {
				c.publish(readingsTopic(devA), 1, fmt.Sprintf(`{"n":%d}`, i))
			}
			calls := make([]call, n)
			for i := range calls {
				calls[i] = h.next(t)
			}

			// Acknowledge all but the first, newest first.
			for i := n - 1; i >= 1; i-- {
				calls[i].ack(Result{})
				time.Sleep(time.Millisecond)
			}
			if pk, err := c.tryRead(300 * time.Millisecond); err == nil {
				t.Fatalf("got packet type %d (id %d) while the first message was unacknowledged", pk.FixedHeader.Type, pk.PacketID)
			}
			calls[0].ack(Result{})
			for want := uint16(1); want <= n; want++ {
				pk := c.read(5 * time.Second)
				if pk.FixedHeader.Type != packets.Puback || pk.PacketID != want {
					t.Fatalf("got packet type %d id %d, want PUBACK %d", pk.FixedHeader.Type, pk.PacketID, want)
				}
			}
		})
	}
}

func TestOutcomesArePublishedToTheDevicesTopics(t *testing.T) {
	h := make(held, 2)
	b := startBroker(t, h, Config{})
	c := mustPaho(t, b.Addr(), userA, passA, "gw-a", func(o *paho.ClientOptions) { o.SetOrderMatters(true) })

	type reply struct{ topic, payload string }
	replies := make(chan reply, 8)
	for _, suffix := range []string{"/acks", "/errors"} {
		tok := c.Subscribe(devices.TopicPrefix+devA+suffix, 1, func(_ paho.Client, m paho.Message) {
			replies <- reply{m.Topic(), string(m.Payload())}
		})
		waitToken(t, tok, "subscribe "+suffix)
	}

	stored := c.Publish(readingsTopic(devA), 1, false, `{"type":"weight","value":71.3}`)
	h.next(t).ack(Result{Reply: []byte(`{"stored":["Observation/1"]}`)})
	waitToken(t, stored, "stored publish")

	partial := c.Publish(devices.TopicPrefix+devA+"/fhir", 1, false, `{"resourceType":"Bundle"}`)
	h.next(t).ack(Result{Reply: []byte(`{"stored":["Observation/2"]}`), Errors: []byte(`{"rejected":[1]}`)})
	waitToken(t, partial, "partly stored publish")

	bad := c.Publish(devices.TopicPrefix+devA+"/senml", 1, false, `not senml`)
	h.next(t).ack(Result{Rejected: true, ReasonCode: ReasonPayloadFormatInvalid, Reply: []byte(`{"error":"payload format invalid"}`)})
	// An MQTT 3.1.1 client gets a plain PUBACK for a dead letter.
	waitToken(t, bad, "rejected publish")

	want := []reply{
		{devices.TopicPrefix + devA + "/acks", `{"stored":["Observation/1"]}`},
		{devices.TopicPrefix + devA + "/acks", `{"stored":["Observation/2"]}`},
		{devices.TopicPrefix + devA + "/errors", `{"rejected":[1]}`},
		{devices.TopicPrefix + devA + "/errors", `{"error":"payload format invalid"}`},
	}
	for _, w := range want {
		select {
		case got := <-replies:
			if got != w {
				t.Errorf("got %+v, want %+v", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no reply on %s", w.topic)
		}
	}
	waitStats(t, b, func(s Stats) bool { return s.Stored == 2 && s.Rejected == 1 && s.Acked == 3 })
}

func TestPubackReasonCodes(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		result  Result
		want    byte
	}{
		{"an MQTT 5 client gets success for a stored reading", 5, Result{}, 0x00},
		{"an MQTT 5 client gets the handler's reason for a dead letter", 5, Result{Rejected: true, ReasonCode: ReasonPayloadFormatInvalid}, 0x99},
		{"an MQTT 5 client gets implementation specific error when the handler says so", 5, Result{Rejected: true, ReasonCode: ReasonImplementationSpecificError}, 0x83},
		{"an MQTT 5 client gets unspecified error for a dead letter without a valid reason", 5, Result{Rejected: true, ReasonCode: 0x10}, 0x80},
		{"an MQTT 3.1.1 client gets a plain PUBACK for a dead letter", 4, Result{Rejected: true, ReasonCode: ReasonPayloadFormatInvalid}, 0x00},
	}
	h := make(held, 1)
	b := startBroker(t, h, Config{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, b.Addr(), tt.version, userA, passA, fmt.Sprintf("gw-%d", i))
			id := c.publish(readingsTopic(devA), 1, `{}`)
			h.next(t).ack(tt.result)
			pk := c.read(5 * time.Second)
			if pk.FixedHeader.Type != packets.Puback || pk.PacketID != id {
				t.Fatalf("got packet type %d id %d, want PUBACK %d", pk.FixedHeader.Type, pk.PacketID, id)
			}
			if pk.ReasonCode != tt.want {
				t.Errorf("reason code = %#x, want %#x", pk.ReasonCode, tt.want)
			}
		})
	}
}

func TestPubacksWithAndWithoutReasonsKeepTheirOrderInOneBatch(t *testing.T) {
	const n = 7
	rejected := map[int]bool{1: true, 4: true, 5: true}
	h := make(held, n)
	b := startBroker(t, h, Config{})
	c := dialRaw(t, b.Addr(), 5, userA, passA, "gw-a")
	for i := range n {
		c.publish(readingsTopic(devA), 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	calls := make([]call, n)
	for i := range calls {
		calls[i] = h.next(t)
	}
	// The first last, so that all of them leave in one batch.
	for i := n - 1; i >= 0; i-- {
		r := Result{}
		if rejected[i] {
			r = Result{Rejected: true, ReasonCode: ReasonPayloadFormatInvalid}
		}
		calls[i].ack(r)
	}
	for i := range n {
		pk := c.read(5 * time.Second)
		want := byte(0)
		if rejected[i] {
			want = 0x99
		}
		if pk.FixedHeader.Type != packets.Puback || pk.PacketID != uint16(i+1) || pk.ReasonCode != want {
			t.Fatalf("got packet type %d id %d reason %#x, want PUBACK %d reason %#x", pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, i+1, want)
		}
	}
	waitStats(t, b, func(s Stats) bool { return s.Acked == n && s.Dropped == 0 })
}

func TestQoS0MessagesAreHandedOverWithoutPuback(t *testing.T) {
	h := make(held, 2)
	b := startBroker(t, h, Config{})
	c := dialRaw(t, b.Addr(), 4, userA, passA, "gw-a")
	c.publish(readingsTopic(devA), 0, `{"n":0}`)
	got := h.next(t)
	if got.m.QoS != 0 {
		t.Fatalf("QoS = %d", got.m.QoS)
	}
	got.ack(Result{})
	// A QoS 1 message behind it is acked, and nothing comes for the QoS 0 one.
	id := c.publish(readingsTopic(devA), 1, `{"n":1}`)
	h.next(t).ack(Result{})
	if pk := c.read(5 * time.Second); pk.FixedHeader.Type != packets.Puback || pk.PacketID != id {
		t.Fatalf("got packet type %d id %d, want PUBACK %d", pk.FixedHeader.Type, pk.PacketID, id)
	}
	waitStats(t, b, func(s Stats) bool { return s.Received == 2 && s.Acked == 1 })
}
