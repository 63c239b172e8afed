package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Capabilities is what the server really supports. The HTTP edge fills it
// from the routes, the registry and the search-parameter table it wired, so
// the CapabilityStatement cannot promise more than the server does.
type Capabilities struct {
	// Software and Version name the server software (CapabilityStatement.software).
	Software, Version string
	// BaseURL is the FHIR base, e.g. https://vidda.example/fhir
	// (CapabilityStatement.implementation.url).
	BaseURL string
	// Date is when this statement was last changed, e.g. the build time.
	Date time.Time
	// Resources lists the served types in the order to publish them.
	Resources []ResourceCapability
	// SystemInteractions lists whole-system interactions: transaction,
	// batch, search-system, history-system. Optional.
	SystemInteractions []string
	// SecurityService is a restful-security-service code: "SMART-on-FHIR",
	// "OAuth", "Basic", "Certificates", "Kerberos" or "NTLM". Optional.
	SecurityService string
	// SecurityDescription explains security in prose. Optional.
	SecurityDescription string
	// CORS reports whether the server answers CORS requests.
	CORS bool
	// TokenURL and AuthorizeURL are the OAuth endpoints, published with the
	// SMART oauth-uris extension when set.
	TokenURL, AuthorizeURL string
	// Instantiates lists the canonical URLs of CapabilityStatements this
	// server implements, e.g. Bulk Data's. Optional.
	Instantiates []string
	// Operations are the whole-system operations (rest.operation), e.g.
	// $export. Optional.
	Operations []OperationCapability
}

// OperationCapability is one supported operation.
type OperationCapability struct {
	// Name is the operation's name without "$", e.g. "export".
	Name string
	// Definition is the canonical URL of its OperationDefinition.
	Definition string
}

// ResourceCapability is what the server supports for one resource type.
type ResourceCapability struct {
	// Type is the resource type, e.g. "Observation".
	Type string
	// Interactions: read, vread, update, patch, delete, history-instance,
	// history-type, create, search-type.
	Interactions []string
	// Versioning: no-version, versioned or versioned-update; "" leaves it out.
	Versioning string
	// ConditionalCreate reports If-None-Exist support.
	ConditionalCreate bool
	// ConditionalDelete: not-supported, single or multiple; "" leaves it out.
	ConditionalDelete string
	// ReadHistory reports whether vread of past versions works.
	ReadHistory bool
	// SearchParams lists the search parameters in the order to publish them.
	SearchParams []SearchParamCapability
	// Operations are the type's operations (rest.resource.operation).
	Operations []OperationCapability
}

// SearchParamCapability is one supported search parameter.
type SearchParamCapability struct {
	// Name is the parameter name as used in the query, e.g. "patient".
	Name string
	// Type is number, date, string, token, reference, composite, quantity,
	// uri or special.
	Type string
	// Documentation says anything particular about the server's support.
	Documentation string
}

// errCapability is wrapped by every CapabilityStatement input error.
var errCapability = errors.New("invalid capabilities")

// allowedCodes returns the R4 value sets CapabilityStatement codes must come
// from.
func allowedCodes() map[string][]string {
	return map[string][]string{
		"interaction": {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"},
		"system":      {"transaction", "batch", "search-system", "history-system"},
		"versioning":  {"no-version", "versioned", "versioned-update"},
		"delete":      {"not-supported", "single", "multiple"},
		"param":       {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"},
		"security":    {"OAuth", "SMART-on-FHIR", "NTLM", "Basic", "Kerberos", "Certificates"},
	}
}

// CapabilityStatement builds the server's CapabilityStatement: FHIR 4.0.1,
// kind instance, status active, format json, with exactly the resources,
// interactions and search parameters given. Values outside the R4 value
// sets, duplicate types or parameters, and missing software, base URL or
// date are errors, so a wiring mistake fails at start-up instead of being
// published.
func CapabilityStatement(c Capabilities) ([]byte, error) {
	if err := c.validate(allowedCodes()); err != nil {
		return nil, fmt.Errorf("capability statement: %w", err)
	}
	cs := capabilityJSON{
		ResourceType:   "CapabilityStatement",
		Status:         "active",
		Date:           c.Date.UTC().Format(time.RFC3339),
		Kind:           "instance",
		Software:       &softwareJSON{Name: c.Software, Version: c.Version},
		Implementation: &implementationJSON{Description: c.Software, URL: c.BaseURL},
		FHIRVersion:    "4.0.1",
		Format:         []string{"json"},
		Instantiates:   c.Instantiates,
	}
	rest := restJSON{Mode: "server", Resource: make([]resourceJSON, 0, len(c.Resources))}
	if c.SecurityService != "" || c.CORS || c.SecurityDescription != "" || c.TokenURL != "" || c.AuthorizeURL != "" {
		rest.Security = c.security()
	}
	for _, r := range c.Resources {
		rj := resourceJSON{
			Type:              r.Type,
			Versioning:        r.Versioning,
			ReadHistory:       r.ReadHistory,
			ConditionalCreate: r.ConditionalCreate,
			ConditionalDelete: r.ConditionalDelete,
		}
		for _, i := range r.Interactions {
			rj.Interaction = append(rj.Interaction, codeJSON{Code: i})
		}
		for _, p := range r.SearchParams {
			rj.SearchParam = append(rj.SearchParam, searchParamJSON(p))
		}
		rj.Operation = operationsJSON(r.Operations)
		rest.Resource = append(rest.Resource, rj)
	}
	rest.Operation = operationsJSON(c.Operations)
	for _, i := range c.SystemInteractions {
		rest.Interaction = append(rest.Interaction, codeJSON{Code: i})
	}
	cs.Rest = []restJSON{rest}
	b, err := json.Marshal(cs)
	if err != nil {
		return nil, fmt.Errorf("capability statement: %w", err)
	}
	return b, nil
}

func (c *Capabilities) validate(codes map[string][]string) error {
	switch {
	case c.Software == "":
		return fmt.Errorf("%w: software name is empty", errCapability)
	case c.BaseURL == "":
		return fmt.Errorf("%w: base URL is empty", errCapability)
	case c.Date.IsZero():
		return fmt.Errorf("%w: date is not set", errCapability)
	case c.SecurityService != "" && !slices.Contains(codes["security"], c.SecurityService):
		return fmt.Errorf("%w: unknown security service %q", errCapability, c.SecurityService)
	}
	if err := checkCodes(codes["system"], c.SystemInteractions, "system interaction"); err != nil {
		return err
	}
	if err := checkOperations(c.Operations, "system"); err != nil {
		return err
	}
	types := make(map[string]bool, len(c.Resources))
	for _, r := range c.Resources {
		if !validTypeName(r.Type) || types[r.Type] {
			return fmt.Errorf("%w: resource type %q is invalid or listed twice", errCapability, r.Type)
		}
		types[r.Type] = true
		if err := checkCodes(codes["interaction"], r.Interactions, r.Type+" interaction"); err != nil {
			return err
		}
		if r.Versioning != "" && !slices.Contains(codes["versioning"], r.Versioning) {
			return fmt.Errorf("%w: %s versioning %q", errCapability, r.Type, r.Versioning)
		}
		if r.ConditionalDelete != "" && !slices.Contains(codes["delete"], r.ConditionalDelete) {
			return fmt.Errorf("%w: %s conditionalDelete %q", errCapability, r.Type, r.ConditionalDelete)
		}
		if err := checkOperations(r.Operations, r.Type); err != nil {
			return err
		}
		names := make(map[string]bool, len(r.SearchParams))
		for _, p := range r.SearchParams {
			if p.Name == "" || names[p.Name] || !slices.Contains(codes["param"], p.Type) {
				return fmt.Errorf("%w: %s search parameter %q of type %q is invalid or listed twice", errCapability, r.Type, p.Name, p.Type)
			}
			names[p.Name] = true
		}
	}
	return nil
}

// checkOperations refuses operations without a name or a definition URL,
// and names listed twice.
func checkOperations(ops []OperationCapability, where string) error {
	for i, op := range ops {
		if op.Name == "" || strings.HasPrefix(op.Name, "$") || !strings.Contains(op.Definition, "://") ||
			slices.ContainsFunc(ops[:i], func(o OperationCapability) bool { return o.Name == op.Name }) {
			return fmt.Errorf("%w: %s operation %q (%q) is invalid or listed twice", errCapability, where, op.Name, op.Definition)
		}
	}
	return nil
}

func operationsJSON(ops []OperationCapability) []operationJSON {
	var out []operationJSON
	for _, op := range ops {
		out = append(out, operationJSON(op))
	}
	return out
}

// checkCodes refuses codes outside allowed and duplicates.
func checkCodes(allowed, codes []string, what string) error {
	for i, c := range codes {
		if !slices.Contains(allowed, c) || slices.Contains(codes[:i], c) {
			return fmt.Errorf("%w: %s %q is unknown or listed twice", errCapability, what, c)
		}
	}
	return nil
}

// security builds rest.security with the SMART oauth-uris extension.
func (c *Capabilities) security() *securityJSON {
	s := &securityJSON{CORS: c.CORS, Description: c.SecurityDescription}
	if c.SecurityService != "" {
		s.Service = []conceptJSON{{
			Coding: []codingJSON{{
				System: "http://terminology.hl7.org/CodeSystem/restful-security-service",
				Code:   c.SecurityService,
			}},
			Text: c.SecurityService,
		}}
	}
	var uris []extensionJSON
	if c.TokenURL != "" {
		uris = append(uris, extensionJSON{URL: "token", ValueURI: c.TokenURL})
	}
	if c.AuthorizeURL != "" {
		uris = append(uris, extensionJSON{URL: "authorize", ValueURI: c.AuthorizeURL})
	}
	if len(uris) > 0 {
		s.Extension = []extensionJSON{{
			URL:       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			Extension: uris,
		}}
	}
	return s
}
