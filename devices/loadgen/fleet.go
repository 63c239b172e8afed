package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Home is one simulated home gateway: the credential of its device.
type Home struct {
	DeviceID string
	Username string
	Password string
}

// Confirm is what tells a home that a reading is safe.
type Confirm int

// What confirms a reading (see the package documentation).
const (
	// ConfirmPuback: the broker's PUBACK.
	ConfirmPuback Confirm = iota
	// ConfirmReply: vidda's reply on the device's acks topic.
	ConfirmReply
)

// DialConfig says where and how a fleet connects.
type DialConfig struct {
	// Addr is the broker, host:port.
	Addr string
	// Homes are the connections, one per home.
	Homes []Home
	// Confirm is what frees a window slot.
	Confirm Confirm
	// Parallel is how many connections are set up at once (default 64).
	Parallel int
	// Timeout bounds one connection's dial and handshake (default 10 s).
	Timeout time.Duration
}

// ErrInvalid means a DialConfig or Load cannot work.
var ErrInvalid = errors.New("loadgen: invalid settings")

// Fleet is a set of connected homes. Run loads it, one run at a time;
// Close disconnects it.
type Fleet struct {
	conns []*conn
	mu    sync.Mutex // one run at a time
}

// Dial connects every home, Parallel at a time. It fails, leaving nothing
// connected, if any home cannot connect.
func Dial(ctx context.Context, cfg DialConfig) (*Fleet, error) {
	if cfg.Addr == "" || len(cfg.Homes) == 0 {
		return nil, fmt.Errorf("%w: an address and at least one home are needed", ErrInvalid)
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	conns := make([]*conn, len(cfg.Homes))
	errs := make([]error, len(cfg.Homes))
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i, h := range cfg.Homes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = dial(ctx, cfg.Addr, h, cfg.Confirm, cfg.Timeout)
		})
	}
	wg.Wait()
	f := &Fleet{}
	failed, first := 0, error(nil)
	for i, c := range conns {
		if errs[i] != nil {
			failed++
			if first == nil {
				first = errs[i]
			}
			continue
		}
		f.conns = append(f.conns, c)
	}
	if failed > 0 {
		f.Close()
		return nil, fmt.Errorf("loadgen: %d of %d homes could not connect, first: %w", failed, len(cfg.Homes), first)
	}
	return f, nil
}

// Close disconnects every home and waits for their goroutines.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Go(c.close)
	}
	wg.Wait()
}

// Size is the number of connected homes.
func (f *Fleet) Size() int { return len(f.conns) }

// Load is one run: what every home publishes, how fast, for how long.
type Load struct {
	// Prefix starts the reading ids of the run; each run needs its own, so
	// that its readings are new to the store (ids are Prefix plus nine
	// digits, e.g. "f-000000042").
	Prefix string
	// Window is how many unconfirmed readings a home may have outstanding.
	Window int
	// Rate is the fleet's offered load in readings/s, spread evenly over
	// the homes; 0 floods (each home keeps its window full).
	Rate float64
	// Count is how many readings each home sends; 0: until Duration ends.
	Count int
	// Duration is how long the homes publish; 0: until Count is sent.
	Duration time.Duration
	// Limit stops a run without a Duration from publishing after this
	// long (default 5 minutes), so that a broker that stops confirming
	// cannot hold it forever.
	Limit time.Duration
	// Drain bounds the wait, after publishing ends, for the confirmations
	// of readings still outstanding (default 10 s).
	Drain time.Duration
	// Backlog and Spacing set measurement times: reading seq of a home was
	// measured at start - Backlog + seq*Spacing (vidda refuses readings
	// more than 5 minutes in the future).
	Backlog time.Duration
	Spacing time.Duration
}

func (l Load) validate() error {
	switch {
	case l.Window < 1 || l.Window > 65535:
		return fmt.Errorf("%w: Window %d is outside 1..65535", ErrInvalid, l.Window)
	case l.Count <= 0 && l.Duration <= 0:
		return fmt.Errorf("%w: set Count, Duration or both", ErrInvalid)
	case l.Count > maxSeq+1:
		return fmt.Errorf("%w: Count %d is above %d", ErrInvalid, l.Count, maxSeq+1)
	case l.Rate < 0 || l.Duration < 0 || l.Limit < 0 || l.Drain < 0 || l.Backlog < 0 || l.Spacing < 0:
		return fmt.Errorf("%w: negative Rate, Duration, Limit, Drain, Backlog or Spacing", ErrInvalid)
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Homes int
	// Sent is how many readings were published.
	Sent int
	// Confirmed is how many were confirmed, drain included.
	Confirmed int
	// InPeriod is how many were confirmed within Elapsed: the throughput
	// is InPeriod / Elapsed.
	InPeriod int
	// Elapsed is Duration when set; otherwise the time from the start to
	// the last confirmation.
	Elapsed time.Duration
	// Latencies holds one entry per confirmed reading: from publish (for a
	// paced run, from when the publish was due) to its confirmation.
	Latencies []time.Duration
	// Unconfirmed is how many readings were still outstanding when the run
	// returned (the drain timed out, or a connection died).
	Unconfirmed int
	// BrokerAcks is how many PUBACKs the broker sent during the run: with
	// ConfirmReply, what the broker itself promised to deliver.
	BrokerAcks int
	// MaxLate is how late a paced publish went out at worst (a generator
	// starved of CPU shows here).
	MaxLate time.Duration
	// Errors counts connections that failed during the run.
	Errors     int
	FirstError string
}

// PerSecond is confirmed readings per second within the period.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.InPeriod) / r.Elapsed.Seconds()
}

// drainPoll is how often a run looks whether every window has emptied.
const drainPoll = 5 * time.Millisecond

// Run loads the fleet with l and returns when every home has stopped
// publishing and its outstanding readings were confirmed, or Drain has
// passed. An error means the run could not start; failures during the
// run are counted in the Result.
func (f *Fleet) Run(ctx context.Context, l Load) (Result, error) {
	if err := l.validate(); err != nil {
		return Result{}, err
	}
	if l.Drain == 0 {
		l.Drain = 10 * time.Second
	}
	if l.Limit == 0 {
		l.Limit = 5 * time.Minute
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	start := time.Now()
	pubacks := make([]int64, len(f.conns))
	wins := make([]*window, len(f.conns))
	for i, c := range f.conns {
		pubacks[i] = c.pubacks.Load()
		wins[i] = newWindow(l.Window, start, l.Prefix, l.Duration)
		c.win.Store(wins[i])
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	stopAfter := l.Limit
	if l.Duration > 0 {
		stopAfter = l.Duration
	}
	t := time.AfterFunc(stopAfter, halt)
	defer t.Stop()
	defer context.AfterFunc(ctx, halt)()

	writers := make([]writer, len(f.conns))
	var wg sync.WaitGroup
	for i, c := range f.conns {
		writers[i] = writer{c: c, w: wins[i], l: l, start: start, stop: stop, pace: newPacer(l.Rate, i, len(f.conns))}
		wg.Go(writers[i].run)
	}
	wg.Wait()
	f.drain(ctx, wins, l.Drain)
	for _, c := range f.conns {
		c.win.Store(nil)
	}
	return f.collect(l, wins, writers, pubacks), nil
}

// drain waits until no live connection has a reading outstanding, or
// limit passes, or ctx ends.
func (f *Fleet) drain(ctx context.Context, wins []*window, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		waiting := false
		for i, c := range f.conns {
			select {
			case <-c.dead:
				continue
			default:
			}
			if wins[i].outstanding() > 0 {
				waiting = true
				break
			}
		}
		if !waiting {
			return
		}
		time.Sleep(drainPoll)
	}
}

func (f *Fleet) collect(l Load, wins []*window, writers []writer, pubacks []int64) Result {
	res := Result{Homes: len(f.conns), Elapsed: l.Duration}
	var last time.Duration
	for i, c := range f.conns {
		s := wins[i].stats()
		res.Sent += writers[i].sent
		res.Confirmed += s.confirmed
		res.InPeriod += s.inWindow
		res.Unconfirmed += s.outstanding
		res.Latencies = append(res.Latencies, s.lat...)
		res.BrokerAcks += int(c.pubacks.Load() - pubacks[i])
		res.MaxLate = max(res.MaxLate, writers[i].maxLate)
		last = max(last, s.lastConfirmed)
		err := writers[i].err
		select {
		case <-c.dead:
			if err == nil {
				err = c.err
			}
		default:
		}
		if err != nil {
			if res.Errors == 0 {
				res.FirstError = fmt.Sprintf("home %s: %v", c.home.DeviceID, err)
			}
			res.Errors++
		}
	}
	if l.Duration == 0 {
		res.Elapsed = last
	}
	return res
}
