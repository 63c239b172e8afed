package signaling

import (
	"errors"
	"fmt"
)

// The visit layer's errors. The HTTP edge maps them to statuses; over the
// websocket they become an error message with the code of ProtocolError.
var (
	// ErrAppointmentNotFound: no such Appointment (or it was deleted).
	ErrAppointmentNotFound = errors.New("appointment not found")
	// ErrNotParticipant: the caller is not a participant of the
	// appointment.
	ErrNotParticipant = errors.New("not a participant of this appointment")
	// ErrNotPractitioner: only the appointment's practitioners may do
	// this (admit, remove, end, see the waiting room).
	ErrNotPractitioner = errors.New("only the appointment's practitioners may do this")
	// ErrNotJoinable: the appointment's status does not allow a visit
	// (cancelled, fulfilled, noshow, proposed, ...).
	ErrNotJoinable = errors.New("the appointment is not open for a visit")
	// ErrNoSuchParticipant: the participant named is not in the room.
	ErrNoSuchParticipant = errors.New("no such participant in the visit")
	// ErrRoomFull: the room holds Config.MaxParticipants already.
	ErrRoomFull = errors.New("the visit is full")
	// ErrInvalidToken: a join token that is malformed, forged, expired or
	// for another appointment.
	ErrInvalidToken = errors.New("invalid join token")
	// ErrNoVisit: there is no visit in progress to end.
	ErrNoVisit = errors.New("no video visit in progress")
	// ErrStopped: the visit layer is shutting down.
	ErrStopped = errors.New("video visits are shutting down")
)

// ElsewhereError: another instance serves the visit (it owns the visit
// and this instance has no room for it), so the call must go there: the
// HTTP edge redirects it to BaseURL, as a join is answered with that
// instance's websocket.
type ElsewhereError struct {
	// Instance is the owner's VIDDA_INSTANCE_ID, BaseURL its own public
	// base URL.
	Instance, BaseURL string
}

func (e *ElsewhereError) Error() string {
	return fmt.Sprintf("this visit is served by instance %s at %s", e.Instance, e.BaseURL)
}
