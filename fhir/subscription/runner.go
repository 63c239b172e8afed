package subscription

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// Store is what the Runner needs of the store.
type Store interface {
	OpenFeed(ctx context.Context) (*store.Feed, error)
	EnsureChangeTriggers(ctx context.Context, types []string) ([]string, error)
	LiveSubscriptions(ctx context.Context) ([]store.SubscriptionRow, error)
	SaveSubscriptionState(ctx context.Context, id string, version int64, state store.SubscriptionState, res *fhir.Resource) (*store.Stored, error)
	MatchChanges(ctx context.Context, maxRows int, match func(ctx context.Context, r *store.ChangeRound) error) (int, bool, error)
	PendingEvents(ctx context.Context, id string, limit int) ([]store.Event, error)
	EventDelivered(ctx context.Context, id string, number int64) error
	VRead(ctx context.Context, typ, id string, vid int64, a store.Access) (*store.Stored, error)
}

// Runner handshakes, matches and delivers (see the package comment). Run
// it once per vidda instance; the instances agree on which one works.
type Runner struct {
	st    Store
	types *fhir.Registry
	check *Checker
	cfg   Config
	log   *slog.Logger
	send  *sender
	m     *metrics

	// wake asks the loop for a round now; kick only to start workers.
	wake, kick chan struct{}

	mu   sync.Mutex
	subs map[string]*sub // by id; the loop's, busy is shared with workers
	// done counts the workers that have finished, to tell a refresh that
	// read the store before a worker's writes from one that read after.
	done uint64
}

// sub is the loop's view of one live subscription.
type sub struct {
	row  store.SubscriptionRow
	spec *Spec // parsed from row.Content; nil when it no longer parses
	busy bool  // a worker is handshaking or delivering
	// finished is the value of Runner.done when its last worker finished.
	finished uint64
	// stale: its last worker could not tell what it left in the store;
	// nothing is started for it until a refresh reads it again.
	stale bool
	// pending: events may wait (the outbox said so, or a round added some).
	pending bool
	// enqueued counts the rounds that added events.
	enqueued uint64
	// oldest is when its oldest undelivered event was matched, as its
	// worker last read the outbox; zero when it found none (the oldest
	// pending gauge).
	oldest time.Time
}

// outcome is what a worker leaves in the store.
type outcome struct {
	row store.SubscriptionRow
	// known is false when a write failed: reload the subscription.
	known bool
	// drained: the worker found the outbox empty.
	drained bool
}

// NewRunner returns a Runner over st. Register serves its metrics.
func NewRunner(st Store, types *fhir.Registry, params *search.Registry, cfg Config, log *slog.Logger) *Runner {
	return &Runner{
		st: st, types: types, check: NewChecker(types, params, cfg), cfg: cfg, log: log,
		send: newSender(cfg.Timeout), m: newMetrics(),
		wake: make(chan struct{}, 1),
		kick: make(chan struct{}, 1),
		subs: map[string]*sub{},
	}
}

// Checker returns the runner's Checker, for the Service.
func (r *Runner) Checker() *Checker { return r.check }

// Run works until ctx ends: it waits to be the instance that holds the
// feed's lock, then handshakes, matches and delivers until ctx ends or the
// lock is lost (and then waits for it again). On return, deliveries in
// flight have finished; what was not delivered stays in the outbox.
func (r *Runner) Run(ctx context.Context) error {
	retry := r.cfg.RetryMin
	for {
		started := time.Now()
		err := r.follow(ctx)
		select {
		case <-ctx.Done():
			return nil
		default:
		}
		if time.Since(started) > time.Minute {
			retry = r.cfg.RetryMin // it worked for a while: not a loop of failures
		}
		r.log.WarnContext(ctx, "subscriptions: change feed lost, reconnecting", "err", err, "in", retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, 30*time.Second)
	}
}

// follow opens the feed, waits for the lock and leads while it holds it.
func (r *Runner) follow(ctx context.Context) error {
	feed, err := r.st.OpenFeed(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = feed.Close(context.WithoutCancel(ctx)) }()
	for {
		ok, err := feed.TryLead(ctx)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		// Another instance leads; ask again now and then.
		if _, err := feed.Wait(ctx, 5*time.Second); err != nil {
			return err
		}
	}
	r.log.InfoContext(ctx, "subscriptions: this instance delivers")
	r.m.leading.Store(true)
	defer r.m.leading.Store(false)
	return r.lead(ctx, feed)
}

// lead is the runner's loop while it holds the lock.
func (r *Runner) lead(ctx context.Context, feed *store.Feed) error {
	missing, err := r.st.EnsureChangeTriggers(ctx, r.check.subscribable())
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		r.log.ErrorContext(ctx, "subscriptions: types without a table: their changes are not notified", "types", missing)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var workers sync.WaitGroup
	defer workers.Wait() // in-flight deliveries finish first
	lost := make(chan error, 1)
	var listener sync.WaitGroup
	listener.Go(func() {
		for {
			_, err := feed.Wait(lctx, r.cfg.Poll)
			if err != nil {
				if lctx.Err() == nil {
					lost <- err
				}
				cancel()
				return
			}
			r.poke() // a NOTIFY, or the poll
		}
	})
	defer listener.Wait()
	defer cancel()
	r.poke()
	soon := time.NewTimer(time.Hour)
	defer soon.Stop()
	quick := 10 * time.Millisecond
	for {
		select {
		case <-lctx.Done():
			select {
			case err := <-lost:
				return err
			default:
				return nil
			}
		case <-r.kick:
			r.dispatch(lctx, &workers)
			continue
		case <-r.wake:
		case <-soon.C:
		}
		waiting, err := r.round(lctx, &workers)
		switch {
		case err != nil && lctx.Err() == nil:
			r.log.ErrorContext(lctx, "subscriptions: round failed", "err", err)
			soon.Reset(r.cfg.Poll)
		case waiting:
			// Committed changes are held back by a transaction still
			// running; no NOTIFY will come when it ends.
			soon.Reset(quick)
			quick = min(2*quick, r.cfg.Poll)
		default:
			quick = 10 * time.Millisecond
		}
	}
}

// kickOff asks the loop to start the workers that are due.
func (r *Runner) kickOff() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// poke asks the loop for a round.
func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// round refreshes the subscriptions, matches what the feed holds and
// starts the handshakes and deliveries that are due.
func (r *Runner) round(ctx context.Context, workers *sync.WaitGroup) (waiting bool, err error) {
	if err := r.refresh(ctx); err != nil {
		return false, err
	}
	for {
		start := time.Now()
		queued := 0
		n, w, err := r.st.MatchChanges(ctx, r.cfg.Batch, func(ctx context.Context, round *store.ChangeRound) error {
			queued = 0 // a round run again starts over
			return r.match(ctx, round, &queued)
		})
		if err != nil {
			return false, err
		}
		r.m.matched.Add(float64(queued))
		waiting = w
		r.log.DebugContext(ctx, "subscriptions: matched", "changes", n, "waiting", w, "took", time.Since(start))
		if n == 0 {
			break
		}
		r.dispatch(ctx, workers) // deliver what this bite matched while the next is read
	}
	r.dispatch(ctx, workers)
	return waiting, nil
}

// refresh reloads the live subscriptions and settles those that should no
// longer be: deleted, off, past their end, or no longer understood.
func (r *Runner) refresh(ctx context.Context) error {
	r.mu.Lock()
	before := r.done
	r.mu.Unlock()
	rows, err := r.st.LiveSubscriptions(ctx)
	if err != nil {
		return err
	}
	var retire []*sub
	r.mu.Lock()
	seen := make(map[string]bool, len(rows))
	for _, row := range rows {
		seen[row.ID] = true
		s := r.subs[row.ID]
		if s == nil {
			s = &sub{}
			r.subs[row.ID] = s
		}
		if s.busy || s.finished > before {
			// Its worker writes it, or wrote it after the rows were read
			// and told the loop what it wrote: newer than the rows.
			continue
		}
		s.stale = false
		if s.spec == nil || s.row.Version != row.Version {
			s.spec = nil
			if !row.Deleted {
				s.spec = r.parse(ctx, row)
			}
		}
		s.row, s.pending = row, row.Pending
		if r.ended(s) != "" {
			retire = append(retire, s)
		}
	}
	for id, s := range r.subs {
		if !seen[id] && !s.busy {
			delete(r.subs, id)
		}
	}
	r.mu.Unlock()
	for _, s := range retire {
		r.retire(ctx, s, r.ended(s))
	}
	return nil
}

// parse reads a stored Subscription; nil when it no longer checks (a
// search parameter it uses was removed, say).
func (r *Runner) parse(ctx context.Context, row store.SubscriptionRow) *Spec {
	res, err := r.types.Parse(subscriptionType, row.Content)
	if err == nil {
		var sp *Spec
		if sp, err = r.check.Check(res); err == nil {
			return sp
		}
	}
	r.log.WarnContext(ctx, "subscriptions: stored subscription no longer checks", "subscription", row.ID, "err", err)
	return nil
}

// ended says why s should stop, or "".
func (r *Runner) ended(s *sub) string {
	switch {
	case s.row.Deleted:
		return "deleted"
	case s.spec == nil:
		return "criteria or channel no longer valid"
	case s.spec.Status == StatusOff:
		return "off"
	case !s.spec.End.IsZero() && time.Now().After(s.spec.End):
		return "end reached"
	}
	return ""
}

// retire makes s not live, turning it off unless it is deleted or off
// already; its outbox is emptied.
func (r *Runner) retire(ctx context.Context, s *sub, reason string) {
	state := s.row.State
	state.Live = false
	var res *fhir.Resource
	if !s.row.Deleted && (s.spec == nil || s.spec.Status != StatusOff) {
		status, errText := StatusOff, ""
		if s.spec == nil {
			status, errText = StatusError, reason
		}
		var err error
		if res, err = withStatus(r.types, s.row.Content, status, errText); err != nil {
			r.log.ErrorContext(ctx, "subscriptions: retire", "subscription", s.row.ID, "err", err)
			return
		}
	}
	if _, err := r.st.SaveSubscriptionState(ctx, s.row.ID, s.row.Version, state, res); err != nil {
		if !errors.Is(err, store.ErrSubscriptionChanged) {
			r.log.ErrorContext(ctx, "subscriptions: retire", "subscription", s.row.ID, "err", err)
		}
		return
	}
	r.log.InfoContext(ctx, "subscriptions: subscription stopped", "subscription", s.row.ID, "reason", reason)
	r.mu.Lock()
	delete(r.subs, s.row.ID)
	r.mu.Unlock()
}

// active reports whether a subscription receives events: handshaken,
// live, and active or failing deliveries (error after activation).
// Requested ones do not.
func active(row store.SubscriptionRow, sp *Spec) bool {
	return sp != nil && !row.Deleted && row.State.Live && row.State.Activated &&
		(sp.Status == StatusActive || sp.Status == StatusError)
}

// match is one round of the change feed: the criteria of each active
// subscription, restricted to the ids of its type changed since it was
// activated and to its grant. Which subscriptions are active is read in
// the round's transaction, which no activation can overlap. queued counts
// the versions enqueued.
func (r *Runner) match(ctx context.Context, round *store.ChangeRound, queued *int) error {
	rows, err := round.LiveSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if !row.State.Activated || row.Deleted {
			continue
		}
		sp := r.specOf(ctx, row)
		if !active(row, sp) {
			continue
		}
		for _, ch := range round.Changes {
			if ch.Type != sp.Type {
				continue
			}
			ids := ch.Since(row.State.ActiveSince)
			if len(ids) == 0 {
				continue
			}
			vs, err := round.Match(ctx, sp.Criteria, ids, row.Grant.Access)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", row.ID, err)
			}
			if len(vs) == 0 {
				continue
			}
			if err := round.Enqueue(ctx, row.ID, vs); err != nil {
				return err
			}
			*queued += len(vs)
			r.mu.Lock()
			if s := r.subs[row.ID]; s != nil {
				s.pending = true
				s.enqueued++
			}
			r.mu.Unlock()
		}
	}
	return nil
}

// specOf is the parsed content of row, from the loop's view when it has
// that version.
func (r *Runner) specOf(ctx context.Context, row store.SubscriptionRow) *Spec {
	r.mu.Lock()
	s := r.subs[row.ID]
	if s != nil && s.spec != nil && s.row.Version == row.Version {
		sp := s.spec
		r.mu.Unlock()
		return sp
	}
	r.mu.Unlock()
	return r.parse(ctx, row)
}

// dispatch starts a worker for each subscription with something due: a
// handshake, or events once its back-off has passed. At most Senders work
// at once, one per subscription.
func (r *Runner) dispatch(ctx context.Context, workers *sync.WaitGroup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := 0
	for _, s := range r.subs {
		if s.busy {
			busy++
		}
	}
	now := time.Now()
	for _, s := range r.subs {
		if busy >= r.cfg.Senders {
			return
		}
		if s.busy || s.stale || s.spec == nil || !s.row.State.Live || now.Before(s.row.State.NextAttempt) {
			continue
		}
		var job func(context.Context, store.SubscriptionRow, *Spec) outcome
		switch {
		case !s.row.State.Activated && s.spec.Status != StatusOff:
			job = r.handshake
		case active(s.row, s.spec) && s.pending:
			job = r.deliver
		default:
			continue
		}
		s.busy = true
		busy++
		row, sp, enqueued := s.row, s.spec, s.enqueued
		workers.Go(func() {
			out := job(ctx, row, sp)
			r.mu.Lock()
			r.done++
			s.busy, s.finished = false, r.done
			if out.known {
				if out.row.Version != s.row.Version {
					s.spec = r.parse(ctx, out.row) // it rewrote the status
				}
				s.row, s.stale = out.row, false
			} else {
				s.stale = true
			}
			if out.drained && s.enqueued == enqueued {
				s.pending = false
			}
			stale, again := s.stale, s.pending
			r.mu.Unlock()
			switch {
			case stale:
				r.poke()
			case again: // events came while it worked
				r.kickOff()
			}
		})
	}
}
