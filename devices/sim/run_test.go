package sim

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/broker"
)

// registry knows the test devices: the password of each is "pw-" + its id.
type registry struct{}

func (registry) CheckDevice(_ context.Context, username, password string) (string, bool, error) {
	if strings.HasPrefix(username, "sim-") && password == "pw-"+username {
		return username, true, nil
	}
	return "", false, nil
}

// withCredentials gives devices the credentials registry knows.
func withCredentials(devs []Device) []Device {
	for i := range devs {
		devs[i].Username, devs[i].Password = devs[i].ID, "pw-"+devs[i].ID
	}
	return devs
}

// inbox is a Handler that acknowledges every message at once, replies as
// vidda does for a single stored reading, and remembers the payloads.
type inbox struct {
	mu       sync.Mutex
	payloads map[string]int // device id + payload → times received
	received atomic.Int64
}

func newInbox() *inbox { return &inbox{payloads: map[string]int{}} }

func (in *inbox) Handle(_ context.Context, m broker.Message, ack func(broker.Result)) {
	in.mu.Lock()
	in.payloads[m.DeviceID+" "+string(m.Payload)]++
	in.mu.Unlock()
	in.received.Add(1)
	ack(broker.Result{Reply: []byte(`{"device":"` + m.DeviceID + `","stored":[{"observation":"o1"}]}`)})
}

// runBroker runs an embedded broker on addr until stop is called or the
// test ends.
func runBroker(t *testing.T, addr string, h broker.Handler) (stop func()) {
	t.Helper()
	b, err := broker.New(broker.Config{Listen: addr, DrainTimeout: time.Second}, registry{}, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("broker: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("broker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestRunPublishesAtTheRateAndWaitsForEveryPUBACK(t *testing.T) {
	addr := freeAddr(t)
	in := newInbox()
	runBroker(t, addr, in)
	devs := withCredentials(testDevices(6))
	var delivered atomic.Int64
	var progress atomic.Int64
	s, err := Run(context.Background(), Config{
		Broker: "tcp://" + addr, Rate: 300, Duration: 1500 * time.Millisecond, Seed: 1, InFlight: 4,
		Delivered:     func(Delivery) { delivered.Add(1) },
		Progress:      func(Stats) { progress.Add(1) },
		ProgressEvery: 200 * time.Millisecond,
	}, devs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s)
	// Pacing may fall behind on a loaded machine (no timing thresholds in
	// tests), but it must never run ahead of the asked rate.
	if s.Devices != len(devs) || s.Sent == 0 || s.Rate() > 330 {
		t.Errorf("%d devices sent %.0f messages/s, want at most about 300", s.Devices, s.Rate())
	}
	if s.Acked != s.Sent || s.Unacked != 0 || s.Failed != 0 || delivered.Load() != s.Acked || in.received.Load() != s.Sent {
		t.Errorf("sent %d, acked %d, unacked %d, failed %d, delivered %d, received %d",
			s.Sent, s.Acked, s.Unacked, s.Failed, delivered.Load(), in.received.Load())
	}
	if s.P50 <= 0 || s.P99 < s.P50 || s.Max < s.P99 {
		t.Errorf("latency p50 %s p99 %s max %s", s.P50, s.P99, s.Max)
	}
	if progress.Load() < 3 {
		t.Errorf("progress reported %d times in 1.5 s, every 200 ms", progress.Load())
	}
	// Replies are QoS 0, but nothing drops them on a quiet loopback.
	if s.Stored < s.Acked*9/10 {
		t.Errorf("counted %d replies for %d acked messages", s.Stored, s.Acked)
	}
}

// TestAGatewaySendsAgainWhatHadNoPUBACKWhenTheBrokerComesBack stops the
// broker in the middle of a run and starts another on the same address:
// every message the devices published is acknowledged in the end.
func TestAGatewaySendsAgainWhatHadNoPUBACKWhenTheBrokerComesBack(t *testing.T) {
	addr := freeAddr(t)
	in := newInbox()
	stop := runBroker(t, addr, in)
	devs := withCredentials(testDevices(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		s   Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Run(ctx, Config{Broker: "tcp://" + addr, Rate: 200, Duration: 3 * time.Second, DrainTimeout: 10 * time.Second, Seed: 2, Mix: Mix{Malformed: -1}}, devs, nil)
		done <- result{s, err}
	}()
	for in.received.Load() < 100 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	time.Sleep(300 * time.Millisecond) // offline: publishes pile up in the gateways
	runBroker(t, addr, in)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	s := r.s
	t.Logf("%+v", s)
	if s.Reconnects < int64(len(devs)) {
		t.Errorf("%d reconnects of %d devices", s.Reconnects, len(devs))
	}
	if s.Acked != s.Sent || s.Unacked != 0 {
		t.Fatalf("sent %d, acked %d, unacked %d", s.Sent, s.Acked, s.Unacked)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if int64(len(in.payloads)) != s.Sent-s.Duplicates {
		t.Errorf("the broker saw %d distinct messages; %d were sent, %d of them duplicates", len(in.payloads), s.Sent, s.Duplicates)
	}
}

func TestRunRefusesBadCredentialsNamingTheDevice(t *testing.T) {
	addr := freeAddr(t)
	runBroker(t, addr, newInbox())
	devs := withCredentials(testDevices(2))
	devs[1].Password = "wrong"
	_, err := Run(context.Background(), Config{Broker: "tcp://" + addr, Duration: time.Second}, devs, nil)
	if err == nil || !strings.Contains(err.Error(), devs[1].ID) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v, want one naming %s and not its password", err, devs[1].ID)
	}
	if _, err := Run(context.Background(), Config{Broker: "tcp://" + addr}, nil, nil); !errors.Is(err, ErrNoDevices) {
		t.Errorf("no devices: %v", err)
	}
}

func TestTheDeviceTopicIsItsReadingsTopic(t *testing.T) {
	d := Device{ID: "sim-1-scale"}
	if id, kind, ok := devices.ParseTopic(d.topic()); !ok || id != d.ID || kind != devices.KindReadings {
		t.Errorf("topic %s", d.topic())
	}
}
