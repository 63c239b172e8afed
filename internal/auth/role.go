package auth

import "fmt"

// Role is what a principal is to vidda; with its scopes it decides what the
// principal may do (see Decide).
type Role string

// The roles. A patient acts on their own record only; nurses, clinicians and
// admins are staff; system is another program (an EHR, SMART Backend
// Services).
const (
	RoleAdmin     Role = "admin"
	RoleClinician Role = "clinician"
	RoleNurse     Role = "nurse"
	RolePatient   Role = "patient"
	RoleSystem    Role = "system"
)

// ParseRole returns the role named s (exactly, in lower case).
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleClinician, RoleNurse, RolePatient, RoleSystem:
		return r, nil
	}
	return "", fmt.Errorf("%w: %q", ErrInvalidRole, truncate(s))
}

// DefaultScopes are the scopes a token of this role gets when none are
// asked for; nil for an unknown role.
func (r Role) DefaultScopes() []string {
	switch r {
	case RolePatient:
		return []string{"patient/*.read"}
	case RoleNurse, RoleClinician, RoleAdmin:
		return []string{"user/*.*"}
	case RoleSystem:
		return []string{"system/*.read"}
	}
	return nil
}

// truncate keeps client-supplied text in error messages short.
func truncate(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
