package subscription

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// The statuses of a Subscription (R4 ValueSet subscription-status). A
// client writes requested or off (anything else is taken as requested);
// the server moves requested to active or error, and back.
const (
	StatusRequested = "requested"
	StatusActive    = "active"
	StatusError     = "error"
	StatusOff       = "off"
)

// PayloadFHIR is the one payload vidda sends; without a payload a
// notification has no body (R4 "id-only": the headers name the resource).
const PayloadFHIR = "application/fhir+json"

// subscriptionType is the resource type this package serves, and the one
// type a Subscription cannot search: a server-side status change would
// notify itself.
const subscriptionType = "Subscription"

// Spec is a checked Subscription: what the runner needs of it.
type Spec struct {
	// Type and Criteria are the parsed criteria: a search of Type.
	Type     string
	Criteria *search.Query
	Endpoint *url.URL
	// Payload is PayloadFHIR or "" (no body).
	Payload string
	// Header holds channel.header.
	Header http.Header
	// Status and Error are as stored.
	Status, Error string
	// End, when not zero, is when the subscription turns off.
	End time.Time
}

// Checker checks Subscriptions against the registries vidda serves.
type Checker struct {
	types  *fhir.Registry
	params *search.Registry
	cfg    Config
}

// NewChecker returns a Checker; cfg.AllowHTTP decides which endpoints pass.
func NewChecker(types *fhir.Registry, params *search.Registry, cfg Config) *Checker {
	return &Checker{types: types, params: params, cfg: cfg}
}

// Check reads a Subscription (already valid R4, as fhir.Registry.Parse
// leaves it) and refuses what vidda cannot serve with a semantic
// *fhir.ValidationError listing every problem (422).
func (c *Checker) Check(res *fhir.Resource) (*Spec, error) {
	m, ok := res.Model.(*fm.Subscription)
	if !ok || res.Type != subscriptionType {
		return nil, fmt.Errorf("check subscription: %s is not a Subscription", res.Type)
	}
	var issues []fhir.Issue
	bad := func(expr, format string, args ...any) {
		issues = append(issues, fhir.Issue{
			Severity: fhir.SeverityError, Code: fhir.IssueNotSupported,
			Diagnostics: fmt.Sprintf(format, args...), Expression: []string{expr},
		})
	}
	sp := &Spec{Status: m.Status.Code(), Header: http.Header{}}
	if m.Error != nil {
		sp.Error = *m.Error
	}
	c.criteria(sp, m.Criteria, bad)
	if m.Channel.Type != fm.SubscriptionChannelTypeRestHook {
		bad("Subscription.channel.type", "channel type %q is not supported: vidda sends rest-hook notifications only", m.Channel.Type.Code())
	}
	c.endpoint(sp, m.Channel.Endpoint, bad)
	if m.Channel.Payload != nil && *m.Channel.Payload != "" {
		mt, _, err := mime.ParseMediaType(*m.Channel.Payload)
		if err != nil || mt != PayloadFHIR {
			bad("Subscription.channel.payload", "payload %q is not supported: use %s, or leave it out for notifications without a body", *m.Channel.Payload, PayloadFHIR)
		} else {
			sp.Payload = PayloadFHIR
		}
	}
	for i, h := range m.Channel.Header {
		name, value, err := splitHeader(h)
		if err != nil {
			bad(fmt.Sprintf("Subscription.channel.header[%d]", i), "%v", err)
			continue
		}
		sp.Header.Add(name, value)
	}
	if m.End != nil {
		if t, err := time.Parse(time.RFC3339Nano, *m.End); err == nil {
			sp.End = t
		} else {
			bad("Subscription.end", "end %q is not an instant", *m.End)
		}
	}
	if len(issues) > 0 {
		return nil, &fhir.ValidationError{Semantic: true, Issues: issues}
	}
	return sp, nil
}

// criteria parses "Type?search" as a search of Type would be (strictly:
// an unknown parameter is an error, not a subscription to everything).
func (c *Checker) criteria(sp *Spec, criteria string, bad func(string, string, ...any)) {
	const expr = "Subscription.criteria"
	typ, query, _ := strings.Cut(strings.TrimSpace(criteria), "?")
	switch {
	case typ == "" || strings.ContainsAny(typ, "/:"):
		bad(expr, "criteria %q must be a relative search, Type?parameters, as in Observation?patient=123&code=http://loinc.org|29463-7", criteria)
		return
	case typ == subscriptionType:
		bad(expr, "criteria cannot search Subscriptions")
		return
	case !c.types.Supports(typ) || c.params.Definition(typ) == nil:
		bad(expr, "criteria search %s, which vidda does not serve; it serves %s", typ, strings.Join(c.subscribable(), ", "))
		return
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		bad(expr, "criteria %q: the parameters are not a query string: %v", criteria, err)
		return
	}
	for _, control := range []string{"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor", "_format", "_pretty"} {
		if vals.Has(control) {
			bad(expr, "criteria: %s shapes search results; criteria only select resources", control)
		}
	}
	q, err := c.params.Parse(typ, vals, true)
	var verr *fhir.ValidationError
	switch {
	case errors.As(err, &verr):
		for _, is := range verr.Issues {
			bad(expr, "criteria: %s", is.Diagnostics)
		}
		return
	case err != nil:
		bad(expr, "criteria: %v", err)
		return
	}
	sp.Type, sp.Criteria = typ, q
}

// subscribable lists the types criteria may search.
func (c *Checker) subscribable() []string {
	var out []string
	for _, t := range c.params.Types() {
		if t != subscriptionType && c.types.Supports(t) {
			out = append(out, t)
		}
	}
	return out
}

// endpoint accepts an absolute https URL, or http when allowed or on
// loopback, without credentials in it (they belong in channel.header).
func (c *Checker) endpoint(sp *Spec, endpoint *string, bad func(string, string, ...any)) {
	const expr = "Subscription.channel.endpoint"
	if endpoint == nil || *endpoint == "" {
		bad(expr, "a rest-hook subscription needs channel.endpoint")
		return
	}
	u, err := url.Parse(*endpoint)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		bad(expr, "endpoint is not an absolute http(s) URL")
		return
	case u.User != nil:
		bad(expr, "endpoint must not hold credentials; send them in channel.header")
		return
	case u.Fragment != "":
		bad(expr, "endpoint must not have a fragment")
		return
	case u.Scheme == "https":
	case u.Scheme == "http" && (c.cfg.AllowHTTP || loopback(u.Hostname())):
	case u.Scheme == "http":
		bad(expr, "endpoint must be https (http is accepted only on a loopback host)")
		return
	default:
		bad(expr, "endpoint scheme %q is not supported: use https", u.Scheme)
		return
	}
	sp.Endpoint = u
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitHeader reads a channel.header, "Name: value" (R4: "HTTP header
// field"). The headers vidda sets itself cannot be given.
func splitHeader(h string) (name, value string, err error) {
	name, value, ok := strings.Cut(h, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	switch {
	case !ok || !validToken(name):
		return "", "", fmt.Errorf("header %q is not \"Name: value\"", truncate(h))
	case strings.ContainsAny(value, "\r\n\x00"):
		return "", "", fmt.Errorf("header %s: the value holds a line break", name)
	}
	if c := http.CanonicalHeaderKey(name); c == "Host" || c == "Content-Length" || c == "Content-Type" ||
		c == "Transfer-Encoding" || c == "Connection" || strings.HasPrefix(c, "X-Vidda-") {
		return "", "", fmt.Errorf("header %s is set by vidda", c)
	}
	return name, value, nil
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
