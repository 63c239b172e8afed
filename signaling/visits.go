package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
)

// Records is what visits need of the FHIR store: Appointments are read,
// Encounters created and updated, Appointments set fulfilled. The visit
// layer checks who may do what itself and writes as the server (an empty
// store.Access). *store.Store is one.
type Records interface {
	Read(ctx context.Context, typ, id string, a store.Access) (*store.Stored, error)
	Create(ctx context.Context, res *fhir.Resource, a store.Access) (*store.Stored, error)
	Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, a store.Access) (*store.Stored, bool, error)
}

// Searcher finds an Encounter left in progress; *store.Store is one.
type Searcher interface {
	Search(ctx context.Context, q *search.Query, a store.Access) (*store.Page, error)
}

// AuditRecorder takes one audit.Event per step of a visit; *audit.Writer
// is one. Record must not wait for the database.
type AuditRecorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Deps are what the visit layer works with.
type Deps struct {
	Store Records
	// Search and Params find an Encounter a previous run left in
	// progress, so a room re-created after a restart continues it; nil:
	// every room starts a new Encounter.
	Search Searcher
	Params *search.Registry
	// Types validates the Encounters and Appointments written.
	Types *fhir.Registry
	Media Media
	// ICE hands out ICE servers (TURN credentials); nil: none.
	ICE ICEServers
	// Audit records joins, admissions, leaves, removals and ends; nil:
	// no audit trail.
	Audit AuditRecorder
	// Pinning pins each visit to one instance (owner.go); nil: this
	// instance serves every visit it is asked for.
	Pinning Pinning
}

// Actor is who asks, at the HTTP edge.
type Actor struct {
	Principal *auth.Principal
	// Address is the client's network address.
	Address string
	// RequestID is the request's X-Request-Id.
	RequestID string
}

// Grant is a join token and what the client needs with it.
type Grant struct {
	Token     string
	ExpiresAt time.Time
	// Participant is the reference the bearer joins as, Kind its kind.
	Participant string
	Kind        string
	ICEServers  []ICEServer
	// BaseURL is the public base URL of the instance that serves the
	// visit when it is another one (its websocket is there); empty: this
	// instance.
	BaseURL string
}

// Visits runs the video visits of one instance: a room per Appointment,
// in memory (rooms are pinned to one instance by appointment id).
type Visits struct {
	store  Records
	search Searcher
	params *search.Registry
	types  *fhir.Registry
	media  Media
	ice    ICEServers
	audit  AuditRecorder
	pin    Pinning
	cfg    Config
	log    *slog.Logger
	tokens *tokens

	// ctx is the lifetime of background work (timers, the writes of an
	// ending visit); cancelled when Run returns.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts sessions, their writers and running timers.
	wg sync.WaitGroup

	mu      sync.Mutex
	rooms   map[string]*room
	stopped bool
}

// NewVisits returns the visit layer over d. Start Run before serving.
func NewVisits(d Deps, cfg Config, log *slog.Logger) (*Visits, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.Types == nil || d.Media == nil {
		return nil, errors.New("signaling: Store, Types and Media are required")
	}
	t, err := newTokens(cfg.TokenKey, cfg.TokenTTL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Visits{
		store: d.Store, search: d.Search, params: d.Params, types: d.Types, media: d.Media, ice: d.ICE, audit: d.Audit, pin: d.Pinning,
		cfg: cfg, log: log, tokens: t, ctx: ctx, cancel: cancel, rooms: map[string]*room{},
	}, nil
}

// MaxMessage is the largest message a client may send; the HTTP edge sets
// its websocket read limit from it.
func (v *Visits) MaxMessage() int { return v.cfg.MaxMessage }

// Run serves until ctx ends, then closes every connection ("going away":
// clients reconnect, to this instance when it comes back or to the one
// the room moves to) and every media peer, and waits for them. It does
// not end the visits: an Encounter in progress stays so, and the room
// re-created on the next join continues it.
func (v *Visits) Run(ctx context.Context) error {
	<-ctx.Done()
	v.mu.Lock()
	v.stopped = true
	rooms := make([]*room, 0, len(v.rooms))
	for _, r := range v.rooms {
		rooms = append(rooms, r)
	}
	v.rooms = map[string]*room{}
	v.mu.Unlock()
	for _, r := range rooms {
		r.shutdown()
	}
	v.cancel()
	v.wg.Wait()
	return nil
}

// Issue hands the caller a join token for the visit of appointment id:
// only a participant of the Appointment (ErrNotParticipant otherwise) of
// a status that allows a visit (ErrNotJoinable).
func (v *Visits) Issue(ctx context.Context, who Actor, appointmentID string) (*Grant, error) {
	appt, err := v.loadAppointment(ctx, appointmentID)
	if err != nil {
		v.record(ctx, who, audit.KindVideoJoin, appointmentID, "", "join token", err)
		return nil, err
	}
	ref, kind, err := appt.member(who.Principal)
	if err == nil && !joinable(appt.status) {
		err = fmt.Errorf("appointment %s is %s: %w", appointmentID, appt.status, ErrNotJoinable)
	}
	if err != nil {
		v.record(ctx, who, audit.KindVideoJoin, appointmentID, appt.patient, "join token", err)
		return nil, err
	}
	owner, err := v.owner(ctx, appointmentID)
	if err != nil {
		v.record(ctx, who, audit.KindVideoJoin, appointmentID, appt.patient, "join token", err)
		return nil, err
	}
	now := time.Now()
	p := who.Principal
	tok, exp, err := v.tokens.issue(joinClaims{
		Appointment: appointmentID, Participant: ref, Kind: kind,
		Subject: p.Subject, Role: string(p.Role), TokenID: p.TokenID,
	}, now)
	if err != nil {
		return nil, err
	}
	g := &Grant{Token: tok, ExpiresAt: exp, Participant: ref, Kind: kind}
	if !owner.Self {
		g.BaseURL = owner.BaseURL
	}
	if v.ice != nil {
		g.ICEServers = v.ice.ICEServers(ref, now)
	}
	v.record(ctx, who, audit.KindVideoJoin, appointmentID, appt.patient, "join token", nil)
	return g, nil
}

// practitionerOfVisit loads the appointment, checks that who is one of
// its practitioners and that the visit is this instance's to serve
// (*ElsewhereError naming the owner otherwise). The appointment is
// returned with most errors, for the audit event's patient.
func (v *Visits) practitionerOfVisit(ctx context.Context, who Actor, appointmentID string) (*appointment, string, error) {
	appt, err := v.loadAppointment(ctx, appointmentID)
	if err != nil {
		return nil, "", err
	}
	ref, kind, err := appt.member(who.Principal)
	if err != nil {
		return appt, "", err
	}
	if kind != KindPractitioner {
		return appt, "", fmt.Errorf("appointment %s: %w", appointmentID, ErrNotPractitioner)
	}
	if err := v.elsewhere(ctx, appointmentID); err != nil {
		return appt, "", err
	}
	return appt, ref, nil
}

// State is the visit of appointment id as its practitioners see it: who
// is admitted, who waits.
func (v *Visits) State(ctx context.Context, who Actor, appointmentID string) (*VisitState, error) {
	appt, _, err := v.practitionerOfVisit(ctx, who, appointmentID)
	v.record(ctx, who, audit.KindRead, appointmentID, patientOf(appt), "video visit state", err)
	if err != nil {
		return nil, err
	}
	if r := v.existing(appointmentID); r != nil {
		if st := r.state(); st != nil {
			return st, nil
		}
	}
	return &VisitState{
		VisitInfo:    VisitInfo{Appointment: appointmentID, Status: "idle"},
		Participants: []ParticipantInfo{}, Waiting: []ParticipantInfo{},
	}, nil
}

// Admit lets participant in from the waiting room (practitioners only).
func (v *Visits) Admit(ctx context.Context, who Actor, appointmentID, participant string) error {
	appt, ref, err := v.practitionerOfVisit(ctx, who, appointmentID)
	if err == nil {
		err = v.inRoom(appointmentID, func(r *room) error { return r.admit(ref, participant) })
	}
	v.record(ctx, who, audit.KindVideoAdmit, appointmentID, patientOf(appt), "admitted "+participant, err)
	return err
}

// Remove sends participant out of the visit (practitioners only).
func (v *Visits) Remove(ctx context.Context, who Actor, appointmentID, participant string) error {
	appt, ref, err := v.practitionerOfVisit(ctx, who, appointmentID)
	if err == nil {
		err = v.inRoom(appointmentID, func(r *room) error { return r.remove(ref, participant) })
	}
	v.record(ctx, who, audit.KindVideoLeave, appointmentID, patientOf(appt), "removed "+participant, err)
	return err
}

// End ends the visit for everyone (practitioners only): the Encounter is
// finished and the Appointment fulfilled. With no room on this instance
// it still finishes an Encounter left in progress, unless another
// instance serves the visit (*ElsewhereError: its room ends there).
func (v *Visits) End(ctx context.Context, who Actor, appointmentID string) error {
	appt, ref, err := v.practitionerOfVisit(ctx, who, appointmentID)
	if err == nil {
		if r := v.existing(appointmentID); r != nil {
			err = r.end(ctx, "ended by "+ref)
		} else {
			err = v.endWithoutRoom(ctx, appt)
		}
	}
	v.record(ctx, who, audit.KindVideoLeave, appointmentID, patientOf(appt), "ended the visit", err)
	return err
}

// elsewhere is an *ElsewhereError when the visit of id has no room here
// and another instance owns it; nil when it is this instance's to serve
// (its room is here, it owns it, or nobody does).
func (v *Visits) elsewhere(ctx context.Context, id string) error {
	if v.pin == nil || v.existing(id) != nil {
		return nil
	}
	own, ok, err := v.pin.Lookup(ctx, id)
	if err != nil || !ok || own.Self {
		return err
	}
	return &ElsewhereError{Instance: own.Instance, BaseURL: own.BaseURL}
}

func isElsewhere(err error) bool {
	var e *ElsewhereError
	return errors.As(err, &e)
}

func (v *Visits) endWithoutRoom(ctx context.Context, appt *appointment) error {
	enc, err := v.openEncounter(ctx, appt.id)
	if err != nil {
		return err
	}
	if enc == "" {
		return fmt.Errorf("appointment %s: %w", appt.id, ErrNoVisit)
	}
	return v.finishVisit(ctx, appt.id, enc, appt.practitioners(), time.Now())
}

// finishVisit finishes the Encounter and fulfils the Appointment.
func (v *Visits) finishVisit(ctx context.Context, appointmentID, encounter string, practitioners []string, at time.Time) error {
	if err := v.finishEncounter(ctx, encounter, practitioners, at); err != nil {
		return err
	}
	return v.fulfillAppointment(ctx, appointmentID)
}

func patientOf(a *appointment) string {
	if a == nil {
		return ""
	}
	return a.patient
}

// existing is the room of appointment id on this instance, nil if none.
func (v *Visits) existing(id string) *room {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rooms[id]
}

// inRoom runs fn on the room of id, ErrNoSuchParticipant when there is
// none (nobody joined).
func (v *Visits) inRoom(id string, fn func(*room) error) error {
	r := v.existing(id)
	if r == nil {
		return fmt.Errorf("appointment %s has no one in its visit: %w", id, ErrNoSuchParticipant)
	}
	return fn(r)
}

// open returns the room of appointment id, creating it from the
// Appointment when there is none.
func (v *Visits) open(ctx context.Context, id string) (*room, error) {
	if r := v.existing(id); r != nil {
		return r, nil
	}
	// Claimed first: a websocket that came to the wrong instance (the join
	// token's signature already vouches for the id) costs no reads here.
	if v.pin != nil {
		own, err := v.pin.Claim(ctx, id)
		if err != nil {
			return nil, err
		}
		if !own.Self {
			// The websocket came to the wrong instance: say where to go.
			// The close is "going away" (1001), the error message's code
			// "elsewhere" with the owner's address.
			return nil, errors.Join(&ProtocolError{Code: "elsewhere", Msg: "this visit is served at " + own.BaseURL + ": join there"}, ErrStopped)
		}
	}
	appt, err := v.loadAppointment(ctx, id)
	if err != nil {
		return nil, err
	}
	if !joinable(appt.status) {
		return nil, fmt.Errorf("appointment %s is %s: %w", id, appt.status, ErrNotJoinable)
	}
	enc, err := v.openEncounter(ctx, id)
	if err != nil {
		// The visit can go on; its end then starts no second Encounter
		// only if this one is found, so say so.
		v.log.WarnContext(ctx, "signaling: cannot look for an open encounter", "appointment", id, "err", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return nil, ErrStopped
	}
	if r := v.rooms[id]; r != nil {
		return r, nil
	}
	r := newRoom(v, appt, enc)
	v.rooms[id] = r
	if v.pin != nil {
		v.pin.Hold(id)
	}
	v.log.InfoContext(ctx, "signaling: room opened", "appointment", id, "encounter", enc)
	return r, nil
}

// owner claims the visit of appointment id for this instance, or names
// the instance that holds it. A join token for a visit served elsewhere
// is checked there: it needs the key the instances share
// (ErrKeyNotShared when this one signs with a random key).
func (v *Visits) owner(ctx context.Context, id string) (Owner, error) {
	if v.pin == nil {
		return Owner{Self: true}, nil
	}
	own, err := v.pin.Claim(ctx, id)
	if err != nil {
		return Owner{}, err
	}
	if !own.Self && v.cfg.TokenKey == nil {
		return Owner{}, fmt.Errorf("appointment %s is served by instance %s, which cannot check this instance's join tokens: %w",
			id, own.Instance, ErrKeyNotShared)
	}
	return own, nil
}

// drop forgets r once it ended.
func (v *Visits) drop(r *room) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.rooms[r.id] == r {
		delete(v.rooms, r.id)
		if v.pin != nil {
			v.pin.Release(r.id)
		}
	}
}

// after runs fn after d unless the returned timer is stopped first; Run
// waits for a running fn.
func (v *Visits) after(d time.Duration, fn func()) *timer {
	t := &timer{v: v}
	v.wg.Add(1)
	t.t = time.AfterFunc(d, func() {
		defer v.wg.Done()
		fn()
	})
	return t
}

// timer is a time.AfterFunc counted in Visits.wg until it ran or was
// stopped.
type timer struct {
	v *Visits
	t *time.Timer
}

// stop cancels the timer unless it has already fired.
func (t *timer) stop() {
	if t != nil && t.t.Stop() {
		t.v.wg.Done()
	}
}

// record writes the audit event of one step of a visit. A step refused
// with *ElsewhereError is not recorded: the client is sent to the
// instance that serves the visit, which records the step it takes.
func (v *Visits) record(ctx context.Context, who Actor, kind audit.Kind, appointmentID, patient, detail string, err error) {
	if v.audit == nil || isElsewhere(err) {
		return
	}
	e := audit.Event{
		Kind: kind, Agent: audit.AgentOf(who.Principal, who.Address), RequestID: who.RequestID,
		ResourceType: "Appointment", ResourceID: appointmentID, Detail: detail,
	}
	if patient != "" {
		e.Patients = []string{trimType(patient)}
	}
	if err != nil {
		e.Outcome, e.OutcomeDesc = outcomeOf(err)
	}
	v.audit.Record(ctx, e)
}

// recordAgent is record for an agent that joined with a join token.
func (v *Visits) recordAgent(ctx context.Context, agent audit.Agent, kind audit.Kind, appointmentID, patient, detail string) {
	if v.audit == nil {
		return
	}
	e := audit.Event{Kind: kind, Agent: agent, ResourceType: "Appointment", ResourceID: appointmentID, Detail: detail}
	if patient != "" {
		e.Patients = []string{trimType(patient)}
	}
	v.audit.Record(ctx, e)
}

func trimType(ref string) string {
	if _, id, ok := strings.Cut(ref, "/"); ok {
		return id
	}
	return ref
}

// outcomeOf is the audit outcome of a refused or failed step.
func outcomeOf(err error) (audit.Outcome, string) {
	switch {
	case errors.Is(err, ErrNotParticipant), errors.Is(err, ErrNotPractitioner), errors.Is(err, ErrInvalidToken):
		return audit.OutcomeSeriousFailure, "forbidden"
	case errors.Is(err, ErrAppointmentNotFound), errors.Is(err, ErrNoSuchParticipant):
		return audit.OutcomeMinorFailure, "not found"
	case errors.Is(err, ErrNotJoinable), errors.Is(err, ErrNoVisit), errors.Is(err, ErrRoomFull):
		return audit.OutcomeMinorFailure, "conflict"
	}
	return audit.OutcomeMajorFailure, "server error"
}
