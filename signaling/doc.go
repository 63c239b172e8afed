// Package signaling owns video visits: a room per FHIR Appointment, the
// waiting room, join tokens, the versioned JSON protocol spoken over a
// websocket, and the Encounter that records a visit for the EHR. Media is
// not here: the visit layer drives it through the Media interface
// (media.go), which signaling/sfu implements with pion; ICE servers with
// TURN credentials come through ICEServers (signaling/turn).
//
// Package signaling imports the standard library, internal/auth
// (principals), internal/audit (the audit events it records), fhir and
// fhir/search (to validate what it writes and to find an open Encounter)
// and fhir/store's types through the small Records and Searcher
// interfaces it declares. It imports neither Fiber nor pion: the HTTP edge
// adapts its websocket to Conn.
//
// # Joining
//
// POST /video/visits/{appointmentId}/join (the HTTP edge) calls
// Visits.Issue: the caller's principal must be a participant of the
// Appointment — Patient/{patient} for a patient, Practitioner/{id} for a
// nurse or clinician acting as that Practitioner; a PractitionerRole
// participant counts for its Practitioner — and the Appointment must be
// booked, arrived or checked-in. The answer is a join token (HMAC-SHA256,
// bound to the appointment, the participant and their kind, valid
// Config.TokenTTL, five minutes by default), the websocket URL and the
// ICE servers. The token travels in the first websocket message, never in
// the URL, so it does not end up in access logs; the URL carries
// ?visit={appointmentId} only so that a load balancer can pin the
// connection to the instance holding the room.
//
// # Rooms, waiting and admission
//
// A room lives in the memory of one instance, created at the first join
// and pinned there by appointment id (see the scale path in DESIGN.md).
// Practitioners of the appointment are admitted at once and are sent the
// waiting room ("waiting") whenever it changes; everyone else (the
// patient, a relative, an interpreter) waits until a practitioner admits
// them. A waiting participant already has a media peer and may negotiate
// (offer, answer, candidates), so admission is instant, but the media
// layer forwards nothing to or from them until MediaPeer.SetAdmitted(true).
// Practitioners admit, remove and end over the websocket or the HTTP API.
// A removed participant's join tokens issued before the removal no longer
// let them in.
//
// The visit starts with the first admission from the waiting room: that
// creates an Encounter (status in-progress, class VR from
// http://terminology.hl7.org/CodeSystem/v3-ActCode, appointment the
// Appointment, subject its patient, participant the practitioners
// admitted, period.start). A room where nobody was ever admitted from the
// waiting room leaves no Encounter: nothing happened for the EHR to see.
// The visit ends when a practitioner ends it, or when the room has been
// empty for the grace period: the Encounter becomes finished with
// period.end and every practitioner who took part, and the Appointment
// fulfilled. Both are written through the FHIR store, so EHRs see them in
// searches, history and subscriptions. A room re-created after a restart
// finds the Encounter still in progress (Encounter?appointment=&status=
// in-progress) and continues it.
//
// # Reconnecting
//
// A connection that drops without a leave keeps its participant's place,
// admission included, for Config.Grace (30 s by default); the others see
// "left" with reason "disconnected". Joining again within that time, with
// the same token (even if it has expired since) or a fresh one for the
// same participant, resumes without the waiting room. With "resume": true
// in the join (the client still holds its RTCPeerConnection: only the
// websocket dropped) the server keeps the peer and calls MediaPeer.Restart,
// an ICE restart whose offer arrives as an "offer"; without it (a reloaded
// page) the old peer is closed and a new one created, and the client sends
// a new offer. After the grace period the participant is gone ("left",
// reason "timeout") and a new join starts over in the waiting room.
//
// # The protocol
//
// Every message is one JSON object in one websocket text frame with the
// protocol version and a type: {"v":1,"type":"join",...}. A client message
// is refused with an "error" message (the connection stays open) when it
// is not JSON, has another version, an unknown type, a field its type does
// not carry, or breaks a limit: Config.MaxMessage bytes (64 KiB; a larger
// frame closes the connection with 1009), Config.MaxChat characters of
// chat. A connection may send Config.RatePerSecond messages a second with
// bursts of Config.RateBurst (50 and 50); beyond that messages are dropped
// with an error, and a client that keeps on is closed with 1008.
//
// Client → server:
//
//	join        token, resume?          the first message, within JoinTimeout (10 s)
//	leave                               leave for good (no grace period)
//	admit       participant             practitioners: let someone in from the waiting room
//	remove      participant             practitioners: send someone out
//	end                                 practitioners: end the visit for everyone
//	offer       description{type,sdp}   the client's SDP offer (the answer comes back as "answer")
//	answer      description{type,sdp}   the answer to a server offer (renegotiation, ICE restart)
//	candidate   candidate{candidate,sdpMid,sdpMLineIndex,usernameFragment}
//	mute        audio?, video?          the client's mute state (true = muted), relayed to the others
//	audio-only  on                      stop (true) or resume (false) video to and from this client
//	chat        text                    relayed to the admitted participants, not stored
//	ping / pong                         heartbeat; the server answers ping with pong
//
// Server → client:
//
//	joined      self, visit, participants (if admitted), waiting (to practitioners), iceServers
//	waiting     self (to the one waiting) or waiting[] (the waiting room, to practitioners)
//	admitted    self, participants, visit (to the one admitted); participant, info, reason (to the others)
//	left        participant, reason: left | disconnected | timeout | removed
//	removed     reason                  then the connection closes (4010)
//	ended       reason                  the visit ended; the connection closes (1000)
//	offer / answer / candidate          from the server's peer
//	mute        participant, audio?, video?
//	quality     participant, quality: good | fair | poor | lost (own link, and the others')
//	audio-only  participant, on, reason: bandwidth | recovered | requested
//	chat        participant, text, at
//	ping        every PingInterval (10 s): answer pong; a connection silent for three
//	            intervals is closed (4008)
//	pong
//	error       code, error; code is one of too-large, malformed, version,
//	            unknown-type, invalid, rate-limited, not-joined, not-admitted,
//	            token, forbidden, not-found, not-joinable, full, media, timeout,
//	            replaced, going-away, internal
//
// Close codes: 1000 left or ended, 1001 server restarting, 1008 rate limit
// or too slow a reader, 1009 message too large, 1011 server error, 4001
// invalid or expired token, 4003 not a participant (or removed), 4004 no
// such appointment, 4008 no join in time or silent, 4009 the appointment
// is not open for a visit, 4010 removed, 4011 joined again elsewhere, 4029
// the room is full.
//
// An example: the patient joins and waits, the clinician (already in)
// admits them, they negotiate and chat, the clinician ends the visit.
//
//	P→ {"v":1,"type":"join","token":"vj1.eyJ…"}
//	←P {"v":1,"type":"joined","self":{"id":"Patient/p1","kind":"patient","state":"waiting",…},"visit":{"appointment":"a1","status":"open"},"iceServers":[…]}
//	←P {"v":1,"type":"waiting","self":{…}}
//	←C {"v":1,"type":"waiting","waiting":[{"id":"Patient/p1","kind":"patient","state":"waiting","since":"2026-11-23T10:00:00.000Z"}]}
//	P→ {"v":1,"type":"offer","description":{"type":"offer","sdp":"v=0…"}}
//	←P {"v":1,"type":"answer","description":{"type":"answer","sdp":"v=0…"}}
//	P→ {"v":1,"type":"candidate","candidate":{"candidate":"candidate:1 1 udp …","sdpMid":"0","sdpMLineIndex":0}}
//	C→ {"v":1,"type":"admit","participant":"Patient/p1"}
//	←P {"v":1,"type":"admitted","participant":"Patient/p1","self":{…,"state":"admitted"},"participants":[…],"visit":{"appointment":"a1","status":"open"}}
//	←C {"v":1,"type":"admitted","participant":"Patient/p1","info":{…},"reason":"admitted by Practitioner/c1"}
//	P→ {"v":1,"type":"chat","text":"Can you hear me?"}
//	←P,C {"v":1,"type":"chat","participant":"Patient/p1","text":"Can you hear me?","at":"…"}
//	←P,C {"v":1,"type":"quality","participant":"Patient/p1","quality":"poor"}
//	C→ {"v":1,"type":"end"}
//	←P,C {"v":1,"type":"ended","reason":"ended by Practitioner/c1"}
//
// # Audit and secrets
//
// Issuing a join token (or refusing one), joining, admitting, leaving,
// removing and ending are AuditEvents (internal/audit's video kinds; a
// removal and an end are video-leave events whose detail says so), with
// the Appointment as entity and its patient. Join tokens, TURN
// credentials, SDP and chat text are never logged.
package signaling
