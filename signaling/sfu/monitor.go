package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
)

// Quality thresholds. A participant's level is the worst any of its
// figures reaches over one monitor interval; loss is the larger of what
// it reports losing of our packets (receiver reports) and what we lose
// of its packets (sequence gaps).
//
//	level  loss     round trip  jitter  other
//	lost   -        -           -       connection disconnected, failed or closed
//	poor   >= 10 %  >= 500 ms   >= 60 ms audio only because of the link
//	fair   >=  3 %  >= 250 ms   >= 30 ms estimate < 500 kbit/s while receiving video
//	good   otherwise
const (
	poorLoss   = 0.10
	poorRTT    = 500 * time.Millisecond
	poorJitter = 60 * time.Millisecond
	fairLoss   = 0.03
	fairRTT    = 250 * time.Millisecond
	fairJitter = 30 * time.Millisecond
	fairBitate = 500_000

	// audioBudget is what the layer selection reserves per forwarded
	// audio track (Opus at its usual 32-40 kbit/s plus headers).
	audioBudget = 48_000
)

// monitor holds one participant's link figures.
type monitor struct {
	cfg Config

	override atomic.Uint64 // a fixed estimate (tests); 0: the estimator's

	mu       sync.Mutex
	rrLoss   float64
	rrJitter time.Duration
	rtt      time.Duration
	stats    signaling.MediaStats

	// Touched only by tick (the monitor goroutine, or a test driving it).
	lastTick    time.Time
	lastBytesIn uint64
	lastLayer   map[*layer]uint64
	lastDown    map[*downTrack]uint64
	badRun      int
	goodRun     int
}

func (m *monitor) init(cfg Config) {
	m.cfg = cfg
	m.stats.Quality = signaling.QualityGood
	m.lastLayer = map[*layer]uint64{}
	m.lastDown = map[*downTrack]uint64{}
}

func (m *monitor) snapshot() signaling.MediaStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// onReport takes one reception report the participant sent about a
// stream we forward to it.
func (m *monitor) onReport(rr rtcp.ReceptionReport, clockRate uint32) {
	loss := float64(rr.FractionLost) / 256
	var jitter time.Duration
	if clockRate > 0 {
		jitter = time.Duration(uint64(rr.Jitter) * uint64(time.Second) / uint64(clockRate)) //nolint:gosec // bounded by uint32 jitter
	}
	var rtt time.Duration
	if rr.LastSenderReport != 0 {
		// RFC 3550 §6.4.1: A - LSR - DLSR, in 1/65536 s.
		d := ntpCompact(time.Now()) - rr.LastSenderReport - rr.Delay
		if d < 1<<31 {
			rtt = time.Duration(uint64(d) * uint64(time.Second) >> 16)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rrLoss = max(m.rrLoss, loss)
	m.rrJitter = max(m.rrJitter, jitter)
	if rtt > 0 {
		m.rtt = rtt
	}
}

func (m *monitor) takeReports() (loss float64, jitter, rtt time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	loss, jitter, rtt = m.rrLoss, m.rrJitter, m.rtt
	m.rrLoss, m.rrJitter = 0, 0
	return loss, jitter, rtt
}

// ntpCompact is the middle 32 bits of the NTP timestamp of t.
func ntpCompact(t time.Time) uint32 {
	secs := uint64(t.Unix()) + 2_208_988_800                   //nolint:gosec // after 1970
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second) //nolint:gosec // 0..1e9
	return uint32(secs<<16 | frac>>16)                         //nolint:gosec // truncation is the point
}

// estimate is the bandwidth the estimator allows towards the
// participant.
func (p *Peer) estimate() uint64 {
	if v := p.mon.override.Load(); v > 0 {
		return v
	}
	return uint64(max(p.bwe.GetTargetBitrate(), 0)) //nolint:gosec // not negative
}

// tick re-evaluates the participant once per monitor interval: bitrates,
// loss, the audio-only fallback, the simulcast layers it receives and its
// quality level.
func (p *Peer) tick(now time.Time) {
	m := &p.mon
	interval := now.Sub(m.lastTick)
	if m.lastTick.IsZero() || interval <= 0 {
		interval = m.cfg.MonitorInterval
	}
	m.lastTick = now
	secs := interval.Seconds()

	r := p.room
	r.mu.Lock()
	tracks := make([]*pubTrack, 0, len(p.published))
	for _, t := range p.published {
		tracks = append(tracks, t)
	}
	downs := make([]*downTrack, 0, len(p.down))
	for _, dt := range p.down {
		downs = append(downs, dt)
	}
	bandwidthNow := p.bandwidth
	r.mu.Unlock()

	bytesIn := p.bytesIn.Load()
	bitrateIn := uint64(float64(bytesIn-m.lastBytesIn) * 8 / secs)
	m.lastBytesIn = bytesIn

	// Our publisher side: layer bitrates and what we lose of them.
	var expected, received uint32
	seen := map[*layer]uint64{}
	for _, t := range tracks {
		t.mu.Lock()
		layers := append([]*layer(nil), t.layers...)
		t.mu.Unlock()
		for _, l := range layers {
			b := l.bytes.Load()
			l.bitrate.Store(uint64(float64(b-m.lastLayer[l]) * 8 / secs))
			seen[l] = b
			e, rc := l.lossWindow()
			expected += e
			received += min(rc, e)
		}
	}
	m.lastLayer = seen
	upLoss := 0.0
	if expected > 0 {
		upLoss = 1 - float64(received)/float64(expected)
	}

	// What we send it.
	videoOut := false
	sent := map[*downTrack]uint64{}
	for _, dt := range downs {
		n := dt.packets.Load()
		if dt.track.video() && dt.enabled.Load() && n > m.lastDown[dt] {
			videoOut = true
		}
		sent[dt] = n
	}
	m.lastDown = sent
	downLoss, jitter, rtt := m.takeReports()
	loss := max(upLoss, downLoss)
	est := p.estimate()
	if m.override.Load() > 0 {
		videoOut = true // a test's fixed estimate stands for a video link
	}

	p.judgeAudioOnly(est, loss, videoOut, bandwidthNow)
	p.selectLayers(downs, est)

	q := signaling.QualityGood
	switch {
	case lostState(webrtc.PeerConnectionState(p.state.Load())):
		q = signaling.QualityLost
	case loss >= poorLoss || rtt >= poorRTT || jitter >= poorJitter || bandwidthNow:
		q = signaling.QualityPoor
	case loss >= fairLoss || rtt >= fairRTT || jitter >= fairJitter || (videoOut && est < fairBitate):
		q = signaling.QualityFair
	}
	m.mu.Lock()
	changed := q != m.stats.Quality
	m.stats.Quality = q
	m.stats.BitrateIn = bitrateIn
	m.stats.EstimateOut = est
	m.stats.RoundTrip = rtt
	m.stats.FractionLost = loss
	m.mu.Unlock()
	if changed {
		p.emit(signaling.MediaEvent{Kind: signaling.EventQuality, Quality: q})
	}
}

func lostState(s webrtc.PeerConnectionState) bool {
	return s == webrtc.PeerConnectionStateDisconnected || s == webrtc.PeerConnectionStateFailed ||
		s == webrtc.PeerConnectionStateClosed
}

// judgeAudioOnly applies the fallback with hysteresis: BadTicks bad
// intervals in a row stop video, GoodTicks good ones resume it.
func (p *Peer) judgeAudioOnly(est uint64, loss float64, videoOut, audioOnly bool) {
	m := &p.mon
	cfg := m.cfg
	if cfg.AudioOnlyBelow == 0 {
		return
	}
	bad := (videoOut && est < cfg.AudioOnlyBelow) || loss >= cfg.AudioOnlyLoss
	good := est >= cfg.ResumeAbove && loss < cfg.AudioOnlyLoss/3
	switch {
	case bad:
		m.badRun++
		m.goodRun = 0
	case good:
		m.goodRun++
		m.badRun = 0
	default:
		m.badRun, m.goodRun = 0, 0
	}
	if !audioOnly && m.badRun >= cfg.BadTicks {
		m.badRun = 0
		p.room.setBandwidth(p, true)
	}
	if audioOnly && m.goodRun >= cfg.GoodTicks {
		m.goodRun = 0
		p.room.setBandwidth(p, false)
	}
}

// selectLayers gives each simulcast track the participant receives the
// best layer its share of the estimate carries (audio reserved first),
// the lowest when none fits; going up needs 15 % headroom.
func (p *Peer) selectLayers(downs []*downTrack, est uint64) {
	var video []*downTrack
	audio := 0
	for _, dt := range downs {
		if !dt.enabled.Load() {
			continue
		}
		if dt.track.video() {
			video = append(video, dt)
		} else {
			audio++
		}
	}
	if len(video) == 0 {
		return
	}
	budget := int64(est) - int64(audio)*audioBudget //nolint:gosec // bits/s, far below MaxInt64
	share := max(budget, 0) / int64(len(video))
	for _, dt := range video {
		ls := dt.track.activeLayers()
		if len(ls) == 0 {
			continue
		}
		_, target := dt.layers()
		at := -1
		for i, l := range ls {
			if l == target {
				at = i
			}
		}
		pick := ls[0]
		for i, l := range ls {
			need := int64(l.bitrate.Load()) //nolint:gosec // bits/s
			if i > at {
				need = need * 115 / 100
			}
			if need <= share {
				pick = l
			}
		}
		dt.switchTo(pick)
	}
}
