package subscription

import (
	"context"
	"errors"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
)

// A worker handshakes or delivers to one subscription. It works from the
// copy of the row the loop gave it, writes every outcome to the store
// (guarded by the version it is based on: a client's write meanwhile wins
// and resets the state) and hands the loop the row as it left it, or says
// that it cannot tell and the loop must read it again.

// maxErrorText caps Subscription.error.
const maxErrorText = 400

// attemptTimeout bounds one attempt with its store writes. An attempt in
// flight when the runner stops runs to its end: its outcome is recorded,
// or the event stays in the outbox.
func (r *Runner) attemptTimeout() time.Duration { return r.cfg.Timeout + 10*time.Second }

// handshake posts the subscription's handshake: active on a 2xx;
// otherwise error, tried again after back-off.
func (r *Runner) handshake(ctx context.Context, row store.SubscriptionRow, sp *Spec) outcome {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.attemptTimeout())
	defer cancel()
	n := &notification{sub: row.ID, endpoint: sp.Endpoint, header: sp.Header}
	if sp.Payload != "" {
		n.body = handshakeBundle(time.Now())
	}
	began := time.Now()
	sendErr := r.send.send(actx, n)
	r.m.sent(time.Since(began), true, sendErr)
	state := row.State
	status, errText := StatusActive, ""
	if sendErr == nil {
		state = store.SubscriptionState{Live: true, Activated: true}
	} else {
		state.Failures++
		state.NextAttempt = time.Now().Add(r.cfg.backoff(state.Failures))
		state.LastError = clip("handshake failed: " + sendErr.Error())
		status, errText = StatusError, state.LastError
	}
	var res *fhir.Resource
	if sp.Status != status || sp.Error != errText {
		var err error
		if res, err = withStatus(r.types, row.Content, status, errText); err != nil {
			r.log.ErrorContext(ctx, "subscriptions: handshake", "subscription", row.ID, "err", err)
			return outcome{row: row}
		}
	}
	out, ok := r.save(ctx, row, state, res)
	if !ok {
		return out
	}
	if sendErr != nil {
		r.log.WarnContext(ctx, "subscriptions: handshake failed", "subscription", row.ID, "endpoint", sp.Endpoint.Host,
			"failures", state.Failures, "retry_in", r.cfg.backoff(state.Failures), "err", sendErr)
		return out
	}
	r.log.InfoContext(ctx, "subscriptions: subscription active", "subscription", row.ID, "endpoint", sp.Endpoint.Host)
	// The state says activated; the snapshot the store took with it is
	// read back by the next refresh (only the rounds use it).
	return out
}

// waiting records when the oldest undelivered event of subscription id
// was matched, zero when its outbox is empty.
func (r *Runner) waiting(id string, oldest time.Time) {
	r.mu.Lock()
	if s := r.subs[id]; s != nil {
		s.oldest = oldest
	}
	r.mu.Unlock()
}

// deliver sends the subscription's outbox in order until it is empty, the
// runner stops or an attempt fails (the next waits for the back-off).
// After ErrorAfter consecutive failures the status becomes error; the next
// success makes it active again.
func (r *Runner) deliver(ctx context.Context, row store.SubscriptionRow, sp *Spec) outcome {
	status := sp.Status
	for ctx.Err() == nil {
		events, err := r.st.PendingEvents(ctx, row.ID, 100)
		if err != nil {
			r.log.ErrorContext(ctx, "subscriptions: outbox", "subscription", row.ID, "err", err)
			return r.later(row)
		}
		if len(events) == 0 {
			r.waiting(row.ID, time.Time{})
			return outcome{row: row, known: true, drained: true}
		}
		r.waiting(row.ID, events[0].Created)
		for i := range events {
			if ctx.Err() != nil {
				return outcome{row: row, known: true}
			}
			sendErr, err := r.deliverOne(ctx, row.ID, sp, &events[i])
			if err != nil {
				// The store, not the endpoint: the event stays and is
				// tried again in the next round, without back-off.
				r.log.ErrorContext(ctx, "subscriptions: delivery", "subscription", row.ID, "err", err)
				return r.later(row)
			}
			if i+1 < len(events) && sendErr == nil {
				r.waiting(row.ID, events[i+1].Created)
			}
			if sendErr != nil {
				state := row.State
				state.Failures++
				state.NextAttempt = time.Now().Add(r.cfg.backoff(state.Failures))
				state.LastError = clip(sendErr.Error())
				var res *fhir.Resource
				if state.Failures >= r.cfg.ErrorAfter && status != StatusError {
					if res, err = withStatus(r.types, row.Content, StatusError, state.LastError); err != nil {
						r.log.ErrorContext(ctx, "subscriptions: delivery", "subscription", row.ID, "err", err)
						return outcome{row: row}
					}
				}
				r.log.WarnContext(ctx, "subscriptions: delivery failed", "subscription", row.ID, "endpoint", sp.Endpoint.Host,
					"event", events[i].Number, "failures", state.Failures, "retry_in", r.cfg.backoff(state.Failures), "err", sendErr)
				out, _ := r.save(ctx, row, state, res)
				return out
			}
			if row.State.Failures == 0 && status != StatusError {
				continue
			}
			var res *fhir.Resource
			if status == StatusError {
				if res, err = withStatus(r.types, row.Content, StatusActive, ""); err != nil {
					r.log.ErrorContext(ctx, "subscriptions: delivery", "subscription", row.ID, "err", err)
					return outcome{row: row}
				}
			}
			out, ok := r.save(ctx, row, store.SubscriptionState{Live: true, Activated: true, ActiveSince: row.State.ActiveSince}, res)
			if !ok {
				return out
			}
			if res != nil {
				r.log.InfoContext(ctx, "subscriptions: subscription active again", "subscription", row.ID, "endpoint", sp.Endpoint.Host)
			}
			row, status = out.row, StatusActive
		}
	}
	return outcome{row: row, known: true}
}

// deliverOne sends one event and removes it from the outbox: sendErr is
// the endpoint's failure, err the store's.
func (r *Runner) deliverOne(ctx context.Context, id string, sp *Spec, ev *store.Event) (sendErr, err error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.attemptTimeout())
	defer cancel()
	n := &notification{sub: id, endpoint: sp.Endpoint, header: sp.Header, event: ev}
	if sp.Payload != "" {
		v := ev.Version
		st, err := r.st.VRead(actx, v.Type, v.ID, v.Version, store.Access{})
		switch {
		case errors.Is(err, fhir.ErrNotFound), errors.Is(err, fhir.ErrDeleted):
			// Nothing left to send (the version cannot be read back).
			r.log.WarnContext(ctx, "subscriptions: matched version is gone; event dropped", "subscription", id, "event", ev.Number)
			if err := r.st.EventDelivered(actx, id, ev.Number); err != nil {
				return nil, err
			}
			r.m.notifications.WithLabelValues(outcomeDropped).Inc()
			return nil, nil
		case err != nil:
			return nil, err
		}
		if n.body, err = historyBundle(r.cfg.BaseURL, ev, st); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	sendErr = r.send.send(actx, n)
	r.m.sent(time.Since(start), false, sendErr)
	if sendErr != nil {
		return sendErr, nil
	}
	r.m.delivered(ev.Created)
	r.log.DebugContext(ctx, "subscriptions: delivered", "subscription", id, "event", ev.Number,
		"since_matched", start.Sub(ev.Created), "took", time.Since(start))
	// Delivered; if this fails the event is sent again (at least once).
	return nil, r.st.EventDelivered(actx, id, ev.Number)
}

// later is the outcome of a worker the store failed: nothing changed,
// and the loop waits RetryMin before it tries again.
func (r *Runner) later(row store.SubscriptionRow) outcome {
	row.State.NextAttempt = time.Now().Add(r.cfg.RetryMin)
	return outcome{row: row, known: true}
}

// save records a worker's outcome: the row as it now is in the store
// (new version and content when res rewrote them), or not known when the
// write failed.
func (r *Runner) save(ctx context.Context, row store.SubscriptionRow, state store.SubscriptionState, res *fhir.Resource) (outcome, bool) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.attemptTimeout())
	defer cancel()
	st, err := r.st.SaveSubscriptionState(actx, row.ID, row.Version, state, res)
	if err != nil {
		r.logSave(ctx, row.ID, err)
		return outcome{row: row}, false
	}
	if st != nil {
		row.Version, row.Content = st.VersionID, st.Content
	}
	if !row.State.Activated && state.Activated {
		// The store took the activation snapshot; until a refresh reads
		// it the loop knows the state only in part.
		row.State = state
		return outcome{row: row}, true
	}
	row.State = state
	return outcome{row: row, known: true}, true
}

func (r *Runner) logSave(ctx context.Context, id string, err error) {
	if errors.Is(err, store.ErrSubscriptionChanged) {
		r.log.InfoContext(ctx, "subscriptions: subscription changed by its client; starting over", "subscription", id)
		return
	}
	r.log.ErrorContext(ctx, "subscriptions: save state", "subscription", id, "err", err)
}

func clip(s string) string {
	if len(s) > maxErrorText {
		return s[:maxErrorText] + "…"
	}
	return s
}
