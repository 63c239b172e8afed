package search

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vidda/vidda/fhir"
)

// Result-size limits (R4 search §3.1.1.5.4 leaves them to the server).
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// Query is a parsed search of one resource type.
type Query struct {
	Type    string
	Filters []Filter // AND
	// Count is the page size (_count); 0 with Summary "count".
	Count int
	// Cursor continues a previous page (opaque; from a next link).
	Cursor string
	// Total is false with _total=none.
	Total bool
	// Summary is "", "true", "count", "data" or "false".
	Summary string
	// Ignored names parameters that were not understood (lenient handling).
	Ignored []string
	// Params are the query's own parameters, minus paging, to build links.
	Params url.Values
}

// Filter is one search parameter; its Values are OR-ed.
type Filter struct {
	Param  *Param
	Values []Value
}

// Value is one value of a filter, already decoded for its parameter type.
type Value struct {
	// Prefix for dates: eq ne gt lt ge le sa eb ap.
	Prefix string
	// Token is the key to look for (see TokenKeys).
	Token string
	// Ref is the referenced id for the compartment column and "Type/id" for
	// the other reference columns.
	Ref string
	// Range is the implicit range of a date value.
	Range Range
}

// CommonParams are the parameters every type has (R4 search §3.1.1.5.3).
func CommonParams() []*Param {
	return []*Param{
		{Name: "_id", Kind: Token, Column: "id", Doc: "Logical id of this artifact"},
		{Name: "_lastUpdated", Kind: Date, Column: "last_updated", Doc: "When the resource version last changed"},
	}
}

// Parse parses the query string of a search of typ. With strict, unknown
// parameters are an error (Prefer: handling=strict); otherwise they are
// listed in Query.Ignored.
func (r *Registry) Parse(typ string, q url.Values, strict bool) (*Query, error) {
	def := r.defs[typ]
	if def == nil {
		return nil, fmt.Errorf("search %s: %w", typ, fhir.ErrUnsupportedType)
	}
	out := &Query{Type: typ, Count: DefaultCount, Total: true, Params: url.Values{}}
	common := CommonParams()
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		vals := q[name]
		switch name {
		case "_count":
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 {
				return nil, invalid("_count", "must be a non-negative integer")
			}
			out.Count = min(n, MaxCount)
			out.Params[name] = []string{strconv.Itoa(out.Count)}
			continue
		case "_cursor":
			out.Cursor = last(vals)
			continue
		case "_total":
			switch last(vals) {
			case "none":
				out.Total = false
			case "accurate", "estimate":
			default:
				return nil, invalid("_total", "must be none, estimate or accurate")
			}
			out.Params[name] = vals
			continue
		case "_summary":
			switch s := last(vals); s {
			case "true", "count", "data", "false":
				out.Summary = s
			default:
				return nil, invalid("_summary", "must be true, false, count or data")
			}
			out.Params[name] = vals
			continue
		case "_format", "_pretty":
			continue
		}
		base, modifier, _ := strings.Cut(name, ":")
		p := def.Param(base)
		if p == nil {
			p = findParam(common, base)
		}
		if p == nil || modifier != "" {
			what := "unknown search parameter"
			if p != nil {
				what = "unsupported modifier :" + modifier
			}
			if strict {
				return nil, &fhir.ValidationError{Issues: []fhir.Issue{{
					Severity: "error", Code: "not-supported",
					Diagnostics: fmt.Sprintf("%s %q for %s", what, name, typ), Expression: []string{name},
				}}}
			}
			out.Ignored = append(out.Ignored, name)
			continue
		}
		for _, v := range vals {
			f, err := r.filter(p, v)
			if err != nil {
				return nil, err
			}
			out.Filters = append(out.Filters, f)
		}
		out.Params[name] = vals
	}
	if out.Summary == "count" {
		out.Count = 0
	}
	return out, nil
}

func (r *Registry) filter(p *Param, raw string) (Filter, error) {
	f := Filter{Param: p}
	for _, s := range splitOr(raw) {
		var v Value
		var err error
		switch p.Kind {
		case Token:
			v, err = tokenValue(p, s)
		case Reference:
			v, err = refValue(p, s)
		case Date:
			v, err = r.dateValue(p, s)
		}
		if err != nil {
			return Filter{}, err
		}
		f.Values = append(f.Values, v)
	}
	return f, nil
}

func tokenValue(p *Param, s string) (Value, error) {
	if s == "" {
		return Value{}, invalid(p.Name, "empty value")
	}
	if p.Column == "id" {
		return Value{Token: s}, nil
	}
	system, code, hasSystem := strings.Cut(s, "|")
	switch {
	case !hasSystem:
		return Value{Token: "*|" + s}, nil
	case code == "":
		return Value{Token: system + "|*"}, nil
	default:
		return Value{Token: system + "|" + code}, nil
	}
}

func refValue(p *Param, s string) (Value, error) {
	if s == "" {
		return Value{}, invalid(p.Name, "empty reference")
	}
	typ, id := "", s
	if i := strings.LastIndex(s, "/"); i >= 0 {
		rest := s[:i]
		id = s[i+1:]
		typ = rest[strings.LastIndex(rest, "/")+1:]
	}
	if !fhir.ValidID(id) {
		return Value{}, invalid(p.Name, fmt.Sprintf("%q is not a reference to a resource id", s))
	}
	if typ != "" && !slices.Contains(p.Targets, typ) {
		return Value{}, invalid(p.Name, fmt.Sprintf("%s may refer to %s, not %s", p.Name, strings.Join(p.Targets, ", "), typ))
	}
	if p.Column == "patient_id" {
		return Value{Ref: id}, nil
	}
	if typ == "" {
		if len(p.Targets) != 1 {
			return Value{}, invalid(p.Name, fmt.Sprintf("%q: name the type (one of %s)", s, strings.Join(p.Targets, ", ")))
		}
		typ = p.Targets[0]
	}
	return Value{Ref: typ + "/" + id}, nil
}

func (r *Registry) dateValue(p *Param, s string) (Value, error) {
	prefix := "eq"
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		prefix, s = s[:2], s[2:]
		if !slices.Contains([]string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}, prefix) {
			return Value{}, invalid(p.Name, fmt.Sprintf("unknown prefix %q", prefix))
		}
	}
	rg, err := r.dates.Parse(s)
	if err != nil {
		return Value{}, invalid(p.Name, err.Error())
	}
	return Value{Prefix: prefix, Range: rg}, nil
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

func findParam(ps []*Param, name string) *Param {
	for _, p := range ps {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func last(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[len(vals)-1]
}

func invalid(param, msg string) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: "error", Code: "invalid",
		Diagnostics: fmt.Sprintf("search parameter %s: %s", param, msg), Expression: []string{param},
	}}}
}
