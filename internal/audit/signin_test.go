package audit

import (
	"testing"
	"time"

	"github.com/vidda/vidda/internal/auth"
)

func TestSignInEventsBecomeLoginsLogoutsAndFailures(t *testing.T) {
	at := time.Now()
	tests := []struct {
		in      auth.SignInEvent
		kind    Kind
		outcome Outcome
		agent   string
	}{
		{auth.SignInEvent{Outcome: auth.SignInSucceeded, UserID: "u1", Role: auth.RoleNurse, PractitionerID: "p1", At: at}, KindLogin, OutcomeSuccess, "Practitioner/p1"},
		{auth.SignInEvent{Outcome: auth.SignedOut, UserID: "u2", Role: auth.RolePatient, PatientID: "pt", At: at}, KindLogout, OutcomeSuccess, "Patient/pt"},
		{auth.SignInEvent{Outcome: auth.SignInWrongPassword, Username: "eve", At: at}, KindLoginFailed, OutcomeSeriousFailure, ""},
	}
	for _, tt := range tests {
		e := SignInEvent(tt.in)
		if e.Kind != tt.kind || e.Outcome != tt.outcome || e.Agent.Reference != tt.agent || !e.Time.Equal(at) {
			t.Errorf("%s: got %s outcome %d agent %q", tt.in.Outcome, e.Kind, e.Outcome, e.Agent.Reference)
		}
		if tt.kind == KindLoginFailed && (e.OutcomeDesc != "wrong-password" || e.Agent.Name != "eve") {
			t.Errorf("a failed sign-in keeps its reason and the typed name: %+v", e)
		}
	}
}
