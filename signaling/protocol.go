package signaling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/vidda/vidda/fhir"
)

// ProtocolVersion is the version of the JSON protocol this server speaks;
// every message carries it as "v" (see doc.go).
const ProtocolVersion = 1

// MessageType is a message's "type".
type MessageType string

// The message types. Client → server: join, leave, admit, remove, end,
// offer, answer, candidate, mute, audio-only, chat, ping, pong. Server →
// client: joined, waiting, admitted, left, removed, ended, offer, answer,
// candidate, mute, quality, audio-only, chat, ping, pong, error.
const (
	TypeJoin      MessageType = "join"
	TypeJoined    MessageType = "joined"
	TypeWaiting   MessageType = "waiting"
	TypeAdmit     MessageType = "admit"
	TypeAdmitted  MessageType = "admitted"
	TypeRemove    MessageType = "remove"
	TypeRemoved   MessageType = "removed"
	TypeLeave     MessageType = "leave"
	TypeLeft      MessageType = "left"
	TypeEnd       MessageType = "end"
	TypeEnded     MessageType = "ended"
	TypeOffer     MessageType = "offer"
	TypeAnswer    MessageType = "answer"
	TypeCandidate MessageType = "candidate"
	TypeMute      MessageType = "mute"
	TypeQuality   MessageType = "quality"
	TypeAudioOnly MessageType = "audio-only"
	TypeChat      MessageType = "chat"
	TypePing      MessageType = "ping"
	TypePong      MessageType = "pong"
	TypeError     MessageType = "error"
)

// Message is one protocol message in either direction. Which fields a
// type carries is listed in doc.go; a client message with a field its
// type does not carry is refused.
type Message struct {
	V    int         `json:"v"`
	Type MessageType `json:"type"`

	// Token is the join token (join).
	Token string `json:"token,omitempty"`
	// Resume says the client still holds its RTCPeerConnection from before
	// a dropped websocket (join): the server then restarts ICE on the
	// existing peer instead of creating a new one.
	Resume bool `json:"resume,omitempty"`
	// Participant names a participant by FHIR reference: whom to admit or
	// remove, or whom a relayed message is about.
	Participant string `json:"participant,omitempty"`
	// Description is the SDP of an offer or answer.
	Description *Description `json:"description,omitempty"`
	// Candidate is a trickled ICE candidate.
	Candidate *Candidate `json:"candidate,omitempty"`
	// Audio and Video are a mute state: true means muted.
	Audio *bool `json:"audio,omitempty"`
	Video *bool `json:"video,omitempty"`
	// On is the audio-only switch.
	On *bool `json:"on,omitempty"`
	// Text is a chat message.
	Text string `json:"text,omitempty"`
	// At is when the server relayed a chat message (RFC 3339).
	At string `json:"at,omitempty"`
	// Quality is a participant's link quality.
	Quality Quality `json:"quality,omitempty"`
	// Reason says why (left, removed, ended, audio-only).
	Reason string `json:"reason,omitempty"`
	// Code and Error describe an error: a stable code and a sentence.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Self is the receiver as the room sees them (joined, waiting,
	// admitted).
	Self *ParticipantInfo `json:"self,omitempty"`
	// Info is the participant a message is about (admitted, to the
	// others).
	Info *ParticipantInfo `json:"info,omitempty"`
	// Participants are the admitted participants (joined).
	Participants []ParticipantInfo `json:"participants,omitempty"`
	// Waiting is the waiting room (waiting, to practitioners).
	Waiting []ParticipantInfo `json:"waiting,omitempty"`
	// ICEServers are the ICE servers with fresh TURN credentials (joined).
	ICEServers []ICEServer `json:"iceServers,omitempty"`
	// Visit is the visit's state (joined).
	Visit *VisitInfo `json:"visit,omitempty"`
}

// ParticipantInfo is one participant as the room shows them.
type ParticipantInfo struct {
	// ID is the FHIR reference, "Patient/p1".
	ID string `json:"id"`
	// Kind is "practitioner", "patient" or "other".
	Kind string `json:"kind"`
	// State is "waiting", "admitted" or "reconnecting".
	State string `json:"state"`
	// Since is when they entered their state (RFC 3339).
	Since      string  `json:"since"`
	AudioMuted bool    `json:"audioMuted,omitempty"`
	VideoMuted bool    `json:"videoMuted,omitempty"`
	AudioOnly  bool    `json:"audioOnly,omitempty"`
	Quality    Quality `json:"quality,omitempty"`
}

// VisitInfo is a visit's state.
type VisitInfo struct {
	Appointment string `json:"appointment"`
	// Status is "idle" (no room), "open" (people are in the room but no
	// one was admitted from the waiting room yet), "in-progress" (the
	// Encounter runs) or "ended".
	Status string `json:"status"`
	// Encounter is the Encounter's id once the visit started.
	Encounter string `json:"encounter,omitempty"`
}

// VisitState is a visit and everyone in its room (GET /video/visits/{id}).
type VisitState struct {
	VisitInfo
	Participants []ParticipantInfo `json:"participants"`
	Waiting      []ParticipantInfo `json:"waiting"`
}

// ProtocolError is a message the server refused; Code is one of the
// codes listed in doc.go.
type ProtocolError struct {
	Code string
	Msg  string
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Msg }

func protocolErr(code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Field limits of client messages.
const (
	maxTokenLen     = 4 << 10
	maxRefLen       = 200
	maxCandidateLen = 1 << 10
	maxMidLen       = 64
	maxUfragLen     = 256
)

// clientFields lists, for every type a client may send, the optional
// fields it may carry besides v and type.
var clientFields = map[MessageType][]string{ //nolint:gochecknoglobals // a constant table
	TypeJoin:      {"token", "resume"},
	TypeLeave:     nil,
	TypeAdmit:     {"participant"},
	TypeRemove:    {"participant"},
	TypeEnd:       nil,
	TypeOffer:     {"description"},
	TypeAnswer:    {"description"},
	TypeCandidate: {"candidate"},
	TypeMute:      {"audio", "video"},
	TypeAudioOnly: {"on"},
	TypeChat:      {"text"},
	TypePing:      nil,
	TypePong:      nil,
}

// DecodeMessage reads one client message and checks it: one JSON object,
// at most maxSize bytes, version ProtocolVersion, a type a client may
// send, exactly the fields that type carries, within their limits (chat
// text at most maxChat characters). Every refusal is a *ProtocolError.
func DecodeMessage(data []byte, maxSize, maxChat int) (*Message, error) {
	if len(data) > maxSize {
		return nil, protocolErr("too-large", "message of %d bytes exceeds the limit of %d", len(data), maxSize)
	}
	if !utf8.Valid(data) {
		return nil, protocolErr("malformed", "message is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Message
	if err := dec.Decode(&m); err != nil {
		return nil, protocolErr("malformed", "message is not a protocol JSON object: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, protocolErr("malformed", "data after the JSON object")
	}
	if m.V != ProtocolVersion {
		return nil, protocolErr("version", "protocol version %d is not supported; this server speaks version %d", m.V, ProtocolVersion)
	}
	allowed, ok := clientFields[m.Type]
	if !ok {
		return nil, protocolErr("unknown-type", "%q is not a message type a client may send", truncate(string(m.Type)))
	}
	for _, f := range m.setFields() {
		if !slices.Contains(allowed, f) {
			return nil, protocolErr("invalid", "%s does not carry %q", m.Type, f)
		}
	}
	if err := m.validate(maxSize, maxChat); err != nil {
		return nil, err
	}
	return &m, nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s must be a JSON %s", truncate(typ.Field), typ.Type.Kind())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + truncate(strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "invalid JSON"
}

// setFields names the optional fields m carries.
func (m *Message) setFields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(m.Token != "", "token")
	add(m.Resume, "resume")
	add(m.Participant != "", "participant")
	add(m.Description != nil, "description")
	add(m.Candidate != nil, "candidate")
	add(m.Audio != nil, "audio")
	add(m.Video != nil, "video")
	add(m.On != nil, "on")
	add(m.Text != "", "text")
	add(m.At != "", "at")
	add(m.Quality != "", "quality")
	add(m.Reason != "", "reason")
	add(m.Code != "", "code")
	add(m.Error != "", "error")
	add(m.Self != nil, "self")
	add(m.Info != nil, "info")
	add(m.Participants != nil, "participants")
	add(m.Waiting != nil, "waiting")
	add(m.ICEServers != nil, "iceServers")
	add(m.Visit != nil, "visit")
	return out
}

// validate checks the required fields of m's type and their limits.
func (m *Message) validate(maxSize, maxChat int) error {
	missing := func(f string) error { return protocolErr("invalid", "%s needs %q", m.Type, f) }
	switch m.Type {
	case TypeJoin:
		if m.Token == "" {
			return missing("token")
		}
		if len(m.Token) > maxTokenLen {
			return protocolErr("invalid", "token is too long")
		}
	case TypeAdmit, TypeRemove:
		if m.Participant == "" {
			return missing("participant")
		}
		if !ValidReference(m.Participant) {
			return protocolErr("invalid", "participant must be a reference such as Patient/p1")
		}
	case TypeOffer, TypeAnswer:
		d := m.Description
		if d == nil {
			return missing("description")
		}
		if d.Type != string(m.Type) {
			return protocolErr("invalid", "%s carries a description of type %q", m.Type, truncate(d.Type))
		}
		if d.SDP == "" || len(d.SDP) > maxSize {
			return protocolErr("invalid", "description.sdp must be a non-empty SDP")
		}
	case TypeCandidate:
		c := m.Candidate
		if c == nil {
			return missing("candidate")
		}
		if len(c.Candidate) > maxCandidateLen || (c.SDPMid != nil && len(*c.SDPMid) > maxMidLen) ||
			(c.UsernameFragment != nil && len(*c.UsernameFragment) > maxUfragLen) {
			return protocolErr("invalid", "candidate is too long")
		}
	case TypeMute:
		if m.Audio == nil && m.Video == nil {
			return protocolErr("invalid", "mute needs \"audio\" or \"video\"")
		}
	case TypeAudioOnly:
		if m.On == nil {
			return missing("on")
		}
	case TypeChat:
		if strings.TrimSpace(m.Text) == "" {
			return missing("text")
		}
		if n := utf8.RuneCountInString(m.Text); n > maxChat {
			return protocolErr("invalid", "chat text of %d characters exceeds the limit of %d", n, maxChat)
		}
	case TypeLeave, TypeEnd, TypePing, TypePong:
	case TypeJoined, TypeWaiting, TypeAdmitted, TypeRemoved, TypeLeft, TypeEnded, TypeQuality, TypeError:
		return protocolErr("unknown-type", "%q is a message the server sends", m.Type)
	default:
		return protocolErr("unknown-type", "%q is not a message type a client may send", truncate(string(m.Type)))
	}
	return nil
}

// ValidReference reports whether s is a relative FHIR reference Type/id:
// a resource type name (an upper-case letter, then letters) and an R4 id.
func ValidReference(s string) bool {
	if len(s) > maxRefLen {
		return false
	}
	typ, id, ok := strings.Cut(s, "/")
	if !ok || typ == "" || !fhir.ValidID(id) {
		return false
	}
	for i, r := range typ {
		if (r < 'A' || r > 'Z') && (i == 0 || (r < 'a' || r > 'z')) {
			return false
		}
	}
	return true
}

// truncate keeps client-supplied text in error messages short.
func truncate(s string) string {
	const maxLen = 40
	if len(s) > maxLen {
		s = s[:maxLen] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// encode marshals a server message, stamping the version.
func encode(m *Message) ([]byte, error) {
	m.V = ProtocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	return b, nil
}
