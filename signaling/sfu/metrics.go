package sfu

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/signaling"
)

// The SFU's Prometheus metrics are read at scrape time from the rooms and
// peers (no work on the forwarding path beyond the counters it keeps
// anyway); the counters of peers that left are kept in retired so that
// the totals never go down.

// retired holds what peers that left had counted.
type retired struct {
	packetsIn, bytesIn, packetsOut, bytesOut atomic.Uint64
	// fallbacks counts switches to audio only because a link could not
	// carry video.
	fallbacks atomic.Uint64
}

// retire adds p's counters to the SFU's totals once p left.
func (s *SFU) retire(p *Peer) {
	s.gone.packetsIn.Add(p.packetsIn.Load())
	s.gone.bytesIn.Add(p.bytesIn.Load())
	s.gone.packetsOut.Add(p.packetsOut.Load())
	s.gone.bytesOut.Add(p.bytesOut.Load())
}

// Register adds the SFU's metrics to reg.
func (s *SFU) Register(reg prometheus.Registerer) error {
	return reg.Register(&collector{s: s, d: newDescs()})
}

type descs struct {
	rooms, participants, audioOnly, quality                        *prometheus.Desc
	packetsIn, bytesIn, packetsOut, bytesOut, fallbacks, bitrateIn *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vidda_sfu_"+name, help, labels, nil)
	}
	return descs{
		rooms:        d("rooms", "Rooms with at least one media peer on this instance."),
		participants: d("participants", "Media peers, by whether they are admitted or waiting.", "state"),
		audioOnly:    d("audio_only_participants", "Participants receiving and sending no video, by why (bandwidth: the SFU's fallback; requested: their own switch).", "reason"),
		quality:      d("participants_by_quality", "Participants by their link quality as last judged.", "quality"),
		packetsIn:    d("received_packets_total", "RTP packets received from publishers."),
		bytesIn:      d("received_bytes_total", "RTP bytes received from publishers."),
		packetsOut:   d("forwarded_packets_total", "RTP packets forwarded to subscribers."),
		bytesOut:     d("forwarded_payload_bytes_total", "RTP payload bytes forwarded to subscribers."),
		fallbacks:    d("audio_only_fallbacks_total", "Switches of a participant to audio only because their link could not carry video."),
		bitrateIn:    d("received_bits_per_second", "Bitrate received from all publishers, as last measured."),
	}
}

type collector struct {
	s *SFU
	d descs
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.d.rooms, c.d.participants, c.d.audioOnly, c.d.quality, c.d.packetsIn, c.d.bytesIn,
		c.d.packetsOut, c.d.bytesOut, c.d.fallbacks, c.d.bitrateIn,
	} {
		ch <- d
	}
}

// peerFigures is one peer as read under its room's lock.
type peerFigures struct {
	p                    *Peer
	admitted             bool
	bandwidth, requested bool
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	// The retired totals first: a peer leaving while this runs is then
	// counted once or not yet, never twice (a counter must not go down).
	pIn, bIn, pOut, bOut := s.gone.packetsIn.Load(), s.gone.bytesIn.Load(), s.gone.packetsOut.Load(), s.gone.bytesOut.Load()
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	var peers []peerFigures
	for _, r := range rooms {
		r.mu.Lock()
		for _, p := range r.peers {
			if !p.closed {
				peers = append(peers, peerFigures{p: p, admitted: p.admitted, bandwidth: p.bandwidth, requested: p.requested})
			}
		}
		r.mu.Unlock()
	}
	var admitted, waiting, byBandwidth, byRequest float64
	quality := map[signaling.Quality]float64{
		signaling.QualityGood: 0, signaling.QualityFair: 0, signaling.QualityPoor: 0, signaling.QualityLost: 0,
	}
	var bitrate float64
	for _, f := range peers {
		if f.admitted {
			admitted++
		} else {
			waiting++
		}
		switch {
		case f.bandwidth:
			byBandwidth++
		case f.requested:
			byRequest++
		}
		st := f.p.mon.snapshot()
		if st.Quality != "" {
			quality[st.Quality]++
		}
		bitrate += float64(st.BitrateIn)
		pIn, bIn = pIn+f.p.packetsIn.Load(), bIn+f.p.bytesIn.Load()
		pOut, bOut = pOut+f.p.packetsOut.Load(), bOut+f.p.bytesOut.Load()
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.d.rooms, float64(len(rooms)))
	gauge(c.d.participants, admitted, "admitted")
	gauge(c.d.participants, waiting, "waiting")
	gauge(c.d.audioOnly, byBandwidth, "bandwidth")
	gauge(c.d.audioOnly, byRequest, "requested")
	for q, n := range quality {
		gauge(c.d.quality, n, string(q))
	}
	gauge(c.d.bitrateIn, bitrate)
	counter(c.d.packetsIn, pIn)
	counter(c.d.bytesIn, bIn)
	counter(c.d.packetsOut, pOut)
	counter(c.d.bytesOut, bOut)
	counter(c.d.fallbacks, s.gone.fallbacks.Load())
}
