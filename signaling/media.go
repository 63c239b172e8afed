package signaling

import (
	"context"
	"time"
)

// This file is the contract between the visit layer (this package: rooms,
// waiting room, the JSON protocol) and the media layer (signaling/sfu:
// PeerConnections and forwarding). The visit layer declares what it needs
// of media here; *sfu.SFU implements Media. Only plain types cross the
// line, so this package never imports pion.

// Description is a session description as the browser's
// RTCSessionDescriptionInit carries it.
type Description struct {
	// Type is "offer" or "answer".
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// Candidate is a trickled ICE candidate as RTCIceCandidateInit carries
// it. An empty Candidate string means end of candidates.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Quality is a participant's link quality as the SFU judges it from RTCP
// (loss, jitter, round trip, bandwidth estimate).
type Quality string

// The quality levels, from best to worst.
const (
	QualityGood Quality = "good"
	QualityFair Quality = "fair"
	QualityPoor Quality = "poor"
	QualityLost Quality = "lost"
)

// MediaEventKind names what the media layer tells the visit layer.
type MediaEventKind string

// The media events.
const (
	// EventDescription carries an SDP offer (server-initiated
	// renegotiation or ICE restart) or the answer to the client's offer.
	EventDescription MediaEventKind = "description"
	// EventCandidate carries one of the server's ICE candidates.
	EventCandidate MediaEventKind = "candidate"
	// EventQuality reports a change of the participant's quality level.
	EventQuality MediaEventKind = "quality"
	// EventAudioOnly reports that video to or from the participant was
	// stopped (AudioOnly true) or resumed (false) because of the link.
	EventAudioOnly MediaEventKind = "audio-only"
	// EventConnection reports the PeerConnection state ("connected",
	// "disconnected", "failed", "closed").
	EventConnection MediaEventKind = "connection"
)

// MediaEvent is one message from the media layer about one participant.
// Exactly the fields of its Kind are set.
type MediaEvent struct {
	Kind        MediaEventKind
	Description *Description
	Candidate   *Candidate
	Quality     Quality
	AudioOnly   bool
	// Reason says why AudioOnly changed ("bandwidth", "recovered",
	// "requested").
	Reason string
	// State is the PeerConnection state of an EventConnection.
	State string
}

// Media creates the media side of participants. A room is identified by
// its appointment id; a participant by a string unique within the room
// (the visit layer uses the FHIR reference, e.g. "Patient/p1").
type Media interface {
	// Connect creates the participant's PeerConnection in room. send is
	// called, from any goroutine and in order, with every event the
	// client must hear; it must not block for long. The participant
	// neither sends nor receives media until SetAdmitted(true).
	Connect(ctx context.Context, room, participant string, send func(MediaEvent)) (MediaPeer, error)
}

// MediaPeer is one participant's PeerConnection.
type MediaPeer interface {
	// Remote applies the client's offer or answer. The answer to an offer
	// comes back through send as an EventDescription.
	Remote(ctx context.Context, d Description) error
	// AddCandidate adds one of the client's trickled ICE candidates.
	AddCandidate(c Candidate) error
	// SetAdmitted starts (true) or stops (false) forwarding media from and
	// to this participant.
	SetAdmitted(admitted bool)
	// SetAudioOnly is the participant's own audio-only switch: no video is
	// forwarded to or from them while it is on.
	SetAudioOnly(on bool)
	// Restart begins an ICE restart: a new offer comes through send.
	Restart(ctx context.Context) error
	// Stats returns the participant's current figures.
	Stats() MediaStats
	// Close closes the PeerConnection and stops its goroutines. It is
	// safe to call more than once.
	Close() error
}

// MediaStats are one participant's figures for the quality message and
// tests.
type MediaStats struct {
	Quality      Quality
	AudioOnly    bool
	PacketsIn    uint64
	PacketsOut   uint64
	BitrateIn    uint64 // bits/s received from the participant
	EstimateOut  uint64 // bits/s the bandwidth estimator allows towards them
	RoundTrip    time.Duration
	FractionLost float64
}

// ICEServer is an RTCIceServer as the browser takes it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServers hands out the ICE servers for one participant, the TURN
// ones with ephemeral TURN-REST credentials (signaling/turn implements
// it).
type ICEServers interface {
	ICEServers(participant string, now time.Time) []ICEServer
}
