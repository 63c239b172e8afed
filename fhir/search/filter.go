package search

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vidda/vidda/fhir"
)

// unknownParamError is a parameter the type does not have: ignored unless the
// client asked for strict handling (R4 http §3.1.0.1.9, Prefer: handling).
type unknownParamError struct{ typ, name string }

func (e *unknownParamError) Error() string {
	return fmt.Sprintf("unknown search parameter %q for %s", e.name, e.typ)
}

// Issue turns the error into an OperationOutcome issue.
func (e *unknownParamError) Issue() fhir.Issue {
	return fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: e.Error(), Expression: []string{e.name}}
}

func asUnknown(err error, target **unknownParamError) bool { return errors.As(err, target) }

// modifiers lists the modifiers each kind supports (R4 search §3.1.1.5.5
// and the sections of each type); every kind has :missing.
func modifiers(k Kind) []string {
	switch k {
	case Token:
		return []string{"missing", "not"}
	case String:
		return []string{"missing", "exact", "contains"}
	case URI:
		return []string{"missing", "below", "above"}
	case Reference, Date, Quantity, Number:
	}
	return []string{"missing"}
}

// parseFilters parses one query parameter, repeated once per value (AND).
func (r *Registry) parseFilters(def *Definition, name string, vals []string) ([]Filter, error) {
	head, chained, isChain := strings.Cut(name, ".")
	base, modifier, _ := strings.Cut(head, ":")
	p := r.lookup(def, base)
	if p == nil {
		return nil, &unknownParamError{def.Type, name}
	}
	if isChain {
		return r.parseChain(def, p, modifier, chained, vals)
	}
	if modifier != "" && !slices.Contains(modifiers(p.Kind), modifier) &&
		(p.Kind != Reference || !slices.Contains(p.Targets, modifier)) {
		return nil, notSupported(name, fmt.Sprintf("modifier :%s is not supported on %s parameters", modifier, p.Kind))
	}
	out := make([]Filter, 0, len(vals))
	for _, raw := range vals {
		f := Filter{Param: p, Modifier: modifier}
		for _, s := range splitOr(raw) {
			v, err := r.value(p, modifier, s)
			if err != nil {
				return nil, err
			}
			f.Values = append(f.Values, v)
		}
		out = append(out, f)
	}
	return out, nil
}

// parseChain parses "subject:Patient.name=..." (R4 search §3.1.1.4.13,
// one level deep).
func (r *Registry) parseChain(def *Definition, p *Param, typ, chained string, vals []string) ([]Filter, error) {
	name := p.Name + "." + chained
	if p.Kind != Reference {
		return nil, invalid(name, p.Name+" is not a reference parameter and cannot be chained")
	}
	if strings.Contains(chained, ".") {
		return nil, notSupported(name, "chains longer than one reference are not supported")
	}
	target := typ
	if target == "" {
		var candidates []string
		chainedBase, _, _ := strings.Cut(chained, ":")
		for _, t := range p.Targets {
			if d := r.defs[t]; d != nil && r.lookup(d, chainedBase) != nil {
				candidates = append(candidates, t)
			}
		}
		if len(candidates) != 1 {
			return nil, invalid(name, fmt.Sprintf("name the referenced type, as in %s:%s.%s", p.Name, strings.Join(p.Targets, "|"), chained))
		}
		target = candidates[0]
	}
	tdef := r.defs[target]
	if tdef == nil || !slices.Contains(p.Targets, target) {
		return nil, invalid(name, fmt.Sprintf("%s.%s does not refer to a searchable %s", def.Type, p.Name, target))
	}
	inner, err := r.parseFilters(tdef, chained, vals)
	if err != nil {
		var unknown *unknownParamError
		if asUnknown(err, &unknown) {
			return nil, invalid(name, unknown.Error())
		}
		return nil, err
	}
	out := make([]Filter, len(inner))
	for i, f := range inner {
		out[i] = Filter{Param: p, Modifier: target, Chain: &Chain{Type: target, Filter: f, Compartment: tdef.InPatientCompartment()}}
	}
	return out, nil
}

// value decodes one comma-separated value of p.
func (r *Registry) value(p *Param, modifier, s string) (Value, error) {
	if modifier == "missing" {
		switch s {
		case "true":
			return Value{Missing: true}, nil
		case "false":
			return Value{}, nil
		}
		return Value{}, invalid(p.Name+":missing", "must be true or false")
	}
	if s == "" {
		return Value{}, invalid(p.Name, "empty value")
	}
	switch p.Kind {
	case Token:
		return tokenValue(p, s), nil
	case Reference:
		return refValue(p, modifier, s)
	case Date:
		return r.dateValue(p, s)
	case Number, Quantity:
		return numberValue(p, s)
	case String:
		if modifier == "exact" {
			return Value{String: s}, nil
		}
		return Value{String: Normalize(s)}, nil
	case URI:
		return Value{String: s}, nil
	}
	return Value{}, invalid(p.Name, "unsupported parameter type")
}

func tokenValue(p *Param, s string) Value {
	if p.Column == "id" {
		return Value{Token: s}
	}
	system, code, hasSystem := strings.Cut(s, "|")
	switch {
	case !hasSystem:
		return Value{Token: "*|" + s}
	case code == "":
		return Value{Token: system + "|*"}
	default:
		return Value{Token: system + "|" + code}
	}
}

// refValue reads "Type/id", an absolute URL ending so, or a bare id (R4
// search §3.1.1.4.10); a bare id matches every type the parameter may
// point at, unless a :Type modifier names one.
func refValue(p *Param, typ, s string) (Value, error) {
	id := s
	if i := strings.LastIndex(s, "/"); i >= 0 {
		rest := s[:i]
		id = s[i+1:]
		named := rest[strings.LastIndex(rest, "/")+1:]
		if typ != "" && named != typ {
			return Value{}, invalid(p.Name+":"+typ, fmt.Sprintf("%q is not a %s", s, typ))
		}
		typ = named
	}
	if !fhir.ValidID(id) {
		return Value{}, invalid(p.Name, fmt.Sprintf("%q is not a reference to a resource id", s))
	}
	if typ != "" && !slices.Contains(p.Targets, typ) {
		return Value{}, invalid(p.Name, fmt.Sprintf("%s may refer to %s, not %s", p.Name, strings.Join(p.Targets, ", "), typ))
	}
	if p.Column == "patient_id" {
		return Value{Refs: []string{id}}, nil
	}
	if typ != "" {
		return Value{Refs: []string{typ + "/" + id}}, nil
	}
	v := Value{}
	for _, t := range p.Targets {
		v.Refs = append(v.Refs, t+"/"+id)
	}
	return v, nil
}

// cutPrefix splits a comparison prefix off a date, number or quantity.
func cutPrefix(p *Param, s string) (string, string, error) {
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		if !slices.Contains(prefixes(), s[:2]) {
			return "", "", invalid(p.Name, fmt.Sprintf("unknown prefix %q", s[:2]))
		}
		return s[:2], s[2:], nil
	}
	return "eq", s, nil
}

func (r *Registry) dateValue(p *Param, s string) (Value, error) {
	prefix, s, err := cutPrefix(p, s)
	if err != nil {
		return Value{}, err
	}
	rg, err := r.dates.Parse(s)
	if err != nil {
		return Value{}, invalid(p.Name, err.Error())
	}
	return Value{Prefix: prefix, Range: rg}, nil
}

// numberValue reads "[prefix]number" and, for quantities,
// "[prefix]number|system|code" or "[prefix]number||unit" (R4 search
// §3.1.1.4.3 and §3.1.1.4.8).
func numberValue(p *Param, s string) (Value, error) {
	prefix, s, err := cutPrefix(p, s)
	if err != nil {
		return Value{}, err
	}
	num, unit, hasUnit := strings.Cut(s, "|")
	if hasUnit && p.Kind != Quantity {
		return Value{}, invalid(p.Name, fmt.Sprintf("%q: a number has no unit", s))
	}
	d, err := parseDecimal(num)
	if err != nil {
		return Value{}, invalid(p.Name, err.Error())
	}
	v := Value{Prefix: prefix, Number: d}
	if hasUnit {
		system, code, ok := strings.Cut(unit, "|")
		switch {
		case !ok || strings.Contains(code, "|"):
			return Value{}, invalid(p.Name, fmt.Sprintf("%q: expected number|system|code", s))
		case code == "" && system != "":
			return Value{}, invalid(p.Name, fmt.Sprintf("%q: a unit system needs a code", s))
		case code == "":
		case system == "":
			v.Token = "*|" + code
		default:
			v.Token = system + "|" + code
		}
	}
	return v, nil
}

// splitOr splits a comma-separated OR list, honouring "\," escapes
// (R4 search §3.1.1.4.9).
func splitOr(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

func notSupported(param, msg string) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: "error", Code: "not-supported",
		Diagnostics: fmt.Sprintf("search parameter %s: %s", param, msg), Expression: []string{param},
	}}}
}
