package search

import (
	"fmt"
	"slices"
)

// Kind is a FHIR search parameter type (R4 search §3.1.1.4).
type Kind string

// The search parameter types Vidda implements.
const (
	Token     Kind = "token"
	Reference Kind = "reference"
	Date      Kind = "date"
	String    Kind = "string"
	Quantity  Kind = "quantity"
	Number    Kind = "number"
	URI       Kind = "uri"
)

// Param is one search parameter of one resource type: everything about it
// is declared here once, and the store's columns, the SQL that searches
// them and the CapabilityStatement all follow from it.
type Param struct {
	// Name as it appears in the query string.
	Name string
	// Kind is its FHIR search type.
	Kind Kind
	// Expression is the FHIRPath-like path it indexes, for example
	// "Observation.code | Observation.component.code". Each path is the
	// resource type followed by element names; a choice element
	// ("Observation.effective") covers all of its types. Values are
	// extracted by following it through the golang-fhir-models struct.
	Expression string
	// Column names the resource table's column(s): see Columns.
	Column string
	// Targets are the resource types a reference parameter points at.
	Targets []string
	// System is the code system of plain codes and booleans the expression
	// reaches (for example "http://hl7.org/fhir/administrative-gender"),
	// which carry none themselves.
	System string
	// Doc is the CapabilityStatement documentation.
	Doc string
	// Order lists, lowest first, the codes of a token parameter whose
	// codes have a meaning order (Task.priority: routine < urgent < asap <
	// stat); _sort follows it instead of the codes' spelling. A missing or
	// unlisted code sorts below the first.
	Order []string

	path *path
}

// Column is one database column a parameter indexes into.
type Column struct {
	Name, SQLType string
}

// Columns are the columns of the resource's table that hold p's values:
//   - token, reference, uri: <Column> text[] of keys (see TokenKeys);
//   - string: <Column> text[] normalized (see Normalize) and
//     <Column>_exact text[] as written;
//   - date: <Column>_start and <Column>_end timestamptz, the lowest start
//     and highest end of its values' ranges;
//   - number: <Column> numeric, the first value;
//   - quantity: <Column> numeric and <Column>_unit text[] of unit keys.
//
// The shared columns id, last_updated and patient_id are not listed.
func (p *Param) Columns() []Column {
	switch {
	case p.Shared():
		return nil
	case p.Kind == String:
		return []Column{{p.Column, "text[]"}, {p.Column + "_exact", "text[]"}}
	case p.Kind == Date:
		return []Column{{p.Column + "_start", "timestamptz"}, {p.Column + "_end", "timestamptz"}}
	case p.Kind == Number:
		return []Column{{p.Column, "numeric"}}
	case p.Kind == Quantity:
		return []Column{{p.Column, "numeric"}, {p.Column + "_unit", "text[]"}}
	default:
		return []Column{{p.Column, "text[]"}}
	}
}

// Shared reports whether p searches one of the columns every resource table
// has (id, last_updated, the patient compartment) rather than its own.
func (p *Param) Shared() bool {
	return p.Column == "id" || p.Column == "last_updated" || p.Column == "patient_id"
}

// Values are what one parameter indexes in one resource.
type Values struct {
	Tokens  []string // token and uri keys (TokenKeys); quantity unit keys
	Refs    []string // "Type/id"
	Dates   []Range
	Strings []string // as written
	Numbers []string // decimals as written
}

// Extract returns what p indexes in model, the golang-fhir-models struct of
// the parameter's resource type.
func (p *Param) Extract(model any, dp *DateParser) (Values, error) {
	if p.path == nil {
		return Values{}, nil
	}
	var v Values
	var err error
	p.path.walk(model, func(leaf any) {
		if err == nil {
			err = p.collect(&v, leaf, dp)
		}
	})
	if err != nil {
		return Values{}, fmt.Errorf("index %s: %w", p.Name, err)
	}
	return v, nil
}

// TokenKeys encodes one coded value for the token columns: "system|code"
// (exact), "*|code" (any system) and "system|*" (any code in the system).
// An empty system gives "|code", which `|code` searches for. The first key
// is always the most specific one, so a column's first element is the first
// coding's "system|code" (what $lastn groups by).
func TokenKeys(system, code string) []string {
	return appendTokenKeys(nil, system, code)
}

// appendTokenKeys appends TokenKeys(system, code) to dst. The keys are
// views of one string: one allocation per coding on the ingest path,
// where every reading's codes are indexed.
func appendTokenKeys(dst []string, system, code string) []string {
	switch {
	case code == "" && system == "":
		return dst
	case code == "":
		return append(dst, system+"|*")
	case system == "":
		s := "|" + code + "*|" + code
		return append(dst, s[:1+len(code)], s[1+len(code):])
	}
	s := system + "|" + code + "*|" + code + system + "|*"
	a := len(system) + 1 + len(code)
	b := a + 2 + len(code)
	return append(dst, s[:a], s[a:b], s[b:])
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
	defs   map[string]*Definition
	dates  *DateParser
	common []*Param
}

// Definition returns the definition for typ, or nil.
func (r *Registry) Definition(typ string) *Definition { return r.defs[typ] }

// Dates returns the registry's date parser.
func (r *Registry) Dates() *DateParser { return r.dates }

// Common returns the parameters every type has (R4 search §3.1.1.5.3).
func (r *Registry) Common() []*Param { return r.common }

// lookup finds name among typ's parameters and the common ones.
func (r *Registry) lookup(def *Definition, name string) *Param {
	if p := def.Param(name); p != nil {
		return p
	}
	for _, p := range r.common {
		if p.Name == name {
			return p
		}
	}
	return nil
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
