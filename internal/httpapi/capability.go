package httpapi

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// capabilityStatement is generated from the registries the routes serve, so
// it lists exactly the types, interactions and parameters that work, and
// the Bulk Data export operations when they are served.
func capabilityStatement(types *fhir.Registry, params *search.Registry, base, version string, exports bool) ([]byte, error) {
	c := fhir.Capabilities{
		Software: "Vidda", Version: version, BaseURL: base, Date: time.Now().UTC(),
		SecurityService: "SMART-on-FHIR",
		SecurityDescription: "Bearer tokens: SMART Backend Services (client_credentials with a private_key_jwt assertion at the token URL), " +
			"vidda's own tokens and, when configured, an OpenID Connect provider's. Browsers sign in at /login.",
		TokenURL:           strings.TrimSuffix(base, "/fhir") + tokenPath,
		SystemInteractions: []string{"transaction", "batch"},
	}
	for _, typ := range types.Types() {
		def := params.Definition(typ)
		if def == nil {
			continue
		}
		interactions := []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
		if typ == "AuditEvent" {
			// Written by vidda only (auth.decideAudit).
			interactions = []string{"read", "vread", "history-instance", "history-type", "search-type"}
		}
		rc := fhir.ResourceCapability{
			Type:              typ,
			Interactions:      interactions,
			Versioning:        "versioned-update",
			ConditionalCreate: true,
			ConditionalDelete: "not-supported",
			ReadHistory:       true,
		}
		for _, p := range slices.Concat(def.Params, params.Common()) {
			rc.SearchParams = append(rc.SearchParams, fhir.SearchParamCapability{Name: p.Name, Type: string(p.Kind), Documentation: p.Doc})
		}
		c.Resources = append(c.Resources, rc)
	}
	if exports {
		declareExport(&c)
	}
	b, err := fhir.CapabilityStatement(c)
	if err != nil {
		return nil, fmt.Errorf("capability statement: %w", err)
	}
	return b, nil
}
