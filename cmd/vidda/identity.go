package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/httpapi"
)

// oidcSettings are the serve flags of an external OpenID Connect provider.
type oidcSettings struct {
	cfg     auth.OIDCConfig
	roleMap string
}

func bindOIDC(cs *config.Set, o *oidcSettings) {
	cs.String(&o.cfg.Issuer, "oidc-issuer", "VIDDA_OIDC_ISSUER", "", "accept access tokens of this OpenID Connect issuer (unset: off)")
	cs.String(&o.cfg.Audience, "oidc-audience", "VIDDA_OIDC_AUDIENCE", "", "aud the provider's tokens must carry (required with --oidc-issuer)")
	cs.String(&o.cfg.RoleClaim, "oidc-role-claim", "VIDDA_OIDC_ROLE_CLAIM", auth.DefaultOIDCRoleClaim, "claim holding the role (string or array; a.b for nested)")
	cs.String(&o.roleMap, "oidc-role-map", "VIDDA_OIDC_ROLE_MAP", "", "provider role values to vidda roles: idp-nurse=nurse,idp-doc=clinician")
	cs.String(&o.cfg.PatientClaim, "oidc-patient-claim", "VIDDA_OIDC_PATIENT_CLAIM", auth.DefaultOIDCPatientClaim, "claim holding a patient's FHIR id")
	cs.String(&o.cfg.PractitionerClaim, "oidc-practitioner-claim", "VIDDA_OIDC_PRACTITIONER_CLAIM", auth.DefaultOIDCPractitionerClaim, "claim holding a nurse's or clinician's Practitioner id")
	cs.String(&o.cfg.ScopeClaim, "oidc-scope-claim", "VIDDA_OIDC_SCOPE_CLAIM", auth.DefaultOIDCScopeClaim, "claim holding SMART scopes (absent: the role's defaults)")
}

// validate reads the role map and checks the settings.
func (o *oidcSettings) validate() error {
	m, err := auth.ParseRoleMap(o.roleMap)
	if err != nil {
		return fmt.Errorf("VIDDA_OIDC_ROLE_MAP: %w", err)
	}
	o.cfg.RoleMap = m
	return o.cfg.Validate()
}

// tokenVerifier is vidda's own KeyStore, or, with a provider configured,
// a router sending the provider's tokens to an OIDCVerifier and the rest to
// the KeyStore. run keeps the provider's keys until its context ends; nil
// when there is no provider.
func (o *oidcSettings) tokenVerifier(keys *auth.KeyStore, log *slog.Logger) (httpapi.Verifier, func(context.Context) error, error) {
	if !o.cfg.Enabled() {
		return keys, nil, nil
	}
	ov, err := auth.NewOIDCVerifier(o.cfg, log)
	if err != nil {
		return nil, nil, err
	}
	router, err := auth.NewIssuerRouter(keys, map[string]auth.TokenVerifier{ov.Issuer(): ov})
	if err != nil {
		return nil, nil, err
	}
	return router, ov.Run, nil
}
