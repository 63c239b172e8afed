package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/fhir"
)

// Subscriptions (fhir/subscription) are resources like any other, plus a
// row of subscription_state beside each (migration 00010): whose
// authority it runs under, its handshake, its delivery failures. The
// writes here keep both in one transaction. The store knows nothing of
// what a Subscription means; the subscription package decides and passes
// resources and states down.

// subscriptionType is the resource type these methods write.
const subscriptionType = "Subscription"

// SubscriptionGrant is whose authority a Subscription runs under: what the
// client that wrote it may see of the type its criteria search. Matches are
// searched with Access, so a notification never carries what its creator
// could not have read.
type SubscriptionGrant struct {
	// ResourceType is the type the criteria search.
	ResourceType string
	// Access is the writer's restriction on ResourceType.
	Access Access
	// By is the subject of the principal that wrote this version.
	By string
}

// SubscriptionState is the delivery state of one Subscription.
type SubscriptionState struct {
	// Live is false once the subscription is off or deleted: its type's
	// changes are no longer recorded for it and its outbox is emptied.
	Live bool
	// Activated: the handshake of the current version succeeded.
	Activated bool
	// ActiveSince is the snapshot the store took when it recorded the
	// activation (read only): changes committed before it are not
	// notified (see Change.Since).
	ActiveSince string
	// Failures counts consecutive failed handshakes or deliveries.
	Failures int
	// NextAttempt is when back-off allows the next attempt; zero: now.
	NextAttempt time.Time
	// LastError describes the last failure.
	LastError string
}

// SubscriptionRow is a live Subscription with its grant and state.
type SubscriptionRow struct {
	ID      string
	Version int64
	// Deleted: the resource was deleted (Content is then nil).
	Deleted bool
	Content []byte
	Grant   SubscriptionGrant
	State   SubscriptionState
	// Pending: notifications wait in its outbox.
	Pending bool
}

// CreateSubscription stores res, a Subscription the subscription package
// has checked, under a new id, with its grant and a fresh state (not
// activated, no failures).
func (s *Store) CreateSubscription(ctx context.Context, res *fhir.Resource, g SubscriptionGrant, live bool, a Access) (st *Stored, err error) {
	def, err := s.definition(subscriptionType)
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, "create Subscription", func(tx pgx.Tx) error {
		if err := lockFeed(ctx, tx); err != nil {
			return err
		}
		r, err := s.createRow(ctx, tx, def, res, id, now(), a)
		if err != nil {
			return err
		}
		if err := insertRows(ctx, tx, def, []*row{r}); err != nil {
			return err
		}
		st = r.stored(subscriptionType)
		return resetSubscription(ctx, tx, id, g, live)
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// UpdateSubscription is Update for a Subscription the subscription package
// has checked: the new version gets the writer's grant and a fresh state,
// so it is handshaken again.
func (s *Store) UpdateSubscription(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, g SubscriptionGrant, live bool, a Access) (st *Stored, created bool, err error) {
	def, err := s.definition(subscriptionType)
	if err != nil {
		return nil, false, err
	}
	err = s.inTx(ctx, "update Subscription/"+id, func(tx pgx.Tx) error {
		if err := lockFeed(ctx, tx); err != nil {
			return err
		}
		if st, created, err = s.updateIn(ctx, tx, def, res, id, ifMatch, now(), a); err != nil {
			return err
		}
		return resetSubscription(ctx, tx, id, g, live)
	})
	if err != nil {
		return nil, false, err
	}
	return st, created, nil
}

// lockFeed waits for the matching round in progress, if any, and keeps
// the next from starting until tx ends: a subscription's state changes
// between rounds, so a round sees it active for every change it takes or
// for none (see Change.Since). It is always the first lock a
// subscription write takes, so writes and rounds cannot deadlock.
func lockFeed(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT 1 FROM subscription_cursor FOR UPDATE"); err != nil {
		return fmt.Errorf("subscriptions: lock the feed: %w", translate(err))
	}
	return nil
}

// resetSubscription writes the grant and a fresh state of id, empties its
// outbox when it is no longer live, and wakes the runner.
func resetSubscription(ctx context.Context, tx pgx.Tx, id string, g SubscriptionGrant, live bool) error {
	_, err := tx.Exec(ctx, `INSERT INTO subscription_state (id, resource_type, live, grant_patient, grant_care_of, granted_by)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6)
		ON CONFLICT (id) DO UPDATE SET resource_type = excluded.resource_type, live = excluded.live,
			grant_patient = excluded.grant_patient, grant_care_of = excluded.grant_care_of, granted_by = excluded.granted_by,
			activated = false, active_since = NULL, failures = 0, next_attempt = NULL, last_error = NULL`,
		id, g.ResourceType, live, g.Access.PatientID, g.Access.CareOf, g.By)
	if err != nil {
		return fmt.Errorf("subscription %s: state: %w", id, translate(err))
	}
	if !live {
		if _, err := tx.Exec(ctx, "DELETE FROM subscription_event WHERE subscription_id = $1", id); err != nil {
			return fmt.Errorf("subscription %s: outbox: %w", id, translate(err))
		}
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify('vidda_changes', 'Subscription')"); err != nil {
		return fmt.Errorf("subscription %s: notify: %w", id, translate(err))
	}
	return nil
}

// ErrSubscriptionChanged means a client wrote the Subscription since the
// version a state change was based on; that write reset the state.
var ErrSubscriptionChanged = errors.New("subscription changed meanwhile")

// SaveSubscriptionState records the runner's state of Subscription id,
// provided its current version is still version. With res, the resource
// is rewritten as a new version as well (the server's status and error);
// res is then a Subscription with Raw holding the whole new content.
func (s *Store) SaveSubscriptionState(ctx context.Context, id string, version int64, state SubscriptionState, res *fhir.Resource) (st *Stored, err error) {
	def, err := s.definition(subscriptionType)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, "subscription "+id+": state", func(tx pgx.Tx) error {
		if err := lockFeed(ctx, tx); err != nil {
			return err
		}
		cur, err := lockCurrent(ctx, tx, subscriptionType, id)
		switch {
		case errors.Is(err, fhir.ErrNotFound):
			return fmt.Errorf("subscription %s: %w", id, ErrSubscriptionChanged)
		case err != nil:
			return fmt.Errorf("subscription %s: %w", id, err)
		case cur.version != version:
			return fmt.Errorf("subscription %s: version %d is current, not %d: %w", id, cur.version, version, ErrSubscriptionChanged)
		}
		if res != nil && !cur.deleted {
			if st, _, err = s.updateIn(ctx, tx, def, res, id, version, now(), Access{}); err != nil {
				return err
			}
		}
		var next *time.Time
		if !state.NextAttempt.IsZero() {
			next = &state.NextAttempt
		}
		_, err = tx.Exec(ctx, `UPDATE subscription_state SET live = $2, activated = $3,
				active_since = CASE WHEN $3 THEN coalesce(active_since, pg_current_snapshot()) END,
				failures = $4, next_attempt = $5, last_error = nullif($6, '')
			WHERE id = $1`, id, state.Live, state.Activated, state.Failures, next, state.LastError)
		if err != nil {
			return fmt.Errorf("subscription %s: state: %w", id, translate(err))
		}
		if !state.Live {
			if _, err := tx.Exec(ctx, "DELETE FROM subscription_event WHERE subscription_id = $1", id); err != nil {
				return fmt.Errorf("subscription %s: outbox: %w", id, translate(err))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// LiveSubscriptions lists the subscriptions that are not off, with their
// grants, states and whether events wait. A deleted one is listed
// (Deleted) until its state is saved as not live.
func (s *Store) LiveSubscriptions(ctx context.Context) ([]SubscriptionRow, error) {
	return liveSubscriptions(ctx, s.pool)
}

// LiveSubscriptions is Store.LiveSubscriptions as the round sees them: no
// subscription changes state while a round runs.
func (r *ChangeRound) LiveSubscriptions(ctx context.Context) ([]SubscriptionRow, error) {
	return liveSubscriptions(ctx, r.tx)
}

func liveSubscriptions(ctx context.Context, db querier) ([]SubscriptionRow, error) {
	rows, err := db.Query(ctx, `SELECT r.id, r.version_id, r.deleted, r.content, st.resource_type,
			coalesce(st.grant_patient, ''), coalesce(st.grant_care_of, ''), st.granted_by,
			st.live, st.activated, coalesce(st.active_since::text, ''), st.failures, st.next_attempt, coalesce(st.last_error, ''),
			EXISTS (SELECT 1 FROM subscription_event e WHERE e.subscription_id = st.id)
		FROM subscription_state st JOIN subscription r ON r.id = st.id
		WHERE st.live ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", translate(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SubscriptionRow, error) {
		var sr SubscriptionRow
		var next *time.Time
		err := r.Scan(&sr.ID, &sr.Version, &sr.Deleted, &sr.Content, &sr.Grant.ResourceType,
			&sr.Grant.Access.PatientID, &sr.Grant.Access.CareOf, &sr.Grant.By,
			&sr.State.Live, &sr.State.Activated, &sr.State.ActiveSince, &sr.State.Failures, &next, &sr.State.LastError, &sr.Pending)
		if next != nil {
			sr.State.NextAttempt = *next
		}
		return sr, err
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", translate(err))
	}
	return out, nil
}
