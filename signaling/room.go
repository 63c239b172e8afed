package signaling

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidda/vidda/internal/audit"
)

// A room is the visit of one Appointment on this instance. Its lock
// guards everything below it and is never held during a store write.
// Media calls that change a peer's place in the room (Connect,
// SetAdmitted, Restart) are made under it; that is safe because the media
// layer's send callback never takes it (see sink). Close is not: closing
// a PeerConnection waits for its goroutines, and the room's other
// participants must not wait with it. A peer leaving the room is retired
// under the lock and closed by unlock.
type room struct {
	v    *Visits
	id   string
	appt *appointment

	mu     sync.Mutex
	people map[string]*participant
	// encounter is the Encounter's id once the visit started; starting
	// is set while it is being created.
	encounter string
	starting  bool
	// took are the practitioners admitted while the room was open: the
	// Encounter's participants.
	took map[string]bool
	// removed keeps when each participant was removed: join tokens
	// issued before that no longer let them in.
	removed map[string]time.Time
	ended   bool
	empty   *timer
	// admitted are the sessions of the admitted participants, for the
	// media layer's callbacks, which broadcast without the lock.
	admitted atomic.Pointer[[]*session]
	// retiring are the peers retired under the lock, for unlock to close;
	// closing has, per participant, one channel for each of their peers
	// still closing: a new peer of theirs waits for them (the media layer
	// has one peer per participant and room).
	retiring []retiredPeer
	closing  map[string][]chan struct{}
}

// retiredPeer is a peer to close once the room's lock is released.
type retiredPeer struct {
	ref  string
	peer MediaPeer
	done chan struct{}
}

// participant is one person in the room, waiting or admitted.
type participant struct {
	ref, kind string
	agent     audit.Agent
	// tokens are the ids of the join tokens they joined with: one of
	// them, even expired, lets them back in within the grace period.
	tokens   map[string]bool
	admitted bool
	since    time.Time
	// sess is their connection; nil while they are reconnecting.
	sess  *session
	sink  *sink
	peer  MediaPeer
	grace *timer
	// The mute and audio-only switches they set themselves.
	audioMuted, videoMuted, audioOnly bool
}

func newRoom(v *Visits, appt *appointment, encounter string) *room {
	return &room{
		v: v, id: appt.id, appt: appt, people: map[string]*participant{},
		encounter: encounter, took: map[string]bool{}, removed: map[string]time.Time{},
		closing: map[string][]chan struct{}{},
	}
}

// errRoomEnded: the room ended while a join was on its way; the joiner
// looks again (and finds the Appointment fulfilled).
var errRoomEnded = fmt.Errorf("visit has ended: %w", ErrNotJoinable)

// replacedMessage tells a session that its participant joined again from
// another connection.
func replacedMessage() *Message {
	return &Message{Type: TypeError, Code: "replaced", Error: "joined again from another connection"}
}

// retire takes p's peer out of the room for unlock to close (r.mu held).
func (r *room) retire(p *participant) {
	if p.peer == nil {
		return
	}
	if p.sink != nil {
		p.sink.sess.Store(nil)
	}
	done := make(chan struct{})
	r.retiring = append(r.retiring, retiredPeer{ref: p.ref, peer: p.peer, done: done})
	r.closing[p.ref] = append(r.closing[p.ref], done)
	p.peer = nil
}

// unlock releases r.mu, then closes the peers retired under it.
func (r *room) unlock() {
	retiring := r.retiring
	r.retiring = nil
	r.mu.Unlock()
	for _, c := range retiring {
		_ = c.peer.Close()
		r.mu.Lock()
		left := slices.DeleteFunc(r.closing[c.ref], func(d chan struct{}) bool { return d == c.done })
		if len(left) == 0 {
			delete(r.closing, c.ref)
		} else {
			r.closing[c.ref] = left
		}
		r.mu.Unlock()
		close(c.done)
	}
}

// waitClosed waits until no peer of participant ref is closing.
func (r *room) waitClosed(ctx context.Context, ref string) error {
	for {
		r.mu.Lock()
		pending := r.closing[ref]
		r.mu.Unlock()
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-pending[0]:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the previous media connection to close: %w", ctx.Err())
		}
	}
}

// errPeerRetired: a join retired the participant's old peer and tries
// again once it is closed.
var errPeerRetired = errors.New("old peer retired")

// join puts s into the room as the participant its token names. See
// doc.go for the rules of waiting, admission and rejoining.
func (r *room) join(ctx context.Context, s *session, c joinClaims, expired, resume bool) error {
	for {
		if err := r.waitClosed(ctx, c.Participant); err != nil {
			return err
		}
		if err := r.tryJoin(ctx, s, c, expired, resume); !errors.Is(err, errPeerRetired) {
			return err
		}
	}
}

func (r *room) tryJoin(ctx context.Context, s *session, c joinClaims, expired, resume bool) error {
	r.mu.Lock()
	defer r.unlock()
	if r.ended {
		return errRoomEnded
	}
	p := r.people[c.Participant]
	if at, ok := r.removed[c.Participant]; ok && c.IssuedAt <= at.Unix() {
		return fmt.Errorf("%w: removed from the visit", ErrNotParticipant)
	}
	if expired && (p == nil || !p.tokens[c.ID]) {
		return fmt.Errorf("%w: expired", ErrInvalidToken)
	}
	rejoin := p != nil
	if !rejoin && len(r.people) >= r.v.cfg.MaxParticipants {
		return ErrRoomFull
	}
	restart := rejoin && resume && p.peer != nil
	if !restart && len(r.closing[c.Participant]) > 0 {
		// Another join retired a peer of theirs since waitClosed looked
		// (a reconnect racing an old tab): wait for it too, or the media
		// layer refuses a second peer for the participant.
		return errPeerRetired
	}
	if rejoin && !restart && p.peer != nil {
		// A new peer replaces the old one, which closes first.
		r.retire(p)
		return errPeerRetired
	}
	var (
		peer MediaPeer
		k    *sink
	)
	if !restart {
		k = &sink{r: r, ref: c.Participant}
		var err error
		if peer, err = r.v.media.Connect(ctx, r.id, c.Participant, k.send); err != nil {
			if old := p; rejoin && old.peer == nil && old.sess != nil && old.sess != s {
				// Its peer was retired for this join: the old session
				// has no media left. End it, so that its grace period
				// runs, rather than leave it in the room without media.
				old.sess.finish(CloseReplaced, "replaced", replacedMessage())
			}
			return fmt.Errorf("media: %w", err)
		}
	}
	now := time.Now()
	if !rejoin {
		p = &participant{ref: c.Participant, kind: c.Kind, tokens: map[string]bool{}, since: now}
		r.people[p.ref] = p
	}
	p.grace.stop()
	p.grace = nil
	if old := p.sess; old != nil && old != s {
		old.finish(CloseReplaced, "replaced", replacedMessage())
	}
	if !restart {
		if p.sink != nil {
			p.sink.sess.Store(nil)
		}
		p.peer, p.sink = peer, k
	}
	p.tokens[c.ID] = true
	p.agent = s.agent
	p.sess = s
	p.sink.sess.Store(s)
	wasAdmitted := p.admitted
	if p.kind == KindPractitioner && !p.admitted {
		p.admitted, p.since = true, now
	}
	if p.admitted {
		if p.kind == KindPractitioner {
			r.took[p.ref] = true
		}
		if !restart || !wasAdmitted {
			p.peer.SetAdmitted(true)
		}
	}
	r.empty.stop()
	r.empty = nil
	s.room, s.p = r, p
	r.refresh()

	joined := &Message{Type: TypeJoined, Self: r.info(p), Visit: r.visitInfo()}
	if p.admitted {
		joined.Participants = r.admittedInfos()
	}
	if p.kind == KindPractitioner {
		joined.Waiting = r.waitingInfos()
	}
	if r.v.ice != nil {
		joined.ICEServers = r.v.ice.ICEServers(p.ref, now)
	}
	s.send(joined)
	reason := "joined"
	if rejoin {
		reason = "rejoined"
	}
	if p.admitted {
		r.broadcast(&Message{Type: TypeAdmitted, Participant: p.ref, Info: r.info(p), Reason: reason}, p)
	} else {
		s.send(&Message{Type: TypeWaiting, Self: r.info(p)})
		r.pushWaiting()
	}
	if restart {
		if err := p.peer.Restart(ctx); err != nil {
			r.v.log.WarnContext(ctx, "signaling: ICE restart failed", "appointment", r.id, "participant", p.ref, "err", err)
		}
	}
	detail := "joined the visit"
	switch {
	case rejoin:
		detail = "rejoined the visit"
	case !p.admitted:
		detail = "joined the waiting room"
	}
	r.v.recordAgent(ctx, s.agent, audit.KindVideoJoin, r.id, r.appt.patient, detail)
	return nil
}

// disconnect is s's connection dropping without a leave: the
// participant keeps their place (and admission) for the grace period.
func (r *room) disconnect(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := s.p
	if p == nil || p.sess != s || r.people[p.ref] != p || r.ended {
		return
	}
	p.sess = nil
	p.sink.sess.Store(nil)
	r.refresh()
	p.grace = r.v.after(r.v.cfg.Grace, func() { r.expire(p) })
	if p.admitted {
		r.broadcast(&Message{Type: TypeLeft, Participant: p.ref, Reason: "disconnected"}, p)
	} else {
		r.pushWaiting()
	}
}

// expire ends the grace period of p: they are gone.
func (r *room) expire(p *participant) {
	r.mu.Lock()
	if r.people[p.ref] != p || p.sess != nil || r.ended {
		r.mu.Unlock()
		return
	}
	r.drop(p, "timeout")
	r.unlock()
	r.v.recordAgent(r.v.ctx, p.agent, audit.KindVideoLeave, r.id, r.appt.patient, "left the visit: connection lost")
}

// leave is s's participant leaving on purpose.
func (r *room) leave(ctx context.Context, s *session) {
	r.mu.Lock()
	p := s.p
	if p == nil || p.sess != s || r.ended {
		r.mu.Unlock()
		return
	}
	r.drop(p, "left")
	r.unlock()
	r.v.recordAgent(ctx, s.agent, audit.KindVideoLeave, r.id, r.appt.patient, "left the visit")
}

// drop takes p out of the room (r.mu held); an empty room ends after the
// grace period unless someone comes back.
func (r *room) drop(p *participant, reason string) {
	delete(r.people, p.ref)
	p.grace.stop()
	p.grace = nil
	r.retire(p)
	p.sink.sess.Store(nil)
	p.sess = nil
	r.refresh()
	if p.admitted {
		r.broadcast(&Message{Type: TypeLeft, Participant: p.ref, Reason: reason}, p)
	} else {
		r.pushWaiting()
	}
	if len(r.people) == 0 && r.empty == nil {
		r.empty = r.v.after(r.v.cfg.Grace, r.endIfEmpty)
	}
}

// endIfEmpty ends the visit when nobody came back.
func (r *room) endIfEmpty() {
	r.mu.Lock()
	stale := len(r.people) > 0 || r.ended
	r.mu.Unlock()
	if stale {
		return
	}
	ctx := r.v.ctx
	err := r.end(ctx, "everyone left")
	if err != nil {
		r.v.log.ErrorContext(ctx, "signaling: end of an empty visit", "appointment", r.id, "err", err)
	}
	r.v.recordAgent(ctx, audit.Agent{Name: "vidda"}, audit.KindVideoLeave, r.id, r.appt.patient, "visit ended: everyone left")
}

// admit lets target in from the waiting room; by is the practitioner.
// The first admission starts the visit: its Encounter is created.
func (r *room) admit(by, target string) error {
	r.mu.Lock()
	t := r.people[target]
	if t == nil || r.ended {
		r.mu.Unlock()
		return fmt.Errorf("%s: %w", target, ErrNoSuchParticipant)
	}
	if t.admitted {
		r.mu.Unlock()
		return nil
	}
	t.admitted, t.since = true, time.Now()
	if t.peer != nil {
		t.peer.SetAdmitted(true)
	}
	r.refresh()
	if t.sess != nil {
		t.sess.send(&Message{Type: TypeAdmitted, Participant: t.ref, Self: r.info(t), Participants: r.admittedInfos(), Visit: r.visitInfo()})
	}
	r.broadcast(&Message{Type: TypeAdmitted, Participant: t.ref, Info: r.info(t), Reason: "admitted by " + by}, t)
	r.pushWaiting()
	start := r.encounter == "" && !r.starting
	var practitioners []string
	if start {
		r.starting = true
		practitioners = r.tookPart()
	}
	r.mu.Unlock()
	if start {
		r.start(practitioners)
	}
	return nil
}

// start creates the visit's Encounter. A failure is logged and the next
// admission tries again; the visit goes on either way.
func (r *room) start(practitioners []string) {
	ctx := r.v.ctx
	id, err := r.v.startEncounter(ctx, r.appt, practitioners, time.Now())
	r.mu.Lock()
	r.starting = false
	if err != nil {
		r.mu.Unlock()
		r.v.log.ErrorContext(ctx, "signaling: start encounter", "appointment", r.id, "err", err)
		return
	}
	r.encounter = id
	ended := r.ended
	took := r.tookPart()
	r.mu.Unlock()
	r.v.log.InfoContext(ctx, "signaling: visit started", "appointment", r.id, "encounter", id)
	if ended { // it ended while the Encounter was being created
		if err := r.v.finishVisit(ctx, r.id, id, took, time.Now()); err != nil {
			r.v.log.ErrorContext(ctx, "signaling: finish visit", "appointment", r.id, "err", err)
		}
	}
}

// remove sends target out; by is the practitioner. Join tokens issued
// before now no longer let target in.
func (r *room) remove(by, target string) error {
	r.mu.Lock()
	defer r.unlock()
	t := r.people[target]
	if t == nil || r.ended {
		return fmt.Errorf("%s: %w", target, ErrNoSuchParticipant)
	}
	r.removed[target] = time.Now()
	sess := t.sess
	r.drop(t, "removed")
	if sess != nil {
		sess.finish(CloseRemoved, "removed", &Message{Type: TypeRemoved, Reason: "removed by " + by})
	}
	return nil
}

// end ends the visit for everyone: the room closes, and a started visit's
// Encounter is finished and its Appointment fulfilled.
func (r *room) end(ctx context.Context, reason string) error {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return nil
	}
	r.ended = true
	msg := &Message{Type: TypeEnded, Reason: reason}
	r.closeAll(CloseNormal, "ended", msg)
	r.empty.stop()
	r.empty = nil
	enc, starting, took := r.encounter, r.starting, r.tookPart()
	r.refresh()
	r.unlock()
	r.v.drop(r)
	r.v.log.InfoContext(ctx, "signaling: visit ended", "appointment", r.id, "encounter", enc, "reason", reason)
	if enc == "" || starting {
		return nil // not started, or start finishes it once it has an id
	}
	return r.v.finishVisit(ctx, r.id, enc, took, time.Now())
}

// shutdown closes the room for a stopping server, leaving the visit and
// its Encounter as they are.
func (r *room) shutdown() {
	r.mu.Lock()
	defer r.unlock()
	r.ended = true
	msg := &Message{Type: TypeError, Code: "going-away", Error: "the server is restarting; join again"}
	r.closeAll(CloseGoingAway, "server restarting", msg)
	r.empty.stop()
	r.empty = nil
	r.refresh()
}

// closeAll closes everyone's connection and retires their peers (r.mu
// held). The sinks
// are detached first: a peer closing makes the media layer renegotiate
// with the others, and those offers must not reach clients being closed.
func (r *room) closeAll(code int, reason string, final *Message) {
	for _, p := range r.people {
		p.sink.sess.Store(nil)
	}
	for _, p := range r.people {
		r.close(p, code, reason, final)
	}
}

// close ends p's connection and timers and retires its peer (r.mu held).
func (r *room) close(p *participant, code int, reason string, final *Message) {
	p.grace.stop()
	p.grace = nil
	r.retire(p)
	p.sink.sess.Store(nil)
	if p.sess != nil {
		p.sess.finish(code, reason, final)
	}
	p.sess = nil
}

// state is the room as practitioners see it; nil once it ended.
func (r *room) state() *VisitState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil
	}
	return &VisitState{VisitInfo: *r.visitInfo(), Participants: r.admittedInfos(), Waiting: r.waitingInfos()}
}

// media hands a client's offer, answer, candidate or audio-only switch to
// its peer, outside the room's lock.
func (r *room) media(ctx context.Context, s *session, m *Message) error {
	r.mu.Lock()
	p := s.p
	if p.sess != s || r.ended {
		r.mu.Unlock()
		return nil
	}
	peer := p.peer
	if peer == nil { // being replaced by a join
		r.mu.Unlock()
		return nil
	}
	if m.Type == TypeAudioOnly {
		p.audioOnly = *m.On
		if p.admitted {
			r.broadcast(&Message{Type: TypeAudioOnly, Participant: p.ref, On: m.On, Reason: "requested"}, p)
		}
	}
	r.mu.Unlock()
	switch m.Type { //nolint:exhaustive // handle routes only these types here
	case TypeOffer, TypeAnswer:
		return peer.Remote(ctx, *m.Description)
	case TypeCandidate:
		return peer.AddCandidate(*m.Candidate)
	case TypeAudioOnly:
		peer.SetAudioOnly(*m.On)
	default:
	}
	return nil
}

// relay passes a mute state or chat message to the admitted participants
// (chat is not stored).
func (r *room) relay(s *session, m *Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := s.p
	if p.sess != s || r.ended {
		return nil
	}
	if !p.admitted {
		return protocolErr("not-admitted", "%s is for admitted participants; wait to be admitted", m.Type)
	}
	switch m.Type { //nolint:exhaustive // handle routes only mute and chat here
	case TypeMute:
		if m.Audio != nil {
			p.audioMuted = *m.Audio
		}
		if m.Video != nil {
			p.videoMuted = *m.Video
		}
		r.broadcast(&Message{Type: TypeMute, Participant: p.ref, Audio: m.Audio, Video: m.Video}, p)
	case TypeChat:
		r.broadcast(&Message{Type: TypeChat, Participant: p.ref, Text: m.Text, At: instant(time.Now())}, nil)
	default:
	}
	return nil
}

// refresh republishes the admitted sessions for the media callbacks
// (r.mu held).
func (r *room) refresh() {
	var list []*session
	for _, p := range r.people {
		if p.admitted && p.sess != nil {
			list = append(list, p.sess)
		}
	}
	r.admitted.Store(&list)
}

// broadcast sends m to every admitted participant but except (r.mu held).
func (r *room) broadcast(m *Message, except *participant) {
	b, err := encode(m)
	if err != nil {
		r.v.log.Error("signaling: broadcast", "err", err)
		return
	}
	for _, p := range r.people {
		if p != except && p.admitted && p.sess != nil {
			p.sess.sendRaw(b)
		}
	}
}

// pushWaiting sends the waiting room to the admitted practitioners
// (r.mu held).
func (r *room) pushWaiting() {
	m := &Message{Type: TypeWaiting, Waiting: r.waitingInfos()}
	b, err := encode(m)
	if err != nil {
		return
	}
	for _, p := range r.people {
		if p.kind == KindPractitioner && p.admitted && p.sess != nil {
			p.sess.sendRaw(b)
		}
	}
}

func (r *room) info(p *participant) *ParticipantInfo {
	st := "waiting"
	switch {
	case p.sess == nil:
		st = "reconnecting"
	case p.admitted:
		st = "admitted"
	}
	in := &ParticipantInfo{
		ID: p.ref, Kind: p.kind, State: st, Since: instant(p.since),
		AudioMuted: p.audioMuted, VideoMuted: p.videoMuted, AudioOnly: p.audioOnly,
	}
	if p.sink != nil {
		q, audioOnly := p.sink.snapshot()
		in.Quality = q
		in.AudioOnly = in.AudioOnly || audioOnly
	}
	return in
}

// infos lists the participants admitted or not, by reference.
func (r *room) infos(admitted bool) []ParticipantInfo {
	out := []ParticipantInfo{}
	for _, p := range r.people {
		if p.admitted == admitted {
			out = append(out, *r.info(p))
		}
	}
	slices.SortFunc(out, func(a, b ParticipantInfo) int {
		return cmp.Or(strings.Compare(a.Since, b.Since), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (r *room) admittedInfos() []ParticipantInfo { return r.infos(true) }
func (r *room) waitingInfos() []ParticipantInfo  { return r.infos(false) }

func (r *room) visitInfo() *VisitInfo {
	st := "open"
	switch {
	case r.ended:
		st = "ended"
	case r.encounter != "":
		st = "in-progress"
	}
	return &VisitInfo{Appointment: r.id, Status: st, Encounter: r.encounter}
}

// tookPart are the practitioners admitted so far, sorted (r.mu held).
func (r *room) tookPart() []string {
	out := make([]string, 0, len(r.took))
	for ref := range r.took {
		out = append(out, ref)
	}
	slices.Sort(out)
	return out
}

// sink routes one peer's media events to its participant's current
// connection. It never takes the room's lock: the media layer may call
// send from inside a call the room makes under it.
type sink struct {
	r    *room
	ref  string
	sess atomic.Pointer[session]

	mu        sync.Mutex
	quality   Quality
	audioOnly bool // switched by the media layer, for the link
}

func (k *sink) snapshot() (Quality, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.quality, k.audioOnly
}

func (k *sink) send(e MediaEvent) {
	own := k.sess.Load()
	switch e.Kind {
	case EventDescription:
		if own != nil && e.Description != nil && (e.Description.Type == string(TypeOffer) || e.Description.Type == string(TypeAnswer)) {
			d := *e.Description
			own.send(&Message{Type: MessageType(d.Type), Description: &d})
		}
	case EventCandidate:
		if own != nil && e.Candidate != nil {
			c := *e.Candidate
			own.send(&Message{Type: TypeCandidate, Candidate: &c})
		}
	case EventQuality:
		k.mu.Lock()
		k.quality = e.Quality
		k.mu.Unlock()
		k.fanOut(own, &Message{Type: TypeQuality, Participant: k.ref, Quality: e.Quality})
	case EventAudioOnly:
		k.mu.Lock()
		k.audioOnly = e.AudioOnly
		k.mu.Unlock()
		on := e.AudioOnly
		k.fanOut(own, &Message{Type: TypeAudioOnly, Participant: k.ref, On: &on, Reason: e.Reason})
	case EventConnection:
		k.r.v.log.Debug("signaling: peer connection", "appointment", k.r.id, "participant", k.ref, "state", e.State)
	}
}

// fanOut sends m to the participant itself and to every admitted
// participant (once each).
func (k *sink) fanOut(own *session, m *Message) {
	b, err := encode(m)
	if err != nil {
		return
	}
	if own != nil {
		own.sendRaw(b)
	}
	if list := k.r.admitted.Load(); list != nil {
		for _, s := range *list {
			if s != own {
				s.sendRaw(b)
			}
		}
	}
}
