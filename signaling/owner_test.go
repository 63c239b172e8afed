package signaling

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/db/dbtest"
)

func newOwners(t *testing.T, db OwnerDB, instance string, lease time.Duration) *Owners {
	t.Helper()
	o, err := NewOwners(db, OwnerConfig{
		Instance: instance, BaseURL: "https://" + instance + ".example", Lease: lease, Hold: lease, Timeout: 5 * time.Second,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// running runs o until the test ends or the returned stop is called.
func running(t *testing.T, o *Owners) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("owners: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func mustClaim(t *testing.T, o *Owners, id string) Owner {
	t.Helper()
	own, err := o.Claim(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return own
}

func TestAVisitBelongsToTheInstanceThatClaimedItUntilItsLeaseRunsOut(t *testing.T) {
	const lease = 1500 * time.Millisecond
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	a, b := newOwners(t, pool, "a", lease), newOwners(t, pool, "b", lease)

	t.Run("the first claim wins; the other instance learns who and where", func(t *testing.T) {
		if own := mustClaim(t, a, "v1"); !own.Self || own.Instance != "a" {
			t.Fatalf("a's first claim: %+v", own)
		}
		if own := mustClaim(t, b, "v1"); own.Self || own.Instance != "a" || own.BaseURL != "https://a.example" {
			t.Fatalf("b's claim of a's visit: %+v", own)
		}
		if own := mustClaim(t, a, "v1"); !own.Self {
			t.Fatalf("a claiming its own visit again: %+v", own)
		}
	})

	t.Run("a room keeps the claim past its lease", func(t *testing.T) {
		stop := running(t, a)
		a.Hold("v1")
		time.Sleep(2 * lease)
		if own := mustClaim(t, b, "v1"); own.Self {
			t.Fatal("b took a visit whose room lives on a")
		}
		a.Release("v1")
		stop() // a stops: its visits are free at once
		if own := mustClaim(t, b, "v1"); !own.Self {
			t.Fatalf("after a stopped, b's claim: %+v", own)
		}
	})

	t.Run("a dead instance's claim lapses with its lease", func(t *testing.T) {
		mustClaim(t, a, "v2") // a never renews: as if killed
		waitFor(t, "b taking over v2 once a's lease ran out", func() bool {
			own := mustClaim(t, b, "v2")
			if !own.Self && own.Instance != "a" {
				t.Fatalf("b's claim: %+v", own)
			}
			return own.Self
		})
	})

	t.Run("a claim without a room is let go once its join token could be used no more", func(t *testing.T) {
		c := newOwners(t, pool, "c", lease)
		mustClaim(t, c, "v3")
		running(t, c)
		waitFor(t, "c letting go of v3", func() bool { return c.Held() == 0 })
		// Deleted, not merely expired: no lease to wait for.
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM visit_owner WHERE appointment_id = 'v3'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d rows of the lapsed claim", n)
		}
	})
}

// elsewhere is a Pinning whose visits all belong to another instance.
type elsewhere struct{}

func (elsewhere) Claim(context.Context, string) (Owner, error) {
	return Owner{Instance: "other", BaseURL: "https://other.example"}, nil
}

func (elsewhere) Lookup(context.Context, string) (Owner, bool, error) {
	return Owner{Instance: "other", BaseURL: "https://other.example"}, true, nil
}
func (elsewhere) Hold(string)    {}
func (elsewhere) Release(string) {}

func TestAJoinTokenForAVisitServedElsewhereNamesTheOwner(t *testing.T) {
	t.Run("with the key the instances share, the grant names the owner's address", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.TokenKey = make([]byte, 32) })
		f.appointment(t, "a1", "booked", "p1", "c1")
		f.v.pin = elsewhere{}
		g, err := f.v.Issue(context.Background(), patientActor("p1"), "a1")
		if err != nil {
			t.Fatal(err)
		}
		if g.BaseURL != "https://other.example" {
			t.Fatalf("grant's BaseURL %q", g.BaseURL)
		}
	})
	t.Run("with a random key of its own, the instance refuses and says why", func(t *testing.T) {
		f := newFixture(t, nil)
		f.appointment(t, "a1", "booked", "p1", "c1")
		f.v.pin = elsewhere{}
		_, err := f.v.Issue(context.Background(), patientActor("p1"), "a1")
		if !errors.Is(err, ErrKeyNotShared) {
			t.Fatalf("got %v, want ErrKeyNotShared", err)
		}
	})
}

func TestAPractitionersCallOnAVisitServedElsewhereNamesTheOwner(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TokenKey = make([]byte, 32) })
	f.appointment(t, "a1", "booked", "p1", "c1")
	f.v.pin = elsewhere{}
	ctx, c1 := context.Background(), clinicianActor("c1")
	calls := map[string]func(Actor) error{
		"state":  func(who Actor) error { _, err := f.v.State(ctx, who, "a1"); return err },
		"admit":  func(who Actor) error { return f.v.Admit(ctx, who, "a1", "Patient/p1") },
		"remove": func(who Actor) error { return f.v.Remove(ctx, who, "a1", "Patient/p1") },
		"end":    func(who Actor) error { return f.v.End(ctx, who, "a1") },
	}
	for name, call := range calls {
		t.Run(name+" by its practitioner is sent to the owner", func(t *testing.T) {
			var away *ElsewhereError
			if err := call(c1); !errors.As(err, &away) || away.BaseURL != "https://other.example" || away.Instance != "other" {
				t.Fatalf("got %v, want *ElsewhereError naming https://other.example", err)
			}
		})
		t.Run(name+" by anyone else is refused here, owner unnamed", func(t *testing.T) {
			if err := call(patientActor("p1")); !errors.Is(err, ErrNotPractitioner) && !errors.Is(err, ErrNotParticipant) {
				t.Fatalf("got %v, want a refusal", err)
			}
		})
	}
}

// TestACallSentToTheOwnerIsAuditedThereNotHere: the instance that
// redirects a practitioner's call records nothing (the owner records the
// step it takes); a call it refuses itself is recorded.
func TestACallSentToTheOwnerIsAuditedThereNotHere(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.TokenKey = make([]byte, 32) })
	f.appointment(t, "a1", "booked", "p1", "c1")
	f.v.pin = elsewhere{}
	ctx, c1 := context.Background(), clinicianActor("c1")
	_, errState := f.v.State(ctx, c1, "a1")
	for i, err := range []error{
		errState, f.v.Admit(ctx, c1, "a1", "Patient/p1"), f.v.Remove(ctx, c1, "a1", "Patient/p1"), f.v.End(ctx, c1, "a1"),
	} {
		var away *ElsewhereError
		if !errors.As(err, &away) {
			t.Fatalf("call %d: got %v, want *ElsewhereError", i, err)
		}
	}
	if err := f.v.End(ctx, patientActor("p1"), "a1"); !errors.Is(err, ErrNotPractitioner) {
		t.Fatalf("the patient's end: got %v, want ErrNotPractitioner", err)
	}
	// The audit writer keeps the order of its events: once the refusal is
	// in the trail, any event recorded before it is too.
	f.waitAudit(t, "a1", "leave")
	q, err := f.v.params.Parse("AuditEvent", url.Values{"entity": {"Appointment/a1"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	page, err := f.st.Search(ctx, q, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 {
		t.Fatalf("%d audit events about the visit, want only the patient's refused end", len(page.Entries))
	}
}

func TestLookupNamesTheOwnerWithoutClaiming(t *testing.T) {
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	a, b := newOwners(t, pool, "a", time.Minute), newOwners(t, pool, "b", time.Minute)
	ctx := context.Background()
	if _, ok, err := b.Lookup(ctx, "v1"); ok || err != nil {
		t.Fatalf("a visit nobody claimed has an owner (%v, %v)", ok, err)
	}
	if _, ok, _ := b.Lookup(ctx, "v1"); ok {
		t.Fatal("looking claimed the visit")
	}
	mustClaim(t, a, "v1")
	if own, ok, err := b.Lookup(ctx, "v1"); !ok || err != nil || own.Self || own.Instance != "a" || own.BaseURL != "https://a.example" {
		t.Fatalf("b's lookup of a's visit: %+v %v %v", own, ok, err)
	}
	if own, ok, _ := a.Lookup(ctx, "v1"); !ok || !own.Self {
		t.Fatalf("a's lookup of its own visit: %+v %v", own, ok)
	}
}
