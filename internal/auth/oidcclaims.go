package auth

import (
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// principal maps a provider token's verified claims to a Principal, by the
// claim names of the config:
//
//   - sub is required and becomes Subject;
//   - the role claim (string or array) must yield exactly one vidda role,
//     through RoleMap when it is set;
//   - a patient needs the patient claim, a nurse or clinician the
//     practitioner claim (a FHIR id, or "Patient/id", "Practitioner/id");
//   - SMART resource scopes in the scope claim must all parse; without
//     any, the role's DefaultScopes apply;
//   - client_id (or azp), jti and exp are kept for audit and the cache.
//
// Messages name claims by their configured names, never quote their values.
func (v *OIDCVerifier) principal(c jwt.MapClaims) (*Principal, error) {
	sub, _ := c["sub"].(string)
	if sub == "" {
		return nil, unauthenticated("missing subject")
	}
	role, err := v.role(c)
	if err != nil {
		return nil, err
	}
	patient, err := idClaim(c, v.cfg.PatientClaim, "Patient")
	if err != nil {
		return nil, err
	}
	practitioner, err := idClaim(c, v.cfg.PractitionerClaim, "Practitioner")
	if err != nil {
		return nil, err
	}
	switch role {
	case RolePatient:
		if patient == "" {
			return nil, unauthenticated(fmt.Sprintf("a patient token needs the %q claim naming the patient", v.cfg.PatientClaim))
		}
	case RoleNurse, RoleClinician:
		if practitioner == "" {
			return nil, unauthenticated(fmt.Sprintf("a %s token needs the %q claim naming the practitioner", role, v.cfg.PractitionerClaim))
		}
	case RoleAdmin, RoleSystem:
	}
	scopes, err := v.scopes(c, role)
	if err != nil {
		return nil, err
	}
	clientID, _ := c["client_id"].(string)
	if clientID == "" {
		clientID, _ = c["azp"].(string)
	}
	jti, _ := c["jti"].(string)
	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, unauthenticated("missing required claim")
	}
	return &Principal{
		Subject:        sub,
		Role:           role,
		Scopes:         scopes,
		PatientID:      patient,
		PractitionerID: practitioner,
		ClientID:       clientID,
		TokenID:        jti,
		ExpiresAt:      exp.Time,
		Issuer:         v.cfg.Issuer,
	}, nil
}

// role reads the role claim: every value that maps to a vidda role counts,
// others (offline_access, a provider's default roles) are ignored, and
// exactly one distinct vidda role must remain. A user who is both nurse and
// clinician at the provider is refused rather than given either.
func (v *OIDCVerifier) role(c jwt.MapClaims) (Role, error) {
	name := v.cfg.RoleClaim
	values, ok := stringsClaim(claimValue(c, name))
	if !ok {
		return "", unauthenticated(fmt.Sprintf("the %q claim must be a string or an array of strings", name))
	}
	var found Role
	for _, val := range values {
		r, ok := v.mapRole(val)
		if !ok {
			continue
		}
		if found != "" && found != r {
			return "", unauthenticated(fmt.Sprintf("the %q claim maps to more than one vidda role (%s and %s)", name, found, r))
		}
		found = r
	}
	if found == "" {
		return "", unauthenticated(fmt.Sprintf("the %q claim names no vidda role", name))
	}
	return found, nil
}

func (v *OIDCVerifier) mapRole(val string) (Role, bool) {
	if len(v.cfg.RoleMap) > 0 {
		r, ok := v.cfg.RoleMap[val]
		return r, ok
	}
	r, err := ParseRole(val)
	return r, err == nil
}

// scopes reads the SMART resource scopes of the scope claim. Other scopes
// (openid, profile, launch/patient, fhirUser, offline_access) are not
// resource scopes and are skipped. A resource scope vidda cannot parse
// refuses the token: dropping it might widen the grant to the role's
// defaults.
func (v *OIDCVerifier) scopes(c jwt.MapClaims, role Role) ([]Scope, error) {
	raw := claimValue(c, v.cfg.ScopeClaim)
	var fields []string
	switch s := raw.(type) {
	case string:
		fields = strings.Fields(s)
	default:
		list, ok := stringsClaim(raw)
		if !ok {
			return nil, unauthenticated(fmt.Sprintf("the %q claim must be a string or an array of strings", v.cfg.ScopeClaim))
		}
		fields = list
	}
	var scopes []Scope
	for _, f := range fields {
		if !isResourceScope(f) {
			continue
		}
		sc, err := ParseScope(f)
		if err != nil {
			return nil, unauthenticated("invalid scope")
		}
		scopes = append(scopes, sc)
	}
	if len(scopes) > 0 {
		return scopes, nil
	}
	for _, f := range role.DefaultScopes() {
		sc, err := ParseScope(f)
		if err != nil {
			return nil, fmt.Errorf("default scope %q of %s: %w", f, role, err)
		}
		scopes = append(scopes, sc)
	}
	return scopes, nil
}

// isResourceScope reports whether s has the shape of a SMART resource scope.
func isResourceScope(s string) bool {
	ctx, _, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	switch ScopeContext(ctx) {
	case ContextPatient, ContextUser, ContextSystem:
		return true
	}
	return false
}

// claimValue returns the claim called name; when there is none and name
// has dots, it follows them through nested objects ("realm_access.roles").
// A claim whose own name has dots (a namespaced "https://x.example/role")
// is found by its full name first.
func claimValue(c jwt.MapClaims, name string) any {
	if v, ok := c[name]; ok {
		return v
	}
	if !strings.Contains(name, ".") {
		return nil
	}
	var cur any = map[string]any(c)
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// stringsClaim reads a claim that is a string or an array of strings;
// absent is an empty list.
func stringsClaim(v any) ([]string, bool) {
	switch t := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{t}, true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// idClaim reads a claim holding a FHIR id, bare or as a relative reference
// "Type/id"; absent is "".
func idClaim(c jwt.MapClaims, name, typ string) (string, error) {
	raw := claimValue(c, name)
	if raw == nil {
		return "", nil
	}
	s, ok := raw.(string)
	if !ok {
		return "", unauthenticated(fmt.Sprintf("the %q claim must be a string", name))
	}
	s = strings.TrimPrefix(s, typ+"/")
	if !isFHIRID(s) {
		return "", unauthenticated(fmt.Sprintf("the %q claim is not a FHIR %s id", name, typ))
	}
	return s, nil
}
