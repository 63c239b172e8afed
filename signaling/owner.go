package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A visit's room lives in the memory of one instance, so every join of a
// visit must reach the same process. Owners pins each visit to one
// instance through the visit_owner table (migration 00013): the first
// instance asked for a join token of an appointment, or to open its room,
// claims it (INSERT ... ON CONFLICT, taking over a lease that has
// expired) and renews the lease while the room lives or a join token it
// handed out may still be used. Another instance asked for a join token
// answers with the owner's base URL (the websocket URL of the grant), the
// token signed with the key the instances share; asked to open the room
// over a websocket, it refuses with "elsewhere". An instance that stops
// deletes its rows, so its visits move to whichever instance is asked
// next; one that dies holds them until the lease runs out. The
// practitioners' calls on a visit (its state, admit, remove, end) reaching
// an instance without its room, while another owns it, fail with
// *ElsewhereError naming the owner, which the HTTP edge turns into a
// redirect there.

// Owner is the instance that serves a visit.
type Owner struct {
	// Instance is its VIDDA_INSTANCE_ID.
	Instance string
	// BaseURL is its own public base URL (http or https): clients open
	// the visit's websocket there.
	BaseURL string
	// Self: the owner is this instance.
	Self bool
}

// Pinning pins each visit to one instance; *Owners is one. Deps.Pinning
// nil: every instance serves every visit it is asked for (one instance,
// or a load balancer that pins by ?visit=).
type Pinning interface {
	// Claim makes this instance the owner of the visit unless another
	// instance holds a live lease on it, and returns the owner. A claim
	// that succeeds is kept for a while without a room (the join token
	// handed out with it may still be used).
	Claim(ctx context.Context, appointmentID string) (Owner, error)
	// Lookup returns the instance holding a live lease on the visit,
	// without claiming it; false when none does.
	Lookup(ctx context.Context, appointmentID string) (Owner, bool, error)
	// Hold keeps the claim while the visit's room lives here.
	Hold(appointmentID string)
	// Release: the room is gone; the claim lapses.
	Release(appointmentID string)
}

// ErrKeyNotShared: another instance serves the visit, and this one signs
// join tokens with a key of its own, which the owner cannot check.
var ErrKeyNotShared = errors.New("instances must share VIDDA_VIDEO_TOKEN_KEY")

// OwnerDB is what Owners needs of PostgreSQL; *pgxpool.Pool is one.
type OwnerDB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// OwnerConfig says who this instance is and how long its claims last.
type OwnerConfig struct {
	// Instance is this instance's stable id (VIDDA_INSTANCE_ID).
	Instance string
	// BaseURL is this instance's own public base URL, where a client
	// sent by another instance reaches it.
	BaseURL string
	// Lease is how long a claim lasts unless renewed (every Lease/3): the
	// time a dead instance's visits wait before another may take them.
	Lease time.Duration
	// Hold is how long a claim is kept without a room: the life of the
	// join token handed out with it (Config.TokenTTL).
	Hold time.Duration
	// Timeout bounds each statement.
	Timeout time.Duration
}

// DefaultLease is OwnerConfig.Lease unless told otherwise.
const DefaultLease = 15 * time.Second

// Validate reports settings that cannot work.
func (c OwnerConfig) Validate() error {
	var errs []error
	if c.Instance == "" {
		errs = append(errs, errors.New("signaling: owner Instance is required"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("signaling: owner BaseURL must be an http or https URL (got %q)", c.BaseURL))
	}
	if c.Lease < 300*time.Millisecond {
		errs = append(errs, fmt.Errorf("signaling: owner Lease must be at least 300ms (got %s)", c.Lease))
	}
	if c.Hold <= 0 || c.Timeout <= 0 {
		errs = append(errs, errors.New("signaling: owner Hold and Timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Owners claims, renews and releases this instance's visits.
type Owners struct {
	db  OwnerDB
	cfg OwnerConfig
	log *slog.Logger

	mu   sync.Mutex
	held map[string]*claim
}

// claim is one visit this instance owns.
type claim struct {
	room  bool      // the visit's room is open here (Visits holds one room per visit)
	until time.Time // keep the claim without a room until then
}

// NewOwners returns the pinning of this instance's visits over db. Run
// renews the leases.
func NewOwners(db OwnerDB, cfg OwnerConfig, log *slog.Logger) (*Owners, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Owners{db: db, cfg: cfg, log: log, held: map[string]*claim{}}, nil
}

const claimSQL = `
INSERT INTO visit_owner AS o (appointment_id, instance_id, base_url, lease_until)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
ON CONFLICT (appointment_id) DO UPDATE
    SET instance_id = excluded.instance_id, base_url = excluded.base_url, lease_until = excluded.lease_until,
        claimed_at = CASE WHEN o.instance_id = excluded.instance_id THEN o.claimed_at ELSE now() END
    WHERE o.instance_id = excluded.instance_id OR o.lease_until < now()`

// Claim implements Pinning.
func (o *Owners) Claim(ctx context.Context, appointmentID string) (Owner, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	// A row deleted between the insert and the read (its owner stopped)
	// is claimed on the next attempt.
	for range 3 {
		tag, err := o.db.Exec(ctx, claimSQL, appointmentID, o.cfg.Instance, o.cfg.BaseURL, o.cfg.Lease.Seconds())
		if err != nil {
			return Owner{}, fmt.Errorf("claim visit %s: %w", appointmentID, err)
		}
		if tag.RowsAffected() == 1 {
			o.mu.Lock()
			c := o.held[appointmentID]
			if c == nil {
				c = &claim{}
				o.held[appointmentID] = c
			}
			if until := time.Now().Add(o.cfg.Hold); until.After(c.until) {
				c.until = until
			}
			o.mu.Unlock()
			return Owner{Instance: o.cfg.Instance, BaseURL: o.cfg.BaseURL, Self: true}, nil
		}
		// No row written: another instance holds a live lease. On success
		// the row holds this instance's own id and address, so nothing is
		// read back; here the owner is, unless its lease ran out since.
		own, ok, err := o.Lookup(ctx, appointmentID)
		if err != nil {
			return Owner{}, err
		}
		if ok {
			return own, nil
		}
	}
	return Owner{}, fmt.Errorf("claim visit %s: its owner keeps changing", appointmentID)
}

// Lookup implements Pinning.
func (o *Owners) Lookup(ctx context.Context, appointmentID string) (Owner, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	var own Owner
	err := o.db.QueryRow(ctx, `SELECT instance_id, base_url FROM visit_owner WHERE appointment_id = $1 AND lease_until > now()`, appointmentID).
		Scan(&own.Instance, &own.BaseURL)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Owner{}, false, nil
	case err != nil:
		return Owner{}, false, fmt.Errorf("owner of visit %s: %w", appointmentID, err)
	}
	own.Self = own.Instance == o.cfg.Instance
	return own, true, nil
}

// Hold implements Pinning.
func (o *Owners) Hold(appointmentID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.held[appointmentID]
	if c == nil {
		c = &claim{}
		o.held[appointmentID] = c
	}
	c.room = true
}

// Release implements Pinning.
func (o *Owners) Release(appointmentID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.held[appointmentID]; c != nil {
		c.room = false
	}
}

// Held is how many visits this instance owns.
func (o *Owners) Held() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.held)
}

// Run renews the leases of the visits held every Lease/3 and lets go of
// the claims that lapsed, until ctx ends; then it deletes every claim of
// this instance, so its visits move at once.
func (o *Owners) Run(ctx context.Context) error {
	tick := time.NewTicker(o.cfg.Lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return o.releaseAll(context.WithoutCancel(ctx))
		case <-tick.C:
			o.renew(ctx)
		}
	}
}

// renew extends the leases of the visits held and deletes the lapsed
// claims. A failure is logged: the next tick tries again, and a lease
// that runs out meanwhile lets another instance take the visit.
func (o *Owners) renew(ctx context.Context) {
	now := time.Now()
	var keep, lapsed []string
	o.mu.Lock()
	for id, c := range o.held {
		if c.room || now.Before(c.until) {
			keep = append(keep, id)
		} else {
			lapsed = append(lapsed, id)
			delete(o.held, id)
		}
	}
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	if len(lapsed) > 0 {
		if _, err := o.db.Exec(ctx, `DELETE FROM visit_owner WHERE instance_id = $1 AND appointment_id = ANY($2)`, o.cfg.Instance, lapsed); err != nil {
			o.log.WarnContext(ctx, "signaling: release lapsed visit claims", "visits", len(lapsed), "err", err)
		}
	}
	if len(keep) == 0 {
		return
	}
	rows, err := o.db.Query(ctx, `UPDATE visit_owner SET lease_until = now() + make_interval(secs => $3)
		WHERE instance_id = $1 AND appointment_id = ANY($2) RETURNING appointment_id`, o.cfg.Instance, keep, o.cfg.Lease.Seconds())
	if err != nil {
		o.log.WarnContext(ctx, "signaling: renew visit leases", "visits", len(keep), "err", err)
		return
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		o.log.WarnContext(ctx, "signaling: renew visit leases", "visits", len(keep), "err", err)
		return
	}
	if len(renewed) == len(keep) {
		return
	}
	// A claim lost while held: the lease ran out (the database was out of
	// reach) and another instance took the visit, or the row went away.
	// Claim again; if someone else owns it now, new joins go there.
	for _, id := range keep {
		if slices.Contains(renewed, id) {
			continue
		}
		own, err := o.Claim(ctx, id)
		switch {
		case err != nil:
			o.log.WarnContext(ctx, "signaling: reclaim visit", "appointment", id, "err", err)
		case !own.Self:
			o.log.WarnContext(ctx, "signaling: visit taken over by another instance", "appointment", id, "owner", own.Instance)
			o.mu.Lock()
			delete(o.held, id)
			o.mu.Unlock()
		}
	}
}

// releaseAll deletes every claim of this instance; it always returns nil.
func (o *Owners) releaseAll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	o.mu.Lock()
	o.held = map[string]*claim{}
	o.mu.Unlock()
	if _, err := o.db.Exec(ctx, `DELETE FROM visit_owner WHERE instance_id = $1`, o.cfg.Instance); err != nil {
		// Not a failed stop: the leases run out by themselves.
		o.log.WarnContext(ctx, "signaling: release visit claims", "err", err)
	}
	return nil
}
