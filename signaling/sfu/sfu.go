package sfu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/webrtc/v4"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/pionlog"
)

// Errors the SFU returns.
var (
	// ErrClosed is returned once the SFU or the peer is closed.
	ErrClosed = errors.New("sfu: closed")
	// ErrParticipantConnected is returned by Connect when the participant
	// already has a PeerConnection in the room; close the old one first.
	ErrParticipantConnected = errors.New("sfu: participant already connected in this room")
	// ErrBadDescription is wrapped around every SDP the SFU cannot apply.
	ErrBadDescription = errors.New("sfu: bad session description")
	// ErrBadCandidate is wrapped around every ICE candidate the SFU cannot
	// apply.
	ErrBadCandidate = errors.New("sfu: bad ICE candidate")
)

// SFU forwards media between the admitted participants of each room. It
// implements signaling.Media.
type SFU struct {
	cfg    Config
	log    *slog.Logger
	api    *webrtc.API
	udp    net.PacketConn
	tcp    net.Listener
	udpMux interface{ Close() error }
	tcpMux interface{ Close() error }

	// estimators hands each new PeerConnection its bandwidth estimator:
	// the cc interceptor announces it by PeerConnection id while
	// NewPeerConnection runs.
	estimators sync.Map // pc id → cc.BandwidthEstimator

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	gone retired // metrics.go
}

var _ signaling.Media = (*SFU)(nil)

// New opens the media UDP (and TCP) sockets and builds the process's one
// webrtc.API. Close releases them.
func New(cfg Config, log *slog.Logger) (*SFU, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &SFU{cfg: cfg, log: log, rooms: make(map[string]*room)}
	if err := s.listen(); err != nil {
		s.closeSockets()
		return nil, err
	}
	if err := s.buildAPI(); err != nil {
		s.closeSockets()
		return nil, err
	}
	attrs := []any{"udp", s.udp.LocalAddr().String(), "public_ips", cfg.PublicIPs}
	if s.tcp != nil {
		attrs = append(attrs, "tcp", s.tcp.Addr().String())
	}
	log.Info("sfu listening", attrs...)
	return s, nil
}

const udpBuffer = 8 << 20

func (s *SFU) listen() error {
	var lc net.ListenConfig
	ctx := context.Background()
	udp, err := lc.ListenPacket(ctx, "udp", s.cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("sfu: listen udp %s: %w", s.cfg.UDPAddr, err)
	}
	s.udp = udp
	// Every participant's media shares this one socket: ask for large
	// kernel buffers so bursts are not dropped (capped by
	// net.core.rmem_max and wmem_max).
	if uc, ok := udp.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(udpBuffer)
		_ = uc.SetWriteBuffer(udpBuffer)
	}
	if s.cfg.TCPAddr == "" {
		return nil
	}
	s.tcp, err = lc.Listen(ctx, "tcp", s.cfg.TCPAddr)
	if err != nil {
		return fmt.Errorf("sfu: listen tcp %s: %w", s.cfg.TCPAddr, err)
	}
	return nil
}

// buildAPI registers the codecs and interceptors and the ICE muxes: one
// API, shared by every PeerConnection of the process.
func (s *SFU) buildAPI() error {
	logs := pionlog.Factory{Log: s.log}
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return err
	}
	ir := &interceptor.Registry{}

	// Send-side bandwidth estimation (GCC) towards each participant, fed
	// by the transport-cc feedback its browser sends about our packets.
	// No pacer: forwarded packets go out as they come.
	initial := int(s.cfg.InitialEstimate) //nolint:gosec // validated, far below MaxInt
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(initial),
			gcc.SendSideBWEMinBitrate(30_000),
			gcc.SendSideBWEMaxBitrate(10_000_000),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
			gcc.WithLoggerFactory(logs),
		)
	})
	if err != nil {
		return fmt.Errorf("sfu: congestion controller: %w", err)
	}
	ccf.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) { s.estimators.Store(id, e) })
	ir.Add(ccf)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return fmt.Errorf("sfu: transport-cc header extension: %w", err)
	}
	// NACK generator and responder, sender and receiver reports,
	// transport-cc feedback about what participants send us, and the
	// mid/rid header extensions simulcast needs.
	// The responder keeps 256 sent packets per video stream for
	// retransmission (4.5 s at 500 kbit/s, 1 s at 2.5 Mbit/s; pion's
	// 1,024 cost 1.2 MB per forwarded video track).
	if err := webrtc.ConfigureNackWithOptions(me, ir, nil, nack.ResponderSize(256)); err != nil {
		return fmt.Errorf("sfu: nack: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return fmt.Errorf("sfu: rtcp reports: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return fmt.Errorf("sfu: simulcast header extensions: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return fmt.Errorf("sfu: transport-cc feedback: %w", err)
	}

	var se webrtc.SettingEngine
	se.LoggerFactory = logs
	conn := s.udp
	if uc, ok := s.udp.(*net.UDPConn); ok {
		conn = newBatchUDP(uc)
	}
	udpMux := webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), conn)
	se.SetICEUDPMux(udpMux)
	s.udpMux = udpMux
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.tcp != nil {
		tcpMux := webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), s.tcp, 64)
		se.SetICETCPMux(tcpMux)
		s.tcpMux = tcpMux
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	if len(s.cfg.PublicIPs) > 0 {
		// NAT 1:1: the public addresses replace the local ones in host
		// candidates.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: s.cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return fmt.Errorf("sfu: public IPs: %w", err)
		}
	}
	// The UDP mux skips loopback addresses unless told; a loopback
	// listener (the default, and tests) has nothing else.
	if a, ok := s.udp.LocalAddr().(*net.UDPAddr); ok && a.IP.IsLoopback() {
		se.SetIncludeLoopbackCandidate(true)
	}
	// Browsers use mDNS names for their host candidates; a server
	// cannot resolve them and must not multicast.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return nil
}

// registerCodecs offers Opus for audio and VP8 and H.264 (with RTX) for
// video.
func registerCodecs(me *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
	}
	codecs := []struct {
		p    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			},
			PayloadType: 111,
		}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB},
			PayloadType:        96,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"},
			PayloadType:        97,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: videoFB,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			},
			PayloadType: 102,
		}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"},
			PayloadType:        103,
		}, webrtc.RTPCodecTypeVideo},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.p, c.kind); err != nil {
			return fmt.Errorf("sfu: register %s: %w", c.p.MimeType, err)
		}
	}
	return nil
}

// Connect creates participant's PeerConnection in room. It implements
// signaling.Media.
func (s *SFU) Connect(ctx context.Context, roomID, participant string, send func(signaling.MediaEvent)) (signaling.MediaPeer, error) {
	return s.connect(ctx, roomID, participant, send)
}

func (s *SFU) connect(_ context.Context, roomID, participant string, send func(signaling.MediaEvent)) (*Peer, error) {
	if send == nil {
		return nil, errors.New("sfu: connect: send must not be nil")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[roomID]
	if r == nil {
		r = newRoom(s, roomID)
		s.rooms[roomID] = r
	}
	if r.has(participant) {
		return nil, ErrParticipantConnected
	}
	p, err := newPeer(s, r, participant, send)
	if err != nil {
		if r.empty() {
			delete(s.rooms, roomID)
		}
		return nil, err
	}
	r.add(p)
	return p, nil
}

// newPeerConnection makes a PeerConnection and finds its estimator.
func (s *SFU) newPeerConnection() (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{
		SDPSemantics: webrtc.SDPSemanticsUnifiedPlan,
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	v, ok := s.estimators.LoadAndDelete(pc.ID())
	if !ok {
		_ = pc.Close()
		return nil, nil, errors.New("sfu: no bandwidth estimator for the peer connection")
	}
	return pc, v.(cc.BandwidthEstimator), nil //nolint:forcetypeassert // only estimators are stored
}

// leave drops p from its room, and the room when it is empty.
func (s *SFU) leave(r *room, p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.remove(p)
	s.retire(p)
	if r.empty() && s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
}

// UDPAddr is the address media arrives at (useful with port 0).
func (s *SFU) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr is the ICE-TCP address, nil when ICE-TCP is off.
func (s *SFU) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Close closes every participant's PeerConnection and the sockets. It is
// safe to call more than once.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var peers []*Peer
	for _, r := range s.rooms {
		peers = append(peers, r.all()...)
	}
	s.mu.Unlock()
	for _, p := range peers {
		_ = p.Close()
	}
	s.closeSockets()
	return nil
}

func (s *SFU) closeSockets() {
	for _, c := range []interface{ Close() error }{s.udpMux, s.tcpMux, s.udp, s.tcp} {
		if c != nil {
			_ = c.Close()
		}
	}
}
