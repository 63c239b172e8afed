package httpapi

import (
	"fmt"
	"slices"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// capabilityStatement is generated from the registries the routes serve, so
// it lists exactly the types, interactions and parameters that work.
func capabilityStatement(types *fhir.Registry, params *search.Registry, base, version string) ([]byte, error) {
	c := fhir.Capabilities{
		Software: "Vidda", Version: version, BaseURL: base, Date: time.Now().UTC(),
		SecurityService:    "SMART-on-FHIR",
		SystemInteractions: []string{"transaction", "batch"},
	}
	for _, typ := range types.Types() {
		def := params.Definition(typ)
		if def == nil {
			continue
		}
		rc := fhir.ResourceCapability{
			Type:              typ,
			Interactions:      []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"},
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
	b, err := fhir.CapabilityStatement(c)
	if err != nil {
		return nil, fmt.Errorf("capability statement: %w", err)
	}
	return b, nil
}
