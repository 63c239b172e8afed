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
	// MaxIncludes caps how many resources _include and _revinclude add to
	// one page.
	MaxIncludes = 1000
)

// Query is a parsed search of one resource type.
type Query struct {
	Type    string
	Filters []Filter // AND
	// Sort orders the results (_sort); empty: newest update first.
	Sort []SortKey
	// Count is the page size (_count); 0 with Summary "count".
	Count int
	// Cursor continues a previous page (opaque; from a next or previous link).
	Cursor string
	// Total is "accurate" (count every match), "none" (do not) or ""
	// (the server's choice: only when the first page holds every match).
	Total string
	// Summary is "", "true", "count", "data", "text" or "false".
	Summary string
	// Elements lists the top-level elements to return (_elements).
	Elements []string
	// Include and RevInclude add referenced and referring resources.
	Include, RevInclude []Include
	// Ignored names parameters that were not understood (lenient handling).
	Ignored []string
	// Params are the query's own parameters, minus paging, to build links.
	Params url.Values
}

// SortKey is one _sort criterion.
type SortKey struct {
	Param *Param
	Desc  bool
}

// Include is one _include or _revinclude: resources of Target that
// Source's Param refers to (or, for _revinclude, resources of Source that
// refer to the matches through Param).
type Include struct {
	Source string
	Param  *Param
	// Target restricts the referenced type (Observation:subject:Patient);
	// "" means every type the parameter may point at.
	Target string
}

// Filter is one search parameter; its Values are OR-ed.
type Filter struct {
	Param *Param
	// Modifier is "", "missing", "not", "exact", "contains", "below",
	// "above", or for references the target type.
	Modifier string
	Values   []Value
	// Chain, for a chained reference (subject:Patient.name=...), is the
	// condition the referenced resource must meet; Values is then empty.
	Chain *Chain
}

// Chain is the far side of a chained reference parameter.
type Chain struct {
	Type   string
	Filter Filter
	// Compartment is true when Type belongs to patient compartments, so a
	// patient's search only follows chains into its own.
	Compartment bool
}

// Value is one value of a filter, already decoded for its parameter type.
type Value struct {
	// Prefix for dates, numbers and quantities: eq ne gt lt ge le sa eb ap.
	Prefix string
	// Token is the key to look for (see TokenKeys); for quantities, the
	// unit key ("" for any unit).
	Token string
	// Ref is the referenced id for the compartment column and "Type/id" (or
	// the alternatives of a bare id, comma-free) for other reference columns.
	Refs []string
	// Range is the implicit range of a date value.
	Range Range
	// String is the normalized string for string parameters (as written
	// with :exact), or the uri.
	String string
	// Number is the value of a number or quantity.
	Number Decimal
	// Missing is the value of :missing.
	Missing bool
}

// prefixes are the comparison prefixes of R4 search §3.1.1.4.
func prefixes() []string { return []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} }

// Parse parses the query string of a search of typ. With strict, unknown
// parameters are an error (Prefer: handling=strict); otherwise they are
// listed in Query.Ignored.
func (r *Registry) Parse(typ string, q url.Values, strict bool) (*Query, error) {
	def := r.defs[typ]
	if def == nil {
		return nil, fmt.Errorf("search %s: %w", typ, fhir.ErrUnsupportedType)
	}
	out := &Query{Type: typ, Count: DefaultCount, Params: url.Values{}}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		vals := q[name]
		handled, err := r.control(out, def, name, vals)
		if err != nil {
			return nil, err
		}
		if handled {
			continue
		}
		f, err := r.parseFilters(def, name, vals)
		if err != nil {
			var unknown *unknownParamError
			switch {
			case !asUnknown(err, &unknown):
				return nil, err
			case strict:
				return nil, &fhir.ValidationError{Issues: []fhir.Issue{unknown.Issue()}}
			}
			out.Ignored = append(out.Ignored, name)
			continue
		}
		out.Filters = append(out.Filters, f...)
		out.Params[name] = vals
	}
	if out.Summary == "count" {
		out.Count = 0
	}
	return out, nil
}

// control handles the result parameters (R4 search §3.1.1.5); it reports
// whether name was one.
func (r *Registry) control(out *Query, def *Definition, name string, vals []string) (bool, error) {
	switch name {
	case "_count":
		n, err := strconv.Atoi(last(vals))
		if err != nil || n < 0 {
			return true, invalid("_count", "must be a non-negative integer")
		}
		out.Count = min(n, MaxCount)
		out.Params[name] = []string{strconv.Itoa(out.Count)}
	case "_cursor":
		out.Cursor = last(vals)
	case "_total":
		switch t := last(vals); t {
		case "none", "accurate":
			out.Total = t
		case "estimate":
			out.Total = "accurate"
		default:
			return true, invalid("_total", "must be none, estimate or accurate")
		}
		out.Params[name] = vals
	case "_summary":
		switch s := last(vals); s {
		case "true", "count", "data", "text", "false":
			out.Summary = s
		default:
			return true, invalid("_summary", "must be true, false, text, count or data")
		}
		out.Params[name] = vals
	case "_elements":
		for _, v := range vals {
			for e := range strings.SplitSeq(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					out.Elements = append(out.Elements, e)
				}
			}
		}
		out.Params[name] = vals
	case "_sort":
		keys, err := r.parseSort(def, last(vals))
		if err != nil {
			return true, err
		}
		out.Sort = keys
		out.Params[name] = vals
	case "_include", "_revinclude":
		for _, v := range vals {
			inc, err := r.parseInclude(def, name, v)
			if err != nil {
				return true, err
			}
			if name == "_include" {
				out.Include = append(out.Include, inc)
			} else {
				out.RevInclude = append(out.RevInclude, inc)
			}
		}
		out.Params[name] = vals
	case "_format", "_pretty":
	default:
		return false, nil
	}
	return true, nil
}

// parseSort reads "_sort=-date,_id" (R4 search §3.1.1.5.6).
func (r *Registry) parseSort(def *Definition, v string) ([]SortKey, error) {
	var keys []SortKey
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		desc := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		p := r.lookup(def, s)
		if p == nil {
			return nil, invalid("_sort", fmt.Sprintf("%s has no search parameter %q to sort by", def.Type, s))
		}
		keys = append(keys, SortKey{Param: p, Desc: desc})
	}
	return keys, nil
}

// parseInclude reads "Source:param[:Target]" (R4 search §3.1.1.5.4).
// For _include the source must be the searched type; for _revinclude the
// parameter must be able to point at it.
func (r *Registry) parseInclude(def *Definition, name, v string) (Include, error) {
	v = strings.TrimSuffix(v, ":iterate")
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Include{}, invalid(name, fmt.Sprintf("%q: expected SourceType:parameter[:TargetType]", v))
	}
	src := r.defs[parts[0]]
	if src == nil {
		return Include{}, invalid(name, fmt.Sprintf("%q: %s is not a searchable type", v, parts[0]))
	}
	p := src.Param(parts[1])
	if p == nil || p.Kind != Reference {
		return Include{}, invalid(name, fmt.Sprintf("%q: %s has no reference parameter %q", v, parts[0], parts[1]))
	}
	inc := Include{Source: src.Type, Param: p}
	if len(parts) == 3 {
		if !slices.Contains(p.Targets, parts[2]) {
			return Include{}, invalid(name, fmt.Sprintf("%q: %s.%s does not refer to %s", v, parts[0], parts[1], parts[2]))
		}
		inc.Target = parts[2]
	}
	switch {
	case name == "_include" && src.Type != def.Type:
		return Include{}, invalid(name, fmt.Sprintf("%q: _include names the searched type, %s", v, def.Type))
	case name == "_revinclude" && !slices.Contains(p.Targets, def.Type):
		return Include{}, invalid(name, fmt.Sprintf("%q: %s.%s does not refer to %s", v, parts[0], parts[1], def.Type))
	case name == "_revinclude" && inc.Target != "" && inc.Target != def.Type:
		return Include{}, invalid(name, fmt.Sprintf("%q: the target must be %s", v, def.Type))
	}
	return inc, nil
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
