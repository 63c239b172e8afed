package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// connectParallel bounds the connections being set up at once, so that a
// thousand devices do not arrive at the broker in the same millisecond.
const connectParallel = 32

// Run connects every device to cfg.Broker and publishes their readings at
// cfg.Rate messages per second in all until cfg.Duration has passed or ctx
// ends, then waits up to cfg.DrainTimeout for the PUBACKs still missing,
// disconnects and returns the totals. A context that ends is how a run is
// stopped, not an error; errors are for runs that cannot start (a bad
// Config, a device that cannot connect).
func Run(ctx context.Context, cfg Config, devs []Device, log *slog.Logger) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	if len(devs) == 0 {
		return Stats{}, ErrNoDevices
	}
	cfg = cfg.withDefaults()
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &counters{}
	conns := make([]*conn, len(devs))
	for i, d := range devs {
		conns[i] = newConn(cfg, d, st, log)
	}
	defer disconnect(conns)
	if err := connect(ctx, conns); err != nil {
		return Stats{}, fmt.Errorf("simulate: %w", err)
	}
	log.InfoContext(ctx, "simulated devices connected", "devices", len(conns), "broker", redact(cfg.Broker),
		"rate", cfg.Rate, "duration", cfg.Duration, "seed", cfg.Seed)

	genCtx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithTimeout(genCtx, cfg.Duration)
		defer cancel()
	}
	// PUBACKs of messages in flight are waited for after the run ends,
	// even when it ended because ctx did.
	drain, endDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer endDrain()

	started := time.Now()
	tokens := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { pace(genCtx, cfg.Rate, tokens) })
	for _, c := range conns {
		wg.Go(func() { c.run(genCtx, drain, tokens) })
	}
	report(genCtx, cfg, st, len(conns), started)
	wg.Wait()
	elapsed := time.Since(started)

	landed := make(chan struct{})
	go func() {
		for _, c := range conns {
			c.flights.Wait()
		}
		close(landed)
	}()
	wait := time.NewTimer(cfg.DrainTimeout)
	select {
	case <-landed:
	case <-wait.C:
		endDrain()
		<-landed
	}
	wait.Stop()

	s := st.snapshot()
	s.Devices, s.Elapsed = len(conns), elapsed
	for _, c := range conns {
		held, unacked := c.pending()
		s.Held += int64(held)
		s.Unacked += int64(unacked)
	}
	log.InfoContext(ctx, "simulation ended", "sent", s.Sent, "acked", s.Acked, "unacked", s.Unacked, "elapsed", elapsed)
	return s, nil
}

// connect makes every device's first connection; the first failure stops
// the others.
func connect(ctx context.Context, conns []*conn) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(connectParallel)
	for _, c := range conns {
		g.Go(func() error { return c.connect(gctx) })
	}
	return g.Wait() //nolint:wrapcheck // each error names its device
}

// disconnect closes every connection, at once rather than one by one.
func disconnect(conns []*conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.client.Disconnect(250) })
	}
	wg.Wait()
}

// pace hands out rate tokens per second on tokens until ctx ends. A device
// takes a token for each measurement. When the devices cannot keep up
// (their windows are full), at most a tenth of a second of tokens is
// saved up: a stall is not made up later in a rush.
func pace(ctx context.Context, rate float64, tokens chan<- struct{}) {
	const tick = 5 * time.Millisecond
	burst := max(1, int(rate/10))
	tk := time.NewTicker(tick)
	defer tk.Stop()
	start := time.Now()
	issued := 0
	for {
		due := int(rate*time.Since(start).Seconds()) - issued
		if due > burst {
			issued += due - burst
			due = burst
		}
		for ; due > 0; due-- {
			select {
			case tokens <- struct{}{}:
				issued++
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-tk.C:
		case <-ctx.Done():
			return
		}
	}
}

// report calls cfg.Progress every cfg.ProgressEvery until ctx ends.
func report(ctx context.Context, cfg Config, st *counters, devices int, started time.Time) {
	if cfg.Progress == nil {
		<-ctx.Done()
		return
	}
	tk := time.NewTicker(cfg.ProgressEvery)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			s := st.snapshot()
			s.Devices, s.Elapsed = devices, time.Since(started)
			cfg.Progress(s)
		case <-ctx.Done():
			return
		}
	}
}

// redact drops a password from a broker URL for logs.
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
