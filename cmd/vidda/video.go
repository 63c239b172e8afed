package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/sfu"
	"github.com/vidda/vidda/signaling/turn"
)

// This file connects video visits (issue 7): the embedded TURN server,
// the SFU and the visit layer, which internal/httpapi serves under
// /video.

type videoSettings struct {
	off      bool
	turn     turn.Config
	turnURLs string
	sfu      sfu.Config
	publicIP string
	visits   signaling.Config
	tokenKey string
	// owner pins visits to this instance (signaling/owner.go); its
	// Instance and BaseURL come from serve's settings unless set.
	owner signaling.OwnerConfig
}

func bindVideo(cs *config.Set, v *videoSettings) {
	v.turn, v.sfu, v.visits = turn.DefaultConfig(), sfu.DefaultConfig(), signaling.DefaultConfig()
	cs.Bool(&v.off, "no-video", "VIDDA_VIDEO_OFF", false, "serve no video visits (no TURN, no SFU, no /video routes)")
	cs.String(&v.turn.Listen, "turn-listen", "VIDDA_TURN_LISTEN", turn.DefaultListen, "embedded TURN server's UDP and TCP address")
	cs.String(&v.turn.TLSListen, "turn-tls-listen", "VIDDA_TURN_TLS_LISTEN", "", "TURN over TLS address (with VIDDA_TLS_CERT and VIDDA_TLS_KEY)")
	cs.Secret(&v.turn.Secret, "turn-secret", "VIDDA_TURN_SECRET", "", "TURN-REST shared secret, as coturn's static-auth-secret (unset: random per process)")
	cs.String(&v.turnURLs, "turn-urls", "VIDDA_TURN_URLS", "", "comma-separated turn:/turns: URLs handed to browsers (unset: the embedded server's)")
	cs.Bool(&v.turn.External, "turn-external", "VIDDA_TURN_EXTERNAL", false, "an external coturn (use-auth-secret) relays: no embedded TURN; needs VIDDA_TURN_URLS and VIDDA_TURN_SECRET")
	cs.Duration(&v.turn.TTL, "turn-ttl", "VIDDA_TURN_TTL", v.turn.TTL, "how long TURN credentials stay valid")
	cs.String(&v.sfu.UDPAddr, "media-udp", "VIDDA_MEDIA_UDP", v.sfu.UDPAddr, "the one UDP address all video visit media uses (ICE UDP mux)")
	cs.String(&v.sfu.TCPAddr, "media-tcp", "VIDDA_MEDIA_TCP", v.sfu.TCPAddr, "ICE-TCP address for browsers whose UDP is blocked (empty: none)")
	cs.String(&v.publicIP, "public-ip", "VIDDA_PUBLIC_IP", "", "public address announced for media and relays when vidda is behind NAT")
	cs.Duration(&v.visits.TokenTTL, "video-token-ttl", "VIDDA_VIDEO_TOKEN_TTL", v.visits.TokenTTL, "how long a video join token may be used")
	cs.Duration(&v.visits.Grace, "video-grace", "VIDDA_VIDEO_GRACE", v.visits.Grace, "how long a dropped participant keeps their place for a rejoin")
	v.owner = signaling.OwnerConfig{Lease: signaling.DefaultLease, Timeout: 5 * time.Second}
	cs.String(&v.owner.BaseURL, "video-base-url", "VIDDA_VIDEO_BASE_URL", "", "this instance's own public base URL, where clients sent by another instance open a visit's websocket (default VIDDA_BASE_URL)")
	cs.Duration(&v.owner.Lease, "video-owner-lease", "VIDDA_VIDEO_OWNER_LEASE", v.owner.Lease, "how long a dead instance's video visits stay pinned to it before another instance takes them")
	cs.Secret(&v.tokenKey, "video-token-key", "VIDDA_VIDEO_TOKEN_KEY", "", "base64 key (32 bytes or more) signing join tokens; instances that do not pin /video by appointment id must share it (unset: random per process)")
}

// video is what serve runs for video visits.
type video struct {
	turn   *turn.Server // nil with an external TURN server
	media  *sfu.SFU
	visits *signaling.Visits
	owners *signaling.Owners
}

// build starts the TURN listeners and the SFU's sockets (so that a port
// in use fails the start) and makes the visit layer. nil when video is
// off.
func (v videoSettings) build(st *store.Store, types *fhir.Registry, params *search.Registry, aw *audit.Writer, pin pinning, reg prometheus.Registerer, log *slog.Logger) (*video, error) {
	if v.off {
		return nil, nil
	}
	if v.owner.BaseURL == "" {
		v.owner.BaseURL = pin.base
	}
	v.owner.Instance, v.owner.Hold = pin.instance, v.visits.TokenTTL
	owners, err := signaling.NewOwners(pin.db, v.owner, log)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_VIDEO_BASE_URL/VIDDA_VIDEO_OWNER_LEASE: %w", err)
	}
	if v.tokenKey != "" {
		key, err := base64.StdEncoding.DecodeString(v.tokenKey)
		if err != nil {
			return nil, fmt.Errorf("VIDDA_VIDEO_TOKEN_KEY: not base64: %w", err)
		}
		v.visits.TokenKey = key
	}
	for u := range strings.SplitSeq(v.turnURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			v.turn.URLs = append(v.turn.URLs, u)
		}
	}
	if v.publicIP != "" {
		v.turn.PublicIP = v.publicIP
		v.sfu.PublicIPs = []string{v.publicIP}
	}
	ts, err := turn.New(v.turn, log)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_TURN_LISTEN: %w", err)
	}
	media, err := sfu.New(v.sfu, log)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("VIDDA_MEDIA_UDP/VIDDA_MEDIA_TCP: %w", err), ts.Close())
	}
	if err := errors.Join(media.Register(reg), ts.Register(reg)); err != nil {
		return nil, errors.Join(fmt.Errorf("video metrics: %w", err), media.Close(), ts.Close())
	}
	d := signaling.Deps{Store: st, Search: st, Params: params, Types: types, Media: media, ICE: ts, Pinning: owners}
	if aw != nil {
		d.Audit = aw
	}
	visits, err := signaling.NewVisits(d, v.visits, log)
	if err != nil {
		return nil, errors.Join(err, media.Close(), ts.Close())
	}
	if v.visits.TokenKey == nil {
		log.Info("video join tokens are signed with a random key: set one VIDDA_VIDEO_TOKEN_KEY on every instance, or a second instance cannot hand out tokens for this one's visits")
	}
	return &video{turn: ts, media: media, visits: visits, owners: owners}, nil
}

// pinning is what pins visits to this instance: the database holding
// visit_owner, this instance's id and its public base URL.
type pinning struct {
	db       signaling.OwnerDB
	instance string
	base     string
}

// run serves until ctx ends: the visits close their connections and
// media peers first, then the SFU and TURN close their sockets.
func (v *video) run(ctx context.Context) error {
	// The claims outlive the rooms: released once the visits have closed,
	// so a client told to join again lands on an instance that takes the
	// visit over.
	octx, stopOwners := context.WithCancel(context.WithoutCancel(ctx))
	owned := make(chan error, 1)
	go func() { owned <- v.owners.Run(octx) }()
	err := v.visits.Run(ctx)
	stopOwners()
	return errors.Join(err, <-owned, v.media.Close(), v.turn.Close())
}

// canceled is a context that has ended: run on it closes at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// String says where video visits are served, for the ready line.
func (v *video) String() string {
	turn := "external"
	if a := v.turn.Addr(); a.IsValid() {
		turn = a.String()
	}
	media := v.media.UDPAddr().String() + "/udp"
	if a := v.media.TCPAddr(); a != nil {
		media += " " + a.String() + "/tcp"
	}
	return "turn " + turn + ", media " + media
}
