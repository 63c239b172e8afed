package loadgen

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWindowHoldsAtMostItsSizeOutstanding(t *testing.T) {
	w := newWindow(3, time.Now(), "x-", 0)
	for key := range uint32(3) {
		if !w.tryAcquire() || !w.add(key, 0) {
			t.Fatalf("slot %d of 3 not free", key)
		}
	}
	if w.tryAcquire() {
		t.Fatal("a fourth slot was free in a window of 3")
	}
	if w.outstanding() != 3 {
		t.Fatalf("outstanding = %d, want 3", w.outstanding())
	}
	stop := make(chan struct{})
	close(stop)
	if w.acquire(stop, nil) {
		t.Fatal("acquire on a full window returned a slot after stop")
	}
	if !w.confirm(1, 5*time.Millisecond) || !w.tryAcquire() {
		t.Fatal("a confirmation did not free a slot")
	}
	if w.tryAcquire() {
		t.Fatal("one confirmation freed two slots")
	}
}

func TestWindowIgnoresUnknownAndRepeatedConfirmations(t *testing.T) {
	w := newWindow(2, time.Now(), "x-", 0)
	w.tryAcquire()
	w.add(7, 10*time.Millisecond)
	if w.confirm(8, time.Second) {
		t.Fatal("confirmed a key that was never sent")
	}
	if !w.confirm(7, 25*time.Millisecond) {
		t.Fatal("did not confirm a key that was sent")
	}
	if w.confirm(7, 30*time.Millisecond) {
		t.Fatal("confirmed the same key twice")
	}
	s := w.stats()
	if s.confirmed != 1 || len(s.lat) != 1 || s.lat[0] != 15*time.Millisecond {
		t.Fatalf("stats = %+v, want one confirmation after 15ms", s)
	}
	// Two slots free again: the ignored confirmations freed none.
	free := 0
	for w.tryAcquire() {
		free++
	}
	if free != 2 {
		t.Fatalf("%d slots free in a window of 2", free)
	}
}

func TestWindowRefusesAKeyStillOutstanding(t *testing.T) {
	w := newWindow(2, time.Now(), "x-", 0)
	w.tryAcquire()
	w.add(1, 0)
	w.tryAcquire()
	if w.add(1, 0) {
		t.Fatal("the same packet id was allowed twice in flight")
	}
	if !w.add(2, 0) {
		t.Fatal("another key was refused")
	}
}

func TestWindowCountsOnlyConfirmationsWithinThePeriod(t *testing.T) {
	w := newWindow(4, time.Now(), "x-", time.Second)
	for key := range uint32(2) {
		w.tryAcquire()
		w.add(key, 0)
	}
	w.confirm(0, time.Second)
	w.confirm(1, time.Second+time.Nanosecond)
	if s := w.stats(); s.confirmed != 2 || s.inWindow != 1 || s.lastConfirmed != time.Second+time.Nanosecond {
		t.Fatalf("stats = %+v, want 2 confirmed, 1 in the period", s)
	}
}

func TestPacerSpreadsTheFleetRateEvenly(t *testing.T) {
	const homes, rate = 4, 100.0 // 25/s each: every 40 ms, staggered by 10 ms
	var dues []time.Duration
	for k := range homes {
		p := newPacer(rate, k, homes)
		if p.flood() {
			t.Fatal("a paced run floods")
		}
		for seq := range 3 {
			dues = append(dues, p.due(seq))
		}
	}
	want := []time.Duration{0, 40, 80, 10, 50, 90, 20, 60, 100, 30, 70, 110}
	for i := range want {
		if dues[i] != want[i]*time.Millisecond {
			t.Fatalf("due times %v, want %v ms", dues, want)
		}
	}
}

func TestPacerDoesNotDriftOverALongRun(t *testing.T) {
	p := newPacer(3, 0, 1) // an interval of 1/3 s does not divide evenly
	if got := p.due(3_000_000); got != 1_000_000*time.Second {
		t.Fatalf("due(3e6) = %s, want exactly 1e6 s", got)
	}
}

func TestZeroRateFloods(t *testing.T) {
	p := newPacer(0, 3, 10)
	if !p.flood() || p.due(1000) != 0 {
		t.Fatal("a zero rate is not a flood")
	}
}

func TestReadingsAreValidCompactJSONOfOneObservationEach(t *testing.T) {
	at := time.Date(2026, 11, 20, 7, 31, 0, 0, time.UTC)
	for seq := range 10 {
		payload := AppendReading(nil, "t-", seq, at)
		readings, err := devices.DecodeCompact(payload)
		if err != nil || len(readings) != 1 {
			t.Fatalf("reading %d: %v\n%s", seq, err, payload)
		}
		if want := fmt.Sprintf("t-%09d", seq); readings[0].ID != want {
			t.Errorf("reading %d has id %q, want %q", seq, readings[0].ID, want)
		}
		obs, err := readings[0].Observations("dev-1", "pat-1")
		if err != nil || len(obs) != 1 {
			t.Fatalf("reading %d maps to %d observations: %v\n%s", seq, len(obs), err, payload)
		}
	}
}

func TestRepliesConfirmTheReadingsOfTheirRunOnly(t *testing.T) {
	reply := []byte(`{"device":"d","stored":[{"reading":"m-000000007","observation":"o1"},` +
		`{"reading":"old-000000008","observation":"o2"},{"reading":"m-12","observation":"o3"},` +
		`{"reading":"m-000000009","observation":"o4","duplicate":true}]}`)
	var got []int
	replyReadings(reply, "m-", func(seq int) { got = append(got, seq) })
	if fmt.Sprint(got) != "[7 9]" {
		t.Fatalf("confirmed %v, want [7 9]", got)
	}
}

// homes is a registry of n devices for a test broker.
type homes map[string]Home

func newHomes(n int) homes {
	h := homes{}
	for i := range n {
		id := fmt.Sprintf("dev-%d", i)
		h[id] = Home{DeviceID: id, Username: id, Password: "pw-" + id}
	}
	return h
}

func (h homes) CheckDevice(_ context.Context, username, password string) (string, bool, error) {
	d, ok := h[username]
	return d.DeviceID, ok && d.Password == password, nil
}

func (h homes) list() []Home {
	out := make([]Home, 0, len(h))
	for _, d := range h {
		out = append(out, d)
	}
	return out
}

// startBroker runs vidda's embedded broker with h as its Handler.
func startBroker(t *testing.T, reg homes, h broker.Handler) string {
	t.Helper()
	return startBrokerWith(t, broker.Config{}, reg, h)
}

func startBrokerWith(t *testing.T, cfg broker.Config, reg homes, h broker.Handler) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	b, err := broker.New(cfg, reg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return b.Addr()
}

func TestAFleetIsConfirmedByPubacksAndNeverExceedsItsWindow(t *testing.T) {
	const window = 4
	var (
		mu       sync.Mutex
		held     = map[string][]func(broker.Result){}
		peak     int
		received int
	)
	// Holds each device's acks until it has window outstanding, then
	// acknowledges them all: a home exceeding its window would show as a
	// queue longer than window.
	h := broker.HandlerFunc(func(_ context.Context, m broker.Message, ack func(broker.Result)) {
		mu.Lock()
		defer mu.Unlock()
		received++
		held[m.DeviceID] = append(held[m.DeviceID], ack)
		q := held[m.DeviceID]
		peak = max(peak, len(q))
		if len(q) < window {
			return
		}
		held[m.DeviceID] = nil
		for _, a := range q {
			a(broker.Result{})
		}
	})
	reg := newHomes(3)
	addr := startBroker(t, reg, h)
	ctx := context.Background()
	f, err := Dial(ctx, DialConfig{Addr: addr, Homes: reg.list()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := f.Run(ctx, Load{Prefix: "w-", Window: window, Count: 40, Drain: 5 * time.Second, Spacing: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 || res.Sent != 120 || res.Confirmed != 120 || res.InPeriod != 120 || len(res.Latencies) != 120 || res.Unconfirmed != 0 {
		t.Fatalf("result = %+v (latencies %d)", res, len(res.Latencies))
	}
	if res.BrokerAcks != 120 || res.Elapsed <= 0 || res.PerSecond() <= 0 {
		t.Fatalf("result = %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak != window || received != 120 {
		t.Fatalf("a device had up to %d messages waiting (window %d); broker got %d", peak, window, received)
	}
}

func TestAPacedRunOffersItsRateForItsDuration(t *testing.T) {
	reg := newHomes(5)
	addr := startBroker(t, reg, broker.HandlerFunc(func(_ context.Context, _ broker.Message, ack func(broker.Result)) {
		ack(broker.Result{})
	}))
	ctx := context.Background()
	f, err := Dial(ctx, DialConfig{Addr: addr, Homes: reg.list()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := f.Run(ctx, Load{Prefix: "p-", Window: 20, Rate: 500, Duration: time.Second, Spacing: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// 500/s for 1 s: publishes due at 0, 2 ms, … 998 ms.
	if res.Errors > 0 || res.Sent < 450 || res.Sent > 501 || res.Confirmed != res.Sent || res.Elapsed != time.Second {
		t.Fatalf("result = %+v", res)
	}
}

func TestRepliesOnTheAcksTopicConfirmReadings(t *testing.T) {
	// The broker acknowledges at once but replies only for even readings:
	// odd ones stay unconfirmed although the broker PUBACKed them.
	h := broker.HandlerFunc(func(_ context.Context, m broker.Message, ack func(broker.Result)) {
		r, err := devices.DecodeCompact(m.Payload)
		if err != nil || len(r) != 1 {
			ack(broker.Result{Rejected: true})
			return
		}
		var res broker.Result
		if r[0].ID[len(r[0].ID)-1]%2 == 0 {
			res.Reply = fmt.Appendf(nil, `{"device":%q,"stored":[{"reading":%q,"observation":"o"}]}`, m.DeviceID, r[0].ID)
		}
		ack(res)
	})
	reg := newHomes(2)
	addr := startBroker(t, reg, h)
	ctx := context.Background()
	f, err := Dial(ctx, DialConfig{Addr: addr, Homes: reg.list(), Confirm: ConfirmReply})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := f.Run(ctx, Load{Prefix: "r-", Window: 50, Count: 10, Drain: 300 * time.Millisecond, Spacing: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 || res.Sent != 20 || res.BrokerAcks != 20 || res.Confirmed != 10 || res.Unconfirmed != 10 {
		t.Fatalf("result = %+v", res)
	}
}

func TestARunEndsWhenTheBrokerStopsConfirming(t *testing.T) {
	// The handler never acknowledges: the run must still end, by Limit
	// and Drain, with its readings counted as unconfirmed.
	reg := newHomes(1)
	addr := startBrokerWith(t, broker.Config{DrainTimeout: 50 * time.Millisecond}, reg,
		broker.HandlerFunc(func(context.Context, broker.Message, func(broker.Result)) {}))
	ctx := context.Background()
	f, err := Dial(ctx, DialConfig{Addr: addr, Homes: reg.list()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	res, err := f.Run(ctx, Load{Prefix: "s-", Window: 2, Count: 100, Limit: 200 * time.Millisecond, Drain: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the run took %s", took)
	}
	if res.Sent != 2 || res.Confirmed != 0 || res.Unconfirmed != 2 {
		t.Fatalf("result = %+v", res)
	}
}

func TestDialFailsOnAWrongPassword(t *testing.T) {
	reg := newHomes(2)
	addr := startBroker(t, reg, broker.HandlerFunc(func(_ context.Context, _ broker.Message, ack func(broker.Result)) {
		ack(broker.Result{})
	}))
	bad := reg.list()
	bad[1].Password = "wrong"
	if f, err := Dial(context.Background(), DialConfig{Addr: addr, Homes: bad}); err == nil {
		f.Close()
		t.Fatal("a home with a wrong password connected")
	}
}
