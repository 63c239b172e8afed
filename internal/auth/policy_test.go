package auth

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func allInteractions() []Interaction {
	return []Interaction{
		InteractionRead, InteractionVRead, InteractionSearch, InteractionHistory,
		InteractionCreate, InteractionUpdate, InteractionDelete,
	}
}

func principal(t *testing.T, role Role, patient string, scopes ...string) *Principal {
	t.Helper()
	if len(scopes) == 0 {
		scopes = role.DefaultScopes()
	}
	p := &Principal{Subject: "s", Role: role, PatientID: patient}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Scopes = append(p.Scopes, sc)
	}
	return p
}

// TestDecideMatrix walks every role with its default scopes through every
// interaction on a type inside the patient compartment (Observation) and
// one outside it (Organization).
func TestDecideMatrix(t *testing.T) {
	reads := []Interaction{InteractionRead, InteractionVRead, InteractionSearch, InteractionHistory}
	tests := []struct {
		role        Role
		patient     string
		compartment bool
		allowed     []Interaction // the rest are denied
		wantPatient string        // Decision.PatientID when allowed
	}{
		{RolePatient, "p1", true, reads, "p1"},
		{RolePatient, "p1", false, nil, ""},
		{RoleNurse, "", true, allInteractions(), ""},
		{RoleNurse, "", false, allInteractions(), ""},
		{RoleClinician, "", true, allInteractions(), ""},
		{RoleClinician, "", false, allInteractions(), ""},
		{RoleAdmin, "", true, allInteractions(), ""},
		{RoleAdmin, "", false, allInteractions(), ""},
		{RoleSystem, "", true, reads, ""},
		{RoleSystem, "", false, reads, ""},
	}
	for _, tt := range tests {
		p := principal(t, tt.role, tt.patient)
		typ := map[bool]string{true: "Observation", false: "Organization"}[tt.compartment]
		for _, i := range allInteractions() {
			allow := slices.Contains(tt.allowed, i)
			verdict := map[bool]string{true: "may", false: "may not"}[allow]
			t.Run(fmt.Sprintf("%s %s %s %s", withArticle(tt.role), verdict, i, typ), func(t *testing.T) {
				d, err := Decide(p, Action{Interaction: i, ResourceType: typ, InPatientCompartment: tt.compartment})
				if !allow {
					if !errors.Is(err, ErrForbidden) {
						t.Fatalf("got %+v, %v; want ErrForbidden", d, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if d.PatientID != tt.wantPatient {
					t.Fatalf("Decision.PatientID = %q, want %q", d.PatientID, tt.wantPatient)
				}
			})
		}
	}
}

func TestDecide(t *testing.T) {
	obs := func(i Interaction) Action {
		return Action{Interaction: i, ResourceType: "Observation", InPatientCompartment: true}
	}
	tests := []struct {
		name        string
		p           *Principal
		a           Action
		wantErr     error
		wantPatient string
	}{
		{"nobody is unauthenticated", nil, obs(InteractionRead), ErrUnauthenticated, ""},
		{"a patient without a patient id is forbidden", principal(t, RolePatient, ""), obs(InteractionRead), ErrForbidden, ""},
		{
			"a patient with a write scope may create in their compartment",
			principal(t, RolePatient, "p1", "patient/Observation.cruds"), obs(InteractionCreate), nil, "p1",
		},
		{
			"a patient with a write scope may not create outside their compartment",
			principal(t, RolePatient, "p1", "patient/*.write"),
			Action{Interaction: InteractionCreate, ResourceType: "Organization"},
			ErrForbidden, "",
		},
		{"a patient's user scope counts for nothing", principal(t, RolePatient, "p1", "user/*.*"), obs(InteractionRead), ErrForbidden, ""},
		{
			"a patient's type scope does not reach another type",
			principal(t, RolePatient, "p1", "patient/Observation.read"),
			Action{Interaction: InteractionRead, ResourceType: "Condition", InPatientCompartment: true},
			ErrForbidden, "",
		},
		{
			"a patient may read their own Patient resource",
			principal(t, RolePatient, "p1"),
			Action{Interaction: InteractionRead, ResourceType: "Patient", InPatientCompartment: true},
			nil, "p1",
		},
		{"v2 read without search does not allow search", principal(t, RolePatient, "p1", "patient/Observation.r"), obs(InteractionSearch), ErrForbidden, ""},
		{"v2 read without search does not allow history", principal(t, RolePatient, "p1", "patient/Observation.r"), obs(InteractionHistory), ErrForbidden, ""},
		{"v2 search without read does not allow read", principal(t, RolePatient, "p1", "patient/Observation.s"), obs(InteractionRead), ErrForbidden, ""},
		{
			"a clinician in a patient launch is held to that patient",
			principal(t, RoleClinician, "p2", "patient/*.read"), obs(InteractionSearch), nil, "p2",
		},
		{
			"a clinician with patient scopes but no patient is forbidden",
			principal(t, RoleClinician, "", "patient/*.read"), obs(InteractionSearch), ErrForbidden, "",
		},
		{
			"a clinician's user scope outranks their patient scope",
			principal(t, RoleClinician, "p2", "patient/*.read", "user/Observation.rs"), obs(InteractionSearch), nil, "",
		},
		{
			"a clinician's patient scope still grants what the user scope does not",
			principal(t, RoleClinician, "p2", "patient/*.*", "user/Observation.rs"), obs(InteractionCreate), nil, "p2",
		},
		{"a nurse's system scope counts for nothing", principal(t, RoleNurse, "", "system/*.*"), obs(InteractionRead), ErrForbidden, ""},
		{"a system client's user scope counts for nothing", principal(t, RoleSystem, "", "user/*.*"), obs(InteractionRead), ErrForbidden, ""},
		{"a system client's patient scope counts for nothing", principal(t, RoleSystem, "p1", "patient/*.*"), obs(InteractionRead), ErrForbidden, ""},
		{"a system client with write may update", principal(t, RoleSystem, "", "system/Observation.write"), obs(InteractionUpdate), nil, ""},
		{
			"a typed scope does not cover a system-wide search",
			principal(t, RoleSystem, "", "system/Observation.read"),
			Action{Interaction: InteractionSearch},
			ErrForbidden, "",
		},
		{
			"a wildcard scope covers a system-wide search",
			principal(t, RoleSystem, "", "system/*.read"),
			Action{Interaction: InteractionSearch},
			nil, "",
		},
		{"an unknown role is forbidden", &Principal{Role: "root", Scopes: principal(t, RoleAdmin, "").Scopes}, obs(InteractionRead), ErrForbidden, ""},
		{"an unknown interaction is forbidden", principal(t, RoleAdmin, ""), obs("patch"), ErrForbidden, ""},
		{"a principal without scopes is forbidden", &Principal{Role: RoleAdmin}, obs(InteractionRead), ErrForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(tt.p, tt.a)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %+v, %v; want %v", d, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.PatientID != tt.wantPatient {
				t.Fatalf("Decision.PatientID = %q, want %q", d.PatientID, tt.wantPatient)
			}
		})
	}
}

func withArticle(r Role) string {
	if r == RoleAdmin {
		return "an admin"
	}
	return "a " + string(r)
}

func TestCareTeamsBoundStaffWithAPractitioner(t *testing.T) {
	obs := Action{Interaction: InteractionSearch, ResourceType: "Observation", InPatientCompartment: true}
	tests := []struct {
		name         string
		role         Role
		practitioner string
		action       Action
		wantCareOf   string
	}{
		{"a nurse acting as a practitioner reaches that practitioner's care teams", RoleNurse, "n1", obs, "Practitioner/n1"},
		{"a clinician acting as a practitioner reaches that practitioner's care teams", RoleClinician, "c1", obs, "Practitioner/c1"},
		{"an operator's nurse token without a practitioner is clinic-wide", RoleNurse, "", obs, ""},
		{"an admin is never bound to a care team", RoleAdmin, "a1", obs, ""},
		{"creating a patient is not bound to a care team", RoleNurse, "n1", Action{Interaction: InteractionCreate, ResourceType: "Patient", InPatientCompartment: true}, ""},
		{"updating a patient is", RoleNurse, "n1", Action{Interaction: InteractionUpdate, ResourceType: "Patient", InPatientCompartment: true}, "Practitioner/n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := principal(t, tt.role, "")
			p.PractitionerID = tt.practitioner
			d, err := Decide(p, tt.action)
			if err != nil {
				t.Fatal(err)
			}
			if d.CareOf != tt.wantCareOf || d.PatientID != "" {
				t.Errorf("Decision = %+v, want CareOf %q", d, tt.wantCareOf)
			}
		})
	}
}

func TestAuditEventsAreReadByAdminsAndWrittenByNobody(t *testing.T) {
	for _, role := range []Role{RolePatient, RoleNurse, RoleClinician, RoleAdmin, RoleSystem} {
		p := principal(t, role, "p1", "patient/*.*", "user/*.*", "system/*.*")
		for _, i := range allInteractions() {
			read := i == InteractionRead || i == InteractionVRead || i == InteractionSearch || i == InteractionHistory
			allow := read && (role == RoleAdmin || role == RoleSystem)
			t.Run(fmt.Sprintf("%s %s AuditEvent: %v", withArticle(role), i, allow), func(t *testing.T) {
				_, err := Decide(p, Action{Interaction: i, ResourceType: "AuditEvent", InPatientCompartment: true})
				if allow != (err == nil) {
					t.Fatalf("got %v", err)
				}
				if err != nil && !errors.Is(err, ErrForbidden) {
					t.Fatalf("got %v, want ErrForbidden", err)
				}
			})
		}
	}
}

func TestSubscriptionsAreForAdminsAndSystemClientsOnly(t *testing.T) {
	for _, role := range []Role{RolePatient, RoleNurse, RoleClinician, RoleAdmin, RoleSystem} {
		p := principal(t, role, "p1", "patient/*.*", "user/*.*", "system/*.*")
		for _, i := range allInteractions() {
			allow := role == RoleAdmin || role == RoleSystem
			t.Run(fmt.Sprintf("%s %s Subscription: %v", withArticle(role), i, allow), func(t *testing.T) {
				_, err := Decide(p, Action{Interaction: i, ResourceType: "Subscription"})
				if allow != (err == nil) {
					t.Fatalf("got %v", err)
				}
				if err != nil && !errors.Is(err, ErrForbidden) {
					t.Fatalf("got %v, want ErrForbidden", err)
				}
			})
		}
	}
}
