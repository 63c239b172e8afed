package sfu

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// downTrack forwards one published track to one subscriber. It rewrites
// sequence numbers and timestamps so the subscriber sees one continuous
// stream while the SFU switches simulcast layers (on keyframes) or
// pauses video.
type downTrack struct {
	sub    *Peer
	track  *pubTrack
	local  *boundTrack
	sender *webrtc.RTPSender

	enabled atomic.Bool // forwarding allowed (admitted, not audio only)
	bound   atomic.Bool // the subscriber negotiated it
	removed atomic.Bool
	packets atomic.Uint64

	mu       sync.Mutex
	current  *layer // the layer being forwarded
	target   *layer // the layer wanted; switched to on its next keyframe
	resync   bool   // wait for a keyframe of target before forwarding
	started  bool
	seqOff   uint16
	tsOff    uint32
	lastSeq  uint16
	lastTS   uint32
	lastSent time.Time
	firstSeq uint16 // first sequence number of current after a switch
}

// boundTrack is a TrackLocalStaticRTP that tells its downTrack when the
// subscriber has negotiated it, so the first packet it gets is a
// keyframe.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	onBind func()
}

// Bind implements webrtc.TrackLocal.
func (b *boundTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := b.TrackLocalStaticRTP.Bind(c)
	if err == nil {
		b.onBind()
	}
	return p, err
}

const (
	// rtcpMTU is room for any RTCP datagram a peer sends.
	rtcpMTU = 1500
	// maxBadRTCP is how many unreadable RTCP datagrams in a row end a
	// track's RTCP reader: an error that repeats is not a bad datagram.
	maxBadRTCP = 1000
)

// seqFloorLag is how far behind the newest packet a late packet (a
// retransmission) may still be forwarded; older ones could collide with
// numbers used before the last switch.
const seqFloorLag = 1000

// newDownTrack adds t to sub's PeerConnection (a new sendonly
// transceiver; the caller renegotiates). Caller holds room.mu.
func newDownTrack(sub *Peer, t *pubTrack) *downTrack {
	local, err := webrtc.NewTrackLocalStaticRTP(t.codec.RTPCodecCapability, t.id, streamID(t.owner.id))
	if err != nil {
		sub.log.Warn("forward track", "err", err)
		return nil
	}
	dt := &downTrack{sub: sub, track: t, resync: true}
	dt.local = &boundTrack{TrackLocalStaticRTP: local, onBind: dt.onBind}
	dt.target = t.firstLayer()
	tr, err := sub.pc.AddTransceiverFromTrack(dt.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		sub.log.Warn("forward track", "err", err)
		return nil
	}
	dt.sender = tr.Sender()
	if !sub.spawn(dt.readRTCP) {
		_ = sub.pc.RemoveTrack(dt.sender)
		return nil
	}
	return dt
}

func (dt *downTrack) onBind() {
	dt.bound.Store(true)
	dt.mu.Lock()
	dt.resync = true
	target := dt.target
	dt.mu.Unlock()
	if target != nil {
		target.requestKeyframe()
	}
}

// remove stops forwarding and takes the track off the subscriber's
// PeerConnection (the caller renegotiates). Caller holds room.mu.
func (dt *downTrack) remove() {
	if dt.removed.Swap(true) {
		return
	}
	dt.enabled.Store(false)
	if err := dt.sub.pc.RemoveTrack(dt.sender); err != nil && !dt.sub.isClosed() {
		dt.sub.log.Debug("remove forwarded track", "err", err)
	}
}

// setEnabled turns forwarding on or off; coming back on waits for a
// keyframe. Caller holds room.mu.
func (dt *downTrack) setEnabled(on bool) {
	if dt.removed.Load() || dt.enabled.Swap(on) == on || !on {
		return
	}
	dt.mu.Lock()
	dt.resync = true
	target := dt.target
	if target == nil || target.ended.Load() {
		target = dt.track.firstLayer()
		dt.target = target
	}
	dt.mu.Unlock()
	if target != nil && dt.bound.Load() {
		target.requestKeyframe()
	}
}

// switchTo makes l the layer to forward from its next keyframe on.
func (dt *downTrack) switchTo(l *layer) {
	dt.mu.Lock()
	if dt.target == l {
		dt.mu.Unlock()
		return
	}
	dt.target = l
	pending := l != dt.current || dt.resync
	dt.mu.Unlock()
	if pending && dt.enabled.Load() && dt.bound.Load() {
		l.requestKeyframe()
	}
}

func (dt *downTrack) layers() (current, target *layer) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	return dt.current, dt.target
}

// write forwards pkt, read from layer l, if this subscription wants it.
// It runs on l's read goroutine.
func (dt *downTrack) write(l *layer, pkt *rtp.Packet) {
	if !dt.enabled.Load() || !dt.bound.Load() {
		return
	}
	dt.mu.Lock()
	if l != dt.current || dt.resync {
		if l != dt.target || !keyframe(dt.track.codec.MimeType, pkt.Payload) {
			dt.mu.Unlock()
			return
		}
		dt.current, dt.resync = l, false
		dt.firstSeq = pkt.SequenceNumber
		if dt.started {
			// Continue the subscriber's sequence, and its clock by the
			// time that passed.
			dt.seqOff = dt.lastSeq + 1 - pkt.SequenceNumber
			elapsed := uint32(time.Since(dt.lastSent).Seconds()*float64(dt.track.codec.ClockRate)) + 1 //nolint:gosec // small
			dt.tsOff = dt.lastTS + elapsed - pkt.Timestamp
		} else {
			dt.started = true
		}
	} else {
		d := int16(pkt.SequenceNumber - dt.firstSeq) //nolint:gosec // wrap-around arithmetic on purpose
		if d < 0 {
			// Older than the switch: its number was used by the last layer.
			dt.mu.Unlock()
			return
		}
		if d > seqFloorLag {
			dt.firstSeq = pkt.SequenceNumber - seqFloorLag
		}
	}
	out := rtp.Packet{Header: pkt.Header, Payload: pkt.Payload}
	// The publisher's header extension ids mean nothing on the
	// subscriber's connection; the interceptors add ours.
	out.Extension, out.ExtensionProfile, out.Extensions = false, 0, nil
	out.SequenceNumber = pkt.SequenceNumber + dt.seqOff
	out.Timestamp = pkt.Timestamp + dt.tsOff
	if int16(out.SequenceNumber-dt.lastSeq) > 0 || dt.packets.Load() == 0 { //nolint:gosec // wrap-around arithmetic
		dt.lastSeq, dt.lastTS = out.SequenceNumber, out.Timestamp
		dt.lastSent = time.Now()
	}
	dt.mu.Unlock()
	if err := dt.local.WriteRTP(&out); err == nil {
		dt.packets.Add(1)
		dt.sub.packetsOut.Add(1)
		dt.sub.bytesOut.Add(uint64(len(out.Payload)))
	}
}

// readRTCP reads the subscriber's feedback about this track: keyframe
// requests go to the publisher (rate limited), receiver reports to the
// subscriber's quality figures. It ends when the track is removed or the
// connection closes.
func (dt *downTrack) readRTCP() {
	// Read, not ReadRTCP: that allocates a buffer per packet and parses
	// it a second time; the interceptors have parsed it already.
	buf := make([]byte, rtcpMTU)
	for bad := 0; ; {
		n, attrs, err := dt.sender.Read(buf)
		var pkts []rtcp.Packet
		if err == nil {
			pkts, err = attrs.GetRTCPPackets(buf[:n])
		}
		if err != nil {
			// The reader ends with the track or the connection. Anything
			// else is one bad datagram (too long, or not RTCP: the
			// interceptors return their parse error from Read), dropped,
			// unless they keep coming.
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || dt.removed.Load() || dt.sub.isClosed() {
				return
			}
			if bad++; bad >= maxBadRTCP {
				dt.sub.log.Warn("forwarded track: RTCP unreadable, no longer read", "err", err)
				return
			}
			continue
		}
		bad = 0
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				cur, target := dt.layers()
				if cur == nil {
					cur = target
				}
				if cur != nil {
					cur.requestKeyframe()
				}
			case *rtcp.ReceiverReport:
				for _, rr := range pkt.Reports {
					dt.sub.mon.onReport(rr, dt.track.codec.ClockRate)
				}
			}
		}
	}
}

// keyframe reports whether payload starts a keyframe. Codecs it cannot
// parse count as keyframes, so their subscriptions never wait.
func keyframe(mime string, payload []byte) bool {
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeVP8):
		return vp8Keyframe(payload)
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		return h264Keyframe(payload)
	case strings.HasPrefix(strings.ToLower(mime), "audio/"):
		return true
	default:
		return true
	}
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 §4.2) and the
// first byte of the VP8 frame header (RFC 6386 §9.1: P bit 0 is a key
// frame).
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	if b0&0x10 == 0 || b0&0x07 != 0 { // S: start of partition, PID 0
		return false
	}
	i := 1
	if b0&0x80 != 0 { // X
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	return len(p) > i && p[i]&0x01 == 0
}

// h264Keyframe looks for an IDR slice or a sequence parameter set in a
// single NAL unit, a STAP-A or the start of an FU-A (RFC 6184).
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	key := func(t byte) bool { return t == 5 || t == 7 }
	switch t := p[0] & 0x1f; t {
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if key(p[i+2] & 0x1f) {
				return true
			}
			i += 2 + size
		}
		return false
	case 28: // FU-A
		return len(p) > 1 && p[1]&0x80 != 0 && key(p[1]&0x1f)
	default:
		return key(t)
	}
}
