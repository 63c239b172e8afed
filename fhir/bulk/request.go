package bulk

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// Kind is the level an export works at (Bulk Data v2 "Kick-off Request").
type Kind string

// The kinds of export.
const (
	// KindSystem is GET [base]/$export: every resource of the types.
	KindSystem Kind = "system"
	// KindPatient is GET [base]/Patient/$export: the compartments of all
	// patients.
	KindPatient Kind = "patient"
	// KindGroup is GET [base]/Group/[id]/$export: the compartments of the
	// group's patients.
	KindGroup Kind = "group"
)

// Output formats accepted for _outputFormat; they all mean ndjson.
var outputFormats = []string{"application/fhir+ndjson", "application/ndjson", "ndjson"} //nolint:gochecknoglobals // a constant list

// Request is a checked kick-off request.
type Request struct {
	Kind    Kind
	GroupID string
	// Types are the types _type asked for, in its order; nil: the server's
	// choice (see Plan).
	Types []string
	// Since keeps resources changed at or after it; zero: all.
	Since time.Time
	// TypeFilters are the _typeFilter queries per type ("code=x&status=y"),
	// each already parsed once to check it.
	TypeFilters map[string][]string
	// Ignored lists parameters left out under Prefer: handling=lenient.
	Ignored []string
}

// invalid is the 400 of a kick-off parameter.
func invalid(param, msg string) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: fhir.SeverityError, Code: fhir.IssueInvalid,
		Diagnostics: param + ": " + msg, Expression: []string{param},
	}}}
}

// notSupported is the 400 of a parameter vidda does not implement.
func notSupported(param string) error {
	return &fhir.ValidationError{Issues: []fhir.Issue{{
		Severity: fhir.SeverityError, Code: fhir.IssueNotSupported,
		Diagnostics: param + " is not supported by this server (send Prefer: handling=lenient to have it ignored)", Expression: []string{param},
	}}}
}

// Parse checks a kick-off's query and Prefer header (Bulk Data v2,
// "Query Parameters"): respond-async is required; _outputFormat must be
// ndjson; every _type must be a type vidda serves; _since a FHIR instant;
// each _typeFilter a search of a served type that the search engine
// parses strictly. Parameters vidda does not implement are a 400 unless
// Prefer says handling=lenient. Errors are *fhir.ValidationError (400).
func (e *Exporter) Parse(kind Kind, groupID string, q url.Values, prefer string) (*Request, error) {
	if !preferIncludes(prefer, "respond-async") {
		return nil, invalid("Prefer", "an export runs asynchronously: send Prefer: respond-async")
	}
	lenient := preferIncludes(prefer, "handling=lenient")
	r := &Request{Kind: kind, GroupID: groupID}
	if kind == KindGroup && !fhir.ValidID(groupID) {
		return nil, invalid("Group", fmt.Sprintf("%q is not a valid id", groupID))
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		vals := q[name]
		var err error
		switch name {
		case "_outputFormat":
			if f := vals[len(vals)-1]; !slices.Contains(outputFormats, f) {
				err = invalid(name, fmt.Sprintf("%q is not supported: use application/fhir+ndjson", f))
			}
		case "_type":
			err = e.parseTypes(r, vals)
		case "_since":
			r.Since, err = parseInstant(vals[len(vals)-1])
		case "_typeFilter":
			err = e.parseTypeFilters(r, vals)
		case "_format", "_pretty":
		default:
			if !lenient {
				return nil, notSupported(name)
			}
			r.Ignored = append(r.Ignored, name)
		}
		if err != nil {
			return nil, err
		}
	}
	if r.Types != nil {
		for typ := range r.TypeFilters {
			if !slices.Contains(r.Types, typ) {
				return nil, invalid("_typeFilter", fmt.Sprintf("filters %s, which _type does not ask for", typ))
			}
		}
	}
	return r, nil
}

// preferIncludes reports whether a Prefer header holds pref (RFC 7240:
// comma-separated preferences, case-insensitive names).
func preferIncludes(header, pref string) bool {
	for p := range strings.SplitSeq(header, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(p), ";")
		if strings.EqualFold(strings.ReplaceAll(name, " ", ""), pref) {
			return true
		}
	}
	return false
}

func (e *Exporter) exportable(typ string) bool {
	return e.types.Supports(typ) && e.params.Definition(typ) != nil
}

func (e *Exporter) parseTypes(r *Request, vals []string) error {
	for _, v := range vals {
		for typ := range strings.SplitSeq(v, ",") {
			typ = strings.TrimSpace(typ)
			switch {
			case typ == "":
			case !e.exportable(typ):
				return invalid("_type", fmt.Sprintf("%q is not a resource type this server exports", truncate(typ)))
			case !slices.Contains(r.Types, typ):
				r.Types = append(r.Types, typ)
			}
		}
	}
	if len(r.Types) == 0 {
		return invalid("_type", "names no type")
	}
	return nil
}

// parseInstant reads a FHIR instant: a date and time with seconds and a
// zone (Bulk Data: "_since: FHIR instant").
func parseInstant(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalid("_since", fmt.Sprintf("%q is not a FHIR instant like 2026-11-23T10:00:00Z", truncate(v)))
	}
	return t.UTC(), nil
}

// searchControls are search result parameters, which mean nothing in a
// filter of what to export.
var searchControls = []string{"_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor", "_contained", "_containedType"} //nolint:gochecknoglobals // a constant list

func (e *Exporter) parseTypeFilters(r *Request, vals []string) error {
	for _, v := range vals {
		typ, query, ok := strings.Cut(v, "?")
		if !ok || !e.exportable(typ) {
			return invalid("_typeFilter", fmt.Sprintf("%q is not Type?search of a type this server exports", truncate(v)))
		}
		if _, err := e.parseFilter(typ, query); err != nil {
			return err
		}
		if r.TypeFilters == nil {
			r.TypeFilters = map[string][]string{}
		}
		r.TypeFilters[typ] = append(r.TypeFilters[typ], query)
	}
	return nil
}

// parseFilter parses one _typeFilter's search, strictly: an unknown
// parameter is an error, not a filter quietly left out.
func (e *Exporter) parseFilter(typ, query string) (*search.Query, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, invalid("_typeFilter", fmt.Sprintf("%s?%s is not a query string: %v", typ, truncate(query), err))
	}
	for k := range q {
		if slices.Contains(searchControls, k) {
			return nil, invalid("_typeFilter", fmt.Sprintf("%s is a search result parameter, not a filter", k))
		}
	}
	parsed, err := e.params.Parse(typ, q, true)
	if err != nil {
		var verr *fhir.ValidationError
		if errors.As(err, &verr) {
			for i := range verr.Issues {
				verr.Issues[i].Diagnostics = "_typeFilter " + typ + ": " + verr.Issues[i].Diagnostics
			}
			return nil, verr
		}
		return nil, fmt.Errorf("_typeFilter %s: %w", typ, err)
	}
	return parsed, nil
}

// Plan is a request with the types it will export and how each may be
// read, as the caller's authorization decided.
type Plan struct {
	Request *Request
	Types   []string
	Access  map[string]store.Access
	// GroupAccess is how the Group of a group export may be read.
	GroupAccess store.Access
}

// ErrTypeNotAllowed marks a type _type asked for that the caller may not
// export; Authorize's own error says why.
var ErrTypeNotAllowed = errors.New("type not allowed")

// Plan settles which types r exports. authorize says whether the caller
// may search a type, and on what condition; a type _type named that it
// refuses fails the plan with its error, while a type chosen by default is
// left out. Without _type, a system export takes every type vidda serves
// but AuditEvent (ask for it by name), a Patient or Group export every
// such type in the patient compartment; a type outside the compartment
// named in a Patient or Group export is a 400.
func (e *Exporter) Plan(r *Request, authorize func(typ string) (store.Access, error)) (*Plan, error) {
	p := &Plan{Request: r, Access: map[string]store.Access{}}
	candidates := r.Types
	named := candidates != nil
	if !named {
		for _, typ := range e.params.Types() {
			if typ != "AuditEvent" && e.exportable(typ) && (r.Kind == KindSystem || e.params.Definition(typ).InPatientCompartment()) {
				candidates = append(candidates, typ)
			}
		}
	}
	var refused error
	for _, typ := range candidates {
		if r.Kind != KindSystem && !e.params.Definition(typ).InPatientCompartment() {
			return nil, invalid("_type", typ+" is not in the patient compartment, which a Patient or Group export covers")
		}
		acc, err := authorize(typ)
		if err != nil {
			if named {
				return nil, fmt.Errorf("%w: %w", ErrTypeNotAllowed, err)
			}
			if refused == nil {
				refused = fmt.Errorf("%w: %w", ErrTypeNotAllowed, err)
			}
			continue
		}
		p.Types = append(p.Types, typ)
		p.Access[typ] = acc
	}
	if len(p.Types) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, invalid("_type", "this export covers none of the types")
	}
	for typ := range r.TypeFilters {
		if !slices.Contains(p.Types, typ) {
			return nil, invalid("_typeFilter", "filters "+typ+", which this export does not include")
		}
	}
	return p, nil
}

func truncate(s string) string {
	const most = 64
	if len(s) > most {
		return s[:most] + "…"
	}
	return s
}
