package audit

import (
	"context"

	"github.com/vidda/vidda/internal/auth"
)

// SignInEvent is the audit Event of a sign-in attempt or a sign-out: a
// login, a logout, or a failed login whose reason (wrong password, locked,
// ...) is its outcomeDesc. The typed username is the agent's name; the
// session id, never its token, is the agent's policy.
func SignInEvent(s auth.SignInEvent) Event {
	e := Event{
		Time: s.At, Kind: KindLoginFailed, Outcome: OutcomeSeriousFailure, OutcomeDesc: string(s.Outcome),
		Agent: Agent{
			Subject: s.UserID, Role: string(s.Role), Name: s.Username,
			TokenID: s.SessionID, Address: s.RemoteAddr,
		},
		RequestID: s.RequestID,
	}
	switch s.Outcome {
	case auth.SignInSucceeded:
		e.Kind, e.Outcome, e.OutcomeDesc = KindLogin, OutcomeSuccess, ""
	case auth.SignedOut:
		e.Kind, e.Outcome, e.OutcomeDesc = KindLogout, OutcomeSuccess, ""
	case auth.SignInUnknownUser, auth.SignInWrongPassword, auth.SignInWrongCode, auth.SignInLocked,
		auth.SignInDisabled, auth.SignInRateLimited, auth.SignInBadRequest:
	}
	switch {
	case s.PractitionerID != "":
		e.Agent.Reference = "Practitioner/" + s.PractitionerID
	case s.Role == auth.RolePatient && s.PatientID != "":
		e.Agent.Reference = "Patient/" + s.PatientID
	}
	if s.UserAgent != "" {
		ua := s.UserAgent
		if len(ua) > 200 {
			ua = ua[:200]
		}
		e.Detail = "user agent: " + ua
	}
	return e
}

// RecordSignIn records a sign-in attempt or sign-out, as Record does: the
// hook the sign-in pages call.
func (w *Writer) RecordSignIn(ctx context.Context, s auth.SignInEvent) {
	w.Record(ctx, SignInEvent(s))
}
