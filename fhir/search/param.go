package search

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is a FHIR search parameter type (R4 search §3.1.1.4).
type Kind string

// The search parameter types Vidda implements.
const (
	Token     Kind = "token"
	Reference Kind = "reference"
	Date      Kind = "date"
)

// Param is one search parameter of one resource type.
type Param struct {
	// Name as it appears in the query string.
	Name string
	// Kind is its FHIR search type.
	Kind Kind
	// Column in the resource's table: a text[] for tokens and references,
	// <Column>_start and <Column>_end timestamptz for dates. "patient_id"
	// and "id" are the shared compartment and id columns.
	Column string
	// Targets are the resource types a reference parameter points at.
	Targets []string
	// Doc is the CapabilityStatement documentation.
	Doc string
	// extract pulls the indexed values out of a decoded resource.
	extract func(model any, dp *DateParser) (Values, error)
}

// Values are what one parameter indexes in one resource.
type Values struct {
	Tokens []string // encoded with TokenKeys
	Refs   []string // "Type/id"
	Dates  []Range
}

// Extract returns what p indexes in model, the golang-fhir-models struct of
// the parameter's resource type.
func (p *Param) Extract(model any, dp *DateParser) (Values, error) {
	if p.extract == nil {
		return Values{}, nil
	}
	v, err := p.extract(model, dp)
	if err != nil {
		return Values{}, fmt.Errorf("index %s: %w", p.Name, err)
	}
	return v, nil
}

// TokenKeys encodes one coded value for the token columns: "system|code"
// (exact), "*|code" (any system) and "system|*" (any code in the system).
// An empty system gives "|code", which `|code` searches for.
func TokenKeys(system, code string) []string {
	if code == "" {
		if system == "" {
			return nil
		}
		return []string{system + "|*"}
	}
	keys := []string{system + "|" + code, "*|" + code}
	if system != "" {
		keys = append(keys, system+"|*")
	}
	return keys
}

// Definition is the search surface of one resource type.
type Definition struct {
	Type   string
	Params []*Param
	// Compartment returns the id of the Patient whose compartment the
	// resource with this id belongs to, or "". Nil: the type is in no
	// patient compartment.
	Compartment func(model any, id string) string
}

// Param returns the parameter named name, or nil.
func (d *Definition) Param(name string) *Param {
	for _, p := range d.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// InPatientCompartment reports whether resources of this type can belong to
// a patient's compartment.
func (d *Definition) InPatientCompartment() bool { return d.Compartment != nil }

// Registry holds the Definition of every searchable type.
type Registry struct {
	defs  map[string]*Definition
	dates *DateParser
}

// Definition returns the definition for typ, or nil.
func (r *Registry) Definition(typ string) *Definition { return r.defs[typ] }

// Dates returns the registry's date parser.
func (r *Registry) Dates() *DateParser { return r.dates }

// refID returns the id of a relative reference "Type/id" (or an absolute
// URL ending so, or a bare id when typ matches nothing else).
func refID(ref, typ string) (string, bool) {
	ref = strings.TrimSpace(ref)
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) >= 2 && parts[len(parts)-2] == typ {
		return parts[len(parts)-1], true
	}
	return "", false
}

// Types returns the searchable resource types.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.defs))
	for t := range r.defs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
