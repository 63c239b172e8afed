package fhir

import (
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Registry of the resource types the server serves. It is constructed once
// at start-up and immutable afterwards, so it is safe for concurrent use; it
// holds the schemas Parse walks, built by reflection over the
// golang-fhir-models structs.
type Registry struct {
	types   map[string]*resourceType
	names   []string
	element *schema // what a "_name" sibling of a primitive may hold
}

// resourceType is one registered type with its prepared tables.
type resourceType struct {
	typeDef
	schema     *schema
	summarySet map[string]bool // exact top-level element names
	choices    []string        // choice prefixes ("deceased" for deceased[x])
}

// NewRegistry registers the types of builtinTypes: Patient, Practitioner,
// Organization, Device and Observation.
func NewRegistry() *Registry {
	return newRegistry(builtinTypes())
}

func newRegistry(defs []typeDef) *Registry {
	b := &schemaBuilder{
		seen:      make(map[reflect.Type]*schema),
		syntax:    datatypeSyntax(),
		datatypes: datatypeReferences(),
	}
	for _, d := range defs {
		for k, v := range d.syntax {
			b.syntax[k] = v
		}
	}
	r := &Registry{types: make(map[string]*resourceType, len(defs))}
	for _, d := range defs {
		t := reflect.TypeOf(d.newModel())
		if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
			continue
		}
		s := b.build(t.Elem())
		s.resource = true
		rt := &resourceType{typeDef: d, schema: s, summarySet: make(map[string]bool)}
		for _, name := range d.summary {
			if prefix, ok := strings.CutSuffix(name, "[x]"); ok {
				rt.choices = append(rt.choices, prefix)
				continue
			}
			rt.summarySet[name] = true
		}
		for _, name := range []string{"id", "meta", "implicitRules", "modifierExtension"} {
			rt.summarySet[name] = true
		}
		r.types[d.name] = rt
		r.names = append(r.names, d.name)
	}
	sort.Strings(r.names)
	r.element = b.elementSchema()
	return r
}

// Types returns the names of the registered resource types, sorted.
func (r *Registry) Types() []string {
	return slices.Clone(r.names)
}

// Supports reports whether typ is a registered resource type.
func (r *Registry) Supports(typ string) bool {
	_, ok := r.types[typ]
	return ok
}

// inSummary reports whether a top-level member belongs to the _summary=true
// form. "_name" siblings follow their element.
func (rt *resourceType) inSummary(member string) bool {
	name := strings.TrimPrefix(member, "_")
	if rt.summarySet[name] {
		return true
	}
	for _, prefix := range rt.choices {
		if rest, ok := strings.CutPrefix(name, prefix); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}
