package sfu

import (
	"sync"
)

// room is one visit's participants. Its mutex guards who is in it, who is
// admitted, every published track's subscriptions and the audio-only
// states; the forwarding path reads only atomics.
type room struct {
	sfu   *SFU
	id    string
	mu    sync.Mutex
	peers map[string]*Peer
}

func newRoom(s *SFU, id string) *room {
	return &room{sfu: s, id: id, peers: make(map[string]*Peer)}
}

func (r *room) has(participant string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.peers[participant]
	return ok
}

func (r *room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers) == 0
}

func (r *room) all() []*Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

func (r *room) add(p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peers[p.id] = p
}

// remove takes p out and drops every subscription from and to it.
func (r *room) remove(p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
	}
	r.reconcileLocked()
	r.refreshAudioOnlyLocked()
}

func (r *room) setAdmitted(p *Peer, admitted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.closed || p.admitted == admitted {
		return
	}
	p.admitted = admitted
	p.log.Info("media admitted", "admitted", admitted)
	r.reconcileLocked()
	r.refreshAudioOnlyLocked()
}

func (r *room) setRequested(p *Peer, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.closed || p.requested == on {
		return
	}
	p.requested = on
	r.refreshAudioOnlyLocked()
}

func (r *room) setBandwidth(p *Peer, bad bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.closed || p.bandwidth == bad {
		return
	}
	p.bandwidth = bad
	if bad {
		r.sfu.gone.fallbacks.Add(1)
	}
	p.log.Info("media link", "audio_only_for_bandwidth", bad)
	r.refreshAudioOnlyLocked()
}

// unpublish removes t once its last layer has ended.
func (r *room) unpublish(t *pubTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.owner.published[t.receiver] == t {
		delete(t.owner.published, t.receiver)
	}
	r.reconcileLocked()
}

// reconcileLocked makes every admitted participant subscribe to every
// track of every other admitted participant, and nothing else; those
// whose tracks changed renegotiate.
func (r *room) reconcileLocked() {
	changed := map[*Peer]bool{}
	for _, pub := range r.allPeersLocked() {
		for _, t := range pub.published {
			for _, sub := range r.allPeersLocked() {
				if sub == pub {
					continue
				}
				want := pub.admitted && sub.admitted && !pub.closed && !sub.closed && r.peers[pub.id] == pub && r.peers[sub.id] == sub
				dt := t.subs[sub]
				switch {
				case want && dt == nil:
					if dt := newDownTrack(sub, t); dt != nil {
						t.subs[sub] = dt
						sub.down[t] = dt
						changed[sub] = true
					}
				case !want && dt != nil:
					delete(t.subs, sub)
					delete(sub.down, t)
					dt.remove()
					changed[sub] = true
				}
			}
			t.publishSubs()
		}
	}
	// Tracks of participants who left, still subscribed by others.
	for _, sub := range r.allPeersLocked() {
		for t, dt := range sub.down {
			if r.peers[t.owner.id] != t.owner || t.owner.published[t.receiver] != t {
				delete(t.subs, sub)
				delete(sub.down, t)
				t.publishSubs()
				dt.remove()
				changed[sub] = true
			}
		}
	}
	// A participant who left keeps no subscriptions.
	for t := range r.orphanTracks() {
		t.publishSubs()
	}
	for p := range changed {
		if !p.closed {
			p.needOffer()
		}
	}
	r.refreshForwardingLocked()
}

// orphanTracks drops the subscriptions of peers that are no longer in
// the room from the tracks of those who are.
func (r *room) orphanTracks() map[*pubTrack]bool {
	out := map[*pubTrack]bool{}
	for _, pub := range r.peers {
		for _, t := range pub.published {
			for sub, dt := range t.subs {
				if r.peers[sub.id] != sub {
					delete(t.subs, sub)
					delete(sub.down, t)
					dt.remove()
					out[t] = true
				}
			}
		}
	}
	return out
}

func (r *room) allPeersLocked() []*Peer {
	out := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// refreshAudioOnlyLocked recomputes who is audio only and tells those
// whose state changed. A participant is audio only when it is itself
// (its switch or its link), or when every other admitted participant is:
// then it neither sends nor receives any video either.
func (r *room) refreshAudioOnlyLocked() {
	for _, p := range r.peers {
		own := p.requested || p.bandwidth
		others, othersOff, othersBandwidth := 0, 0, false
		for _, q := range r.peers {
			if q == p || !q.admitted {
				continue
			}
			others++
			if q.requested || q.bandwidth {
				othersOff++
				othersBandwidth = othersBandwidth || q.bandwidth
			}
		}
		on := own || (p.admitted && others > 0 && othersOff == others)
		if on == p.audioOnly {
			continue
		}
		var reason string
		switch {
		case on && p.requested:
			reason = ReasonRequested
		case on && p.bandwidth:
			reason = ReasonBandwidth
		case on && othersBandwidth:
			reason = ReasonBandwidth
		case on:
			reason = ReasonRequested
		case p.reason == ReasonRequested:
			reason = ReasonRequested
		default:
			reason = ReasonRecovered
		}
		p.audioOnly, p.reason = on, reason
		p.emitAudioOnly(on, reason)
	}
	r.refreshForwardingLocked()
}

// refreshForwardingLocked switches each subscription on or off: audio
// between admitted participants, video only when neither side is audio
// only.
func (r *room) refreshForwardingLocked() {
	for _, pub := range r.peers {
		for _, t := range pub.published {
			for sub, dt := range t.subs {
				on := pub.admitted && sub.admitted
				if t.video() {
					on = on && !pub.requested && !pub.bandwidth && !sub.requested && !sub.bandwidth
				}
				dt.setEnabled(on)
			}
		}
	}
}

// The reasons of an EventAudioOnly.
const (
	ReasonBandwidth = "bandwidth"
	ReasonRecovered = "recovered"
	ReasonRequested = "requested"
)
