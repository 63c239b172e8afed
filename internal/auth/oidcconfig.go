package auth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of OIDCConfig.
const (
	DefaultOIDCRoleClaim         = "vidda_role"
	DefaultOIDCPatientClaim      = "patient"
	DefaultOIDCPractitionerClaim = "practitioner"
	DefaultOIDCScopeClaim        = "scope"
	// DefaultOIDCRefreshInterval is how often the JWKS is fetched even when
	// no token names an unknown key, so that a key the provider withdrew
	// stops verifying.
	DefaultOIDCRefreshInterval = time.Hour
	// DefaultOIDCUnknownKIDRefresh is the least time between two fetches of
	// the JWKS caused by tokens naming a key not in it: a provider's new key
	// is picked up within it, and a flood of forged kids costs the provider
	// at most one request per interval.
	DefaultOIDCUnknownKIDRefresh = 30 * time.Second
	// DefaultOIDCHTTPTimeout bounds one request to the provider.
	DefaultOIDCHTTPTimeout = 10 * time.Second
)

// OIDCConfig says which external OpenID Connect provider's access tokens
// vidda accepts, and how their claims become a Principal. Zero fields take
// their defaults; an empty Issuer turns external identity off.
type OIDCConfig struct {
	// Issuer is the provider's issuer identifier, exactly as its tokens'
	// iss and its discovery document's issuer spell it (VIDDA_OIDC_ISSUER).
	// It must be https, or http on a loopback host for development.
	Issuer string
	// Audience is the aud a token must carry to be accepted here
	// (VIDDA_OIDC_AUDIENCE); required with Issuer.
	Audience string
	// RoleClaim names the claim holding the user's role: a string or an
	// array of strings (VIDDA_OIDC_ROLE_CLAIM). A name with dots that is
	// not itself a claim is a path into nested objects
	// ("realm_access.roles").
	RoleClaim string
	// RoleMap maps the provider's role values to vidda roles
	// (VIDDA_OIDC_ROLE_MAP, see ParseRoleMap). When it is empty, values
	// that are vidda role names count as themselves; when it is set, only
	// the values it maps count.
	RoleMap map[string]Role
	// PatientClaim names the claim holding the patient's FHIR id (required
	// for the patient role).
	PatientClaim string
	// PractitionerClaim names the claim holding the Practitioner id a
	// nurse or clinician acts as (required for those roles).
	PractitionerClaim string
	// ScopeClaim names the claim holding SMART scopes, space separated or
	// as an array. When it holds no SMART resource scope (absent, or only
	// openid, profile and the like) the role's DefaultScopes apply, as for
	// `vidda token`.
	ScopeClaim string
	// RefreshInterval is how often the JWKS is fetched regardless.
	RefreshInterval time.Duration
	// UnknownKIDRefresh is the least time between fetches of the JWKS
	// caused by unknown kids.
	UnknownKIDRefresh time.Duration
	// HTTPTimeout bounds each request to the provider.
	HTTPTimeout time.Duration
	// HTTPClient makes the requests to the provider; nil means one with
	// HTTPTimeout and the system's roots. Tests set it.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Enabled reports whether an external provider is configured.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

// Validate reports a configuration that cannot work. A disabled config is
// valid.
func (c OIDCConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if err := checkProviderURL(c.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("VIDDA_OIDC_ISSUER: %w", err))
	} else if u, _ := url.Parse(c.Issuer); u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("VIDDA_OIDC_ISSUER: an issuer has no query or fragment"))
	}
	if c.Issuer == DefaultIssuer {
		errs = append(errs, errors.New("VIDDA_OIDC_ISSUER: must differ from vidda's own issuer"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("VIDDA_OIDC_AUDIENCE: required when VIDDA_OIDC_ISSUER is set"))
	}
	for idp, r := range c.RoleMap {
		if _, err := ParseRole(string(r)); err != nil || idp == "" {
			errs = append(errs, fmt.Errorf("VIDDA_OIDC_ROLE_MAP: %q=%q is not a mapping to a vidda role", idp, r))
		}
	}
	for _, d := range []time.Duration{c.RefreshInterval, c.UnknownKIDRefresh, c.HTTPTimeout} {
		if d < 0 {
			errs = append(errs, errors.New("auth: OIDC intervals and timeouts must not be negative"))
			break
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (c OIDCConfig) withDefaults() OIDCConfig {
	if c.RoleClaim == "" {
		c.RoleClaim = DefaultOIDCRoleClaim
	}
	if c.PatientClaim == "" {
		c.PatientClaim = DefaultOIDCPatientClaim
	}
	if c.PractitionerClaim == "" {
		c.PractitionerClaim = DefaultOIDCPractitionerClaim
	}
	if c.ScopeClaim == "" {
		c.ScopeClaim = DefaultOIDCScopeClaim
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultOIDCRefreshInterval
	}
	if c.UnknownKIDRefresh <= 0 {
		c.UnknownKIDRefresh = DefaultOIDCUnknownKIDRefresh
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = DefaultOIDCHTTPTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ParseRoleMap reads "idp-nurse=nurse,idp-doc=clinician": comma-separated
// pairs of a provider's role value and the vidda role it means. Several
// provider values may map to one role; a value may appear once. Spaces
// around names are ignored; "" gives an empty map.
func ParseRoleMap(s string) (map[string]Role, error) {
	out := map[string]Role{}
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		idp, role, ok := strings.Cut(pair, "=")
		idp, role = strings.TrimSpace(idp), strings.TrimSpace(role)
		if !ok || idp == "" {
			return nil, fmt.Errorf("role map: %q is not provider-value=vidda-role", truncate(pair))
		}
		r, err := ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("role map: %q: %w", truncate(idp), err)
		}
		if _, dup := out[idp]; dup {
			return nil, fmt.Errorf("role map: %q is mapped twice", truncate(idp))
		}
		out[idp] = r
	}
	return out, nil
}

// checkProviderURL accepts https URLs, and http ones on a loopback host (a
// provider on the developer's machine). Tokens are only as trustworthy as
// the channel their keys came over.
func checkProviderURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(s))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only on a loopback host", truncate(s))
	}
	return fmt.Errorf("%q is not an http(s) URL", truncate(s))
}
