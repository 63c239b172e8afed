package sfu

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
)

// pubTrack is one track a participant publishes: one layer, or one per
// simulcast rid.
type pubTrack struct {
	owner    *Peer
	receiver *webrtc.RTPReceiver
	id       string
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters

	mu     sync.Mutex
	layers []*layer

	// subs is guarded by room.mu; fwd is its copy for the forwarding path.
	subs map[*Peer]*downTrack
	fwd  atomic.Pointer[[]*downTrack]
}

func (t *pubTrack) video() bool { return t.kind == webrtc.RTPCodecTypeVideo }

// publishSubs copies subs for the forwarding path. Caller holds room.mu.
func (t *pubTrack) publishSubs() {
	list := make([]*downTrack, 0, len(t.subs))
	for _, dt := range t.subs {
		list = append(list, dt)
	}
	t.fwd.Store(&list)
}

// activeLayers returns the layers that carried media in the last
// monitor interval, lowest bitrate first.
func (t *pubTrack) activeLayers() []*layer {
	t.mu.Lock()
	out := make([]*layer, 0, len(t.layers))
	for _, l := range t.layers {
		if !l.ended.Load() && l.bitrate.Load() > 0 {
			out = append(out, l)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *layer) int { return cmp.Compare(a.bitrate.Load(), b.bitrate.Load()) })
	return out
}

// firstLayer is the layer a new subscription starts on before bitrates
// are known.
func (t *pubTrack) firstLayer() *layer {
	if ls := t.activeLayers(); len(ls) > 0 {
		return ls[0]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.layers {
		if !l.ended.Load() {
			return l
		}
	}
	return nil
}

// layer is one RTP stream of a track: the only one, or one simulcast
// encoding.
type layer struct {
	track  *pubTrack
	remote *webrtc.TrackRemote
	rid    string
	ssrc   uint32

	ended   atomic.Bool
	packets atomic.Uint64
	bytes   atomic.Uint64
	bitrate atomic.Uint64 // bits/s over the last monitor interval
	lastPLI atomic.Int64  // unix nanos

	// Sequence accounting for loss, written by the read loop only.
	seqMu    sync.Mutex
	started  bool
	highest  uint32 // extended highest sequence number
	received uint32
	base     uint32
}

// keyframeInterval limits how often the SFU asks a publisher for a
// keyframe on one layer.
const keyframeInterval = 500 * time.Millisecond

// requestKeyframe sends a PLI for l to its publisher, at most once per
// keyframeInterval.
func (l *layer) requestKeyframe() {
	if !l.track.video() || l.ended.Load() {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastPLI.Load()
	if now-last < int64(keyframeInterval) || !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	_ = l.track.owner.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
}

// count records one received packet for the loss figures.
func (l *layer) count(seq uint16) {
	l.seqMu.Lock()
	defer l.seqMu.Unlock()
	if !l.started {
		l.started, l.highest, l.base = true, uint32(seq), uint32(seq)
		l.received = 1
		return
	}
	l.received++
	cycles := l.highest &^ 0xffff
	ext := cycles | uint32(seq)
	diff := int16(seq - uint16(l.highest)) //nolint:gosec // wrap-around arithmetic on purpose
	switch {
	case diff > 0 && ext < l.highest: // wrapped
		ext += 1 << 16
	case diff < 0 && ext > l.highest:
		ext -= 1 << 16
	}
	if ext > l.highest {
		l.highest = ext
	}
}

// lossWindow returns the packets expected and received since the last
// call.
func (l *layer) lossWindow() (expected, received uint32) {
	l.seqMu.Lock()
	defer l.seqMu.Unlock()
	if !l.started {
		return 0, 0
	}
	expected = l.highest - l.base + 1
	received = l.received
	l.base, l.received = l.highest+1, 0
	return expected, received
}

// onTrack is pion's OnTrack: a new track, or a new simulcast layer of
// one. The handler goroutine becomes the layer's read loop.
func (p *Peer) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	r := p.room
	r.mu.Lock()
	if p.closed {
		r.mu.Unlock()
		return
	}
	t := p.published[receiver]
	isNew := t == nil
	if isNew {
		t = &pubTrack{
			owner: p, receiver: receiver, id: remote.ID(), kind: remote.Kind(), codec: remote.Codec(),
			subs: make(map[*Peer]*downTrack),
		}
		t.publishSubs()
		p.published[receiver] = t
	}
	l := &layer{track: t, remote: remote, rid: remote.RID(), ssrc: uint32(remote.SSRC())}
	t.mu.Lock()
	t.layers = append(t.layers, l)
	t.mu.Unlock()
	p.wg.Add(2)
	if isNew {
		r.reconcileLocked()
	} else {
		r.refreshForwardingLocked()
	}
	r.mu.Unlock()

	go func() {
		defer p.wg.Done()
		drainRTCP(receiver, l.rid)
	}()
	defer p.wg.Done()
	p.log.Info("track published", "kind", t.kind.String(), "codec", t.codec.MimeType, "rid", l.rid)
	p.readLayer(l)
	l.ended.Store(true)
	t.mu.Lock()
	live := slices.ContainsFunc(t.layers, func(l *layer) bool { return !l.ended.Load() })
	t.mu.Unlock()
	if !live {
		r.unpublish(t)
	}
}

// drainRTCP reads the RTCP of a received stream so the interceptors see
// the sender reports (for our receiver reports' round-trip fields).
func drainRTCP(receiver *webrtc.RTPReceiver, rid string) {
	for {
		var err error
		if rid != "" {
			_, _, err = receiver.ReadSimulcastRTCP(rid)
		} else {
			_, _, err = receiver.ReadRTCP()
		}
		if err != nil {
			return
		}
	}
}

// readLayer is the forwarding path: every packet of l goes to every
// subscription of its track.
func (p *Peer) readLayer(l *layer) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		l.packets.Add(1)
		l.bytes.Add(uint64(n)) //nolint:gosec // a read length
		p.packetsIn.Add(1)
		p.bytesIn.Add(uint64(n)) //nolint:gosec // a read length
		l.count(pkt.SequenceNumber)
		for _, dt := range *l.track.fwd.Load() {
			dt.write(l, &pkt)
		}
	}
}

// streamID is the msid stream id subscribers see for participant's
// tracks: the participant id with every character SDP's token-char does
// not allow (RFC 8830, RFC 4566), e.g. "/", percent-escaped, so
// decodeURIComponent(stream.id) gives the participant back.
func streamID(participant string) string {
	var b strings.Builder
	for i := range len(participant) {
		c := participant[i]
		if tokenChar(c) && c != '%' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func tokenChar(c byte) bool {
	switch {
	case c == 0x21, c >= 0x23 && c <= 0x27, c == 0x2a, c == 0x2b, c == 0x2d, c == 0x2e,
		c >= 0x30 && c <= 0x39, c >= 0x41 && c <= 0x5a, c >= 0x5e && c <= 0x7e:
		return true
	}
	return false
}

func (p *Peer) emitAudioOnly(on bool, reason string) {
	p.emit(signaling.MediaEvent{Kind: signaling.EventAudioOnly, AudioOnly: on, Reason: reason})
}
