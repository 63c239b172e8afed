// Package sfu is Vidda's selective forwarding unit: one pion webrtc.API
// per process, one PeerConnection per participant, and the forwarding of
// audio and video between the admitted participants of a room. *SFU
// implements signaling.Media; it imports signaling and pion only.
//
// # Transport
//
// All media of all participants arrives at one UDP address (ICE UDP mux,
// Config.UDPAddr, default 127.0.0.1:3479) and, for clients whose UDP is
// blocked, one ICE-TCP address (Config.TCPAddr, default 127.0.0.1:3479
// TCP). Behind NAT, Config.PublicIPs (VIDDA_PUBLIC_IP) replaces the local
// address in the candidates. Clients behind stricter firewalls come in
// through the TURN server (signaling/turn).
//
// # Negotiation
//
// The client offers first: its own tracks (sendonly or sendrecv, rid
// simulcast allowed) in one offer; the server answers through send. The
// server never offers before that. Whenever the tracks it forwards to a
// participant change (someone is admitted, publishes, leaves), the server
// adds or removes sendonly transceivers and sends an offer (an
// EventDescription of type "offer"); the client answers with Remote.
// Each forwarded track's stream id is the publishing participant
// percent-escaped (decodeURIComponent gives it back); its track id is the
// publisher's. Restart sends an offer with new ICE credentials.
//
// All negotiation of one participant is serialized: one offer of the
// server is out at a time, and changes made meanwhile go into the next.
// In perfect-negotiation terms the server is the impolite peer: a client
// offer that arrives while a server offer is pending is ignored (Remote
// returns nil); the client must be polite, that is roll back its offer,
// answer the server's, and offer again. Candidates that arrive before the
// first offer are kept until it comes.
//
// # Forwarding
//
// Every admitted participant receives every track of every other admitted
// participant (3+ participants work the same as 2); a participant who is
// not admitted has no forwarded tracks and sends nowhere. Each
// subscription is a TrackLocalStaticRTP whose sequence numbers and
// timestamps the SFU rewrites, so switching simulcast layers or pausing
// video is seamless to the receiver: a new or resumed subscription and a
// layer switch wait for a keyframe of the wanted layer and ask the
// publisher for one (PLI, at most every 500 ms per layer); receivers'
// PLIs and FIRs go to the publisher the same way. NACKs are answered from
// the SFU's own send buffer; the SFU NACKs lost packets from publishers.
//
// # Bandwidth, audio only and quality
//
// A GCC send-side estimator per PeerConnection (transport-cc feedback
// from the receiver) estimates what may be sent towards each participant.
// Once per Config.MonitorInterval the SFU picks for each simulcast track a
// participant receives the best layer its share of that estimate carries,
// and judges the link: an estimate under Config.AudioOnlyBelow (150
// kbit/s, what the lowest video layer needs) while video is being sent to
// it, or loss above Config.AudioOnlyLoss (15 %) either way, for BadTicks
// intervals in a row, stops all video to and from the participant, who
// hears EventAudioOnly{true, "bandwidth"}; so do the others when nobody
// is left for them to exchange video with (in a 1:1 visit: both sides).
// GoodTicks good intervals (estimate >= ResumeAbove, loss under a third)
// resume it with EventAudioOnly{false, "recovered"}. SetAudioOnly is the
// participant's own switch (reason "requested"). The quality levels and
// their thresholds are documented on the constants in monitor.go.
//
// Nothing here logs SDP, ICE passwords or TURN credentials.
package sfu
