package auth

import "time"

// Principal is who made a request, as a verified token says.
type Principal struct {
	// Subject is the token's sub: a user id, or a client id for system.
	Subject string
	// Role decides which of Scopes count (see Decide).
	Role Role
	// Scopes are the SMART resource scopes granted.
	Scopes []Scope
	// PatientID is the patient in context: the patient themself for the
	// patient role, the launch patient for staff with patient/ scopes.
	PatientID string
	// PractitionerID is the Practitioner a staff user acts as, if any.
	PractitionerID string
	// ClientID is the OAuth client the token was issued to, if any.
	ClientID string
	// TokenID is the token's jti, for audit.
	TokenID string
	// ExpiresAt is when the token stops being accepted (before leeway).
	ExpiresAt time.Time
	// Issuer is the external identity provider that vouched for the
	// principal (an OIDCConfig.Issuer); "" for vidda's own tokens.
	Issuer string
}
