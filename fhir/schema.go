package fhir

import (
	"encoding/json"
	"reflect"
	"strings"

	fhirmodels "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// valueKind is how an element's value must look in JSON.
type valueKind uint8

const (
	kindString  valueKind = iota // JSON string
	kindBool                     // JSON true/false
	kindInteger                  // JSON number without fraction or exponent
	kindDecimal                  // any JSON number (json.Number in the models)
	kindCode                     // JSON string from a required value set (an enum type in the models)
	kindStruct                   // JSON object: a datatype or backbone element
	kindAny                      // anything (json.RawMessage in the models)
)

// primitive reports whether values of the kind are FHIR primitives, which
// may carry a "_name" sibling with id and extensions.
func (k valueKind) primitive() bool {
	return k <= kindCode
}

// field describes one element of a struct, taken from the json tag of the
// golang-fhir-models type.
type field struct {
	name     string
	kind     valueKind
	list     bool
	required bool // the json tag has no omitempty: R4 cardinality 1..
	noExt    bool // no "_name" sibling (Element.id, Extension.url)
	syntax   primitiveSyntax
	elem     *schema      // kindStruct
	enum     reflect.Type // kindCode: the model's enum type
	ref      bool         // elem is Reference
	targets  []string     // allowed reference targets from the datatype table
}

// schema describes the elements of one struct type.
type schema struct {
	name     string // Go type name, e.g. "ObservationComponent"
	fields   map[string]*field
	required []*field
	// choices are the required choice elements (Task.input.value[x]): the
	// models mark every type of one as required, R4 wants exactly one.
	choices  [][]*field
	resource bool // a registered resource: resourceType, contained allowed
}

// schemaBuilder builds schemas once, at NewRegistry, so that Parse only
// reads them.
type schemaBuilder struct {
	seen      map[reflect.Type]*schema
	syntax    map[string]primitiveSyntax // "GoType.element"
	datatypes map[string][]string        // "GoType.element" → reference targets
}

// build returns the schema of struct type t, building the schemas of the
// datatypes it uses on the way (recursive types end at the seen map).
func (b *schemaBuilder) build(t reflect.Type) *schema {
	if s, ok := b.seen[t]; ok {
		return s
	}
	s := &schema{name: t.Name(), fields: make(map[string]*field, t.NumField())}
	b.seen[t] = s
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		f := &field{name: name, required: !strings.Contains(opts, "omitempty")}
		b.describe(f, sf.Type)
		resource := b.isResourceType(t)
		f.syntax = b.syntaxOf(s.name, name)
		if name == "id" && resource {
			f.syntax = syntaxID // Resource.id; Element.id is a plain string
		}
		f.noExt = (name == "id" && !resource) || (s.name == "Extension" && name == "url")
		if f.ref {
			f.targets = b.datatypes[s.name+"."+name]
		}
		s.fields[name] = f
		if f.required {
			s.required = append(s.required, f)
		}
	}
	s.required, s.choices = splitChoices(s.required)
	return s
}

// splitChoices takes the required choice elements out of required: the
// fields whose names are one base and a FHIR type name ("valueString",
// "valueBoolean", ...), when two or more of them share the base.
func splitChoices(required []*field) (plain []*field, choices [][]*field) {
	byBase := map[string][]*field{}
	var order []string
	for _, f := range required {
		base, ok := choiceBase(f.name)
		if !ok {
			plain = append(plain, f)
			continue
		}
		if byBase[base] == nil {
			order = append(order, base)
		}
		byBase[base] = append(byBase[base], f)
	}
	for _, base := range order {
		if g := byBase[base]; len(g) > 1 {
			choices = append(choices, g)
		} else {
			plain = append(plain, g...)
		}
	}
	return plain, choices
}

// choiceBase splits "valueCodeableConcept" into "value" when what follows
// the lower-case base is the name of a FHIR data type.
func choiceBase(name string) (string, bool) {
	i := strings.IndexFunc(name, func(r rune) bool { return r >= 'A' && r <= 'Z' })
	if i <= 0 {
		return "", false
	}
	switch name[i:] {
	case "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id",
		"Instant", "Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt",
		"Uri", "Url", "Uuid", "Address", "Age", "Annotation", "Attachment", "CodeableConcept",
		"Coding", "ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier",
		"Money", "Period", "Quantity", "Range", "Ratio", "Reference", "SampledData", "Signature",
		"Timing", "ContactDetail", "Contributor", "DataRequirement", "Expression",
		"ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext", "Dosage", "Meta":
		return name[:i], true
	}
	return "", false
}

// isResourceType reports whether t is a resource struct: in the models only
// resources have a Meta field.
func (b *schemaBuilder) isResourceType(t reflect.Type) bool {
	_, ok := t.FieldByName("Meta")
	return ok
}

func (b *schemaBuilder) describe(f *field, t reflect.Type) {
	rawType := reflect.TypeFor[json.RawMessage]()
	if t == rawType {
		f.kind = kindAny
		return
	}
	if t.Kind() == reflect.Slice {
		f.list = true
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	unmarshaler := reflect.TypeFor[json.Unmarshaler]()
	switch {
	case t == rawType:
		f.kind = kindAny
	case t == reflect.TypeFor[json.Number]():
		f.kind = kindDecimal
	case reflect.PointerTo(t).Implements(unmarshaler) && t.Kind() != reflect.Struct:
		f.kind = kindCode
		f.enum = t
	case t.Kind() == reflect.String:
		f.kind = kindString
	case t.Kind() == reflect.Bool:
		f.kind = kindBool
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		f.kind = kindInteger
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f.kind = kindDecimal
	case t.Kind() == reflect.Struct:
		f.kind = kindStruct
		f.ref = t == reflect.TypeFor[fhirmodels.Reference]()
		f.elem = b.build(t)
	default:
		// Not a shape the generated models use; accept any value rather
		// than refuse valid input.
		f.kind = kindAny
	}
}

// syntaxOf returns the primitive type of a string element. Explicit entries
// win; otherwise choice elements are recognised by their type suffix
// (effectiveDateTime, valueInstant, valueDate, valueTime).
func (b *schemaBuilder) syntaxOf(typeName, name string) primitiveSyntax {
	if p, ok := b.syntax[typeName+"."+name]; ok {
		return p
	}
	switch {
	case strings.HasSuffix(name, "DateTime"):
		return syntaxDateTime
	case strings.HasSuffix(name, "Instant"):
		return syntaxInstant
	case name == "valueDate":
		return syntaxDate
	case name == "valueTime":
		return syntaxTime
	case name == "valueId":
		return syntaxID
	}
	return syntaxNone
}

// elementSchema is what a "_name" sibling of a primitive may hold: the
// Element members id and extension.
func (b *schemaBuilder) elementSchema() *schema {
	ext := b.build(reflect.TypeFor[fhirmodels.Extension]())
	s := &schema{name: "Element", fields: map[string]*field{
		"id":        {name: "id", kind: kindString, noExt: true},
		"extension": {name: "extension", kind: kindStruct, list: true, elem: ext},
	}}
	return s
}
