package auth

import (
	"errors"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Scope
	}{
		{"v1 read on a type grants read and search", "patient/Observation.read", Scope{ContextPatient, "Observation", PermRead | PermSearch}},
		{"v1 write grants create update and delete", "system/*.write", Scope{ContextSystem, "*", PermCreate | PermUpdate | PermDelete}},
		{"v1 star grants everything", "user/*.*", Scope{ContextUser, "*", PermAll}},
		{"v2 rs on a type", "patient/Observation.rs", Scope{ContextPatient, "Observation", PermRead | PermSearch}},
		{"v2 cruds is everything", "user/*.cruds", Scope{ContextUser, "*", PermAll}},
		{"v2 single letter", "system/Patient.d", Scope{ContextSystem, "Patient", PermDelete}},
		{"v2 letters may skip", "user/Encounter.cud", Scope{ContextUser, "Encounter", PermCreate | PermUpdate | PermDelete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseScope(got.String())
			if err != nil || again != got {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseScopeRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"an empty string", ""},
		{"a scope without a context", "Observation.read"},
		{"an unknown context", "practitioner/Observation.read"},
		{"a context in upper case", "Patient/Observation.read"},
		{"a scope without permissions", "patient/Observation"},
		{"empty permissions", "patient/Observation."},
		{"a lower-case type", "patient/observation.read"},
		{"an empty type", "patient/.read"},
		{"a type with a dot", "patient/Obs.ervation.read"},
		{"v2 letters out of order", "patient/Observation.sr"},
		{"a repeated v2 letter", "patient/Observation.rr"},
		{"an unknown letter", "patient/Observation.rx"},
		{"v1 and v2 mixed", "patient/*.readc"},
		{"a granular v2 scope", "patient/Observation.rs?category=vital-signs"},
		{"an identity scope", "openid"},
		{"a launch scope", "launch/patient"},
		{"trailing space", "user/*.* "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := ParseScope(tt.in); !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("ParseScope(%q) = %+v, %v; want ErrInvalidScope", tt.in, got, err)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range []Role{RoleAdmin, RoleClinician, RoleNurse, RolePatient, RoleSystem} {
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
		for _, s := range r.DefaultScopes() {
			if _, err := ParseScope(s); err != nil {
				t.Errorf("default scope of %s: %v", r, err)
			}
		}
	}
	for _, s := range []string{"", "Admin", "root", "patient "} {
		if _, err := ParseRole(s); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ParseRole(%q): got %v, want ErrInvalidRole", s, err)
		}
	}
}
