package httpapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// search is GET [type]?query.
func (s *Server) search(c *fiber.Ctx) error {
	typ, _, err := params(c)
	if err != nil {
		return err
	}
	return s.runSearch(c, typ, queryArgs(c))
}

// searchPost is POST [type]/_search with a form body (R4 http §3.1.0.9.1):
// the same search, its parameters in the body (and the URL).
func (s *Server) searchPost(c *fiber.Ctx) error {
	typ, _, err := params(c)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationForm) {
		return errUnsupportedMedia(c.Get(fiber.HeaderContentType))
	}
	q, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return errBadRequest("form body: " + err.Error())
	}
	for k, vs := range queryArgs(c) {
		q[k] = append(q[k], vs...)
	}
	return s.runSearch(c, typ, q)
}

// compartmentSearch is GET Patient/[id]/[type]?query (R4 §3.1.1.2.1): the
// search, restricted to the resources of that patient's compartment.
func (s *Server) compartmentSearch(c *fiber.Ctx) error {
	comp, id, err := params(c)
	if err != nil {
		return err
	}
	typ := strings.Clone(c.Params("ctype"))
	if comp != "Patient" {
		return errNotSupported("compartment " + comp + " (only Patient compartments are searchable)")
	}
	def := s.deps.Params.Definition(typ)
	if def == nil {
		return fmt.Errorf("resource type %q: %w", typ, fhir.ErrUnsupportedType)
	}
	q := queryArgs(c)
	switch {
	case typ == "Patient":
		q.Add("_id", id)
	case def.InPatientCompartment():
		var link *search.Param
		for _, p := range def.Params {
			if p.Column == "patient_id" {
				link = p
			}
		}
		if link == nil {
			return errNotSupported(typ + " in a Patient compartment")
		}
		q.Add(link.Name, id)
	default:
		return errBadRequest(typ + " is not in the Patient compartment")
	}
	return s.runSearch(c, typ, q)
}

func queryArgs(c *fiber.Ctx) url.Values {
	q := url.Values{}
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) { q.Add(string(k), string(v)) })
	return q
}

func (s *Server) runSearch(c *fiber.Ctx, typ string, raw url.Values) error {
	acc, err := s.authorize(c, auth.InteractionSearch, typ)
	if err != nil {
		return err
	}
	strict := strings.Contains(c.Get("Prefer"), "handling=strict")
	q, err := s.deps.Params.Parse(typ, raw, strict)
	if err != nil {
		return err
	}
	if err := s.confine(c, q, acc); err != nil {
		return err
	}
	page, err := s.deps.Store.Search(c.UserContext(), q, acc)
	if err != nil {
		return err
	}
	body, err := s.searchset(q, page)
	if err != nil {
		return err
	}
	return s.send(c, body)
}

// confine refuses a patient-restricted search that names another patient,
// instead of quietly answering with nothing, and a search that includes
// resources the caller may not search.
func (s *Server) confine(c *fiber.Ctx, q *search.Query, acc store.Access) error {
	if acc.PatientID != "" {
		for _, f := range q.Filters {
			if f.Param.Column != "patient_id" || f.Modifier == "missing" || f.Chain != nil {
				continue
			}
			for _, v := range f.Values {
				for _, id := range v.Refs {
					if id != acc.PatientID {
						return fmt.Errorf("search names another patient: %w", auth.ErrForbidden)
					}
				}
			}
		}
	}
	for _, inc := range q.Include {
		targets := inc.Param.Targets
		if inc.Target != "" {
			targets = []string{inc.Target}
		}
		for _, t := range targets {
			if s.deps.Params.Definition(t) == nil {
				continue
			}
			if _, err := s.authorize(c, auth.InteractionSearch, t); err != nil {
				return fmt.Errorf("_include=%s:%s: %w", inc.Source, inc.Param.Name, err)
			}
		}
	}
	for _, rev := range q.RevInclude {
		if _, err := s.authorize(c, auth.InteractionSearch, rev.Source); err != nil {
			return fmt.Errorf("_revinclude=%s:%s: %w", rev.Source, rev.Param.Name, err)
		}
	}
	return nil
}

// searchset writes the Bundle a search answers: matches, then included
// resources, then a warning for what was ignored.
func (s *Server) searchset(q *search.Query, page *store.Page) ([]byte, error) {
	b := newBundle("searchset")
	b.grow(entriesSize(s.base, page.Entries, page.Included))
	if page.Total >= 0 {
		b.total = &page.Total
	}
	at := s.searchURL(q.Type, q.Params)
	b.link("self", at(q.Cursor))
	if page.NextCursor != "" {
		b.link("next", at(page.NextCursor))
	}
	if page.PrevCursor != "" {
		b.link("previous", at(page.PrevCursor))
	}
	for _, group := range []struct {
		mode    string
		entries []store.Stored
	}{{"match", page.Entries}, {"include", page.Included}} {
		for _, e := range group.entries {
			content, err := s.shape(q, e)
			if err != nil {
				return nil, err
			}
			b.entry(s.base+"/fhir/"+e.Type+"/"+e.ID, content, `"search":{"mode":"`+group.mode+`"}`)
		}
	}
	if len(q.Ignored) > 0 {
		oo := fhir.OperationOutcome(fhir.Issue{
			Severity: "warning", Code: "not-supported",
			Diagnostics: "ignored search parameters: " + strings.Join(q.Ignored, ", "),
		})
		b.entry("", oo, `"search":{"mode":"outcome"}`)
	}
	return b.bytes(), nil
}

// shape applies _summary and _elements to one result (R4 search
// §3.1.1.5.8–9); otherwise the stored bytes go out as they are.
func (s *Server) shape(q *search.Query, e store.Stored) ([]byte, error) {
	var out []byte
	var err error
	switch {
	case q.Summary == "true":
		out, err = s.deps.Types.Summary(e.Type, e.Content)
	case q.Summary == "data":
		out, err = s.deps.Types.WithoutText(e.Type, e.Content)
	case q.Summary == "text":
		out, err = s.deps.Types.Elements(e.Type, e.Content, []string{"text"})
	case len(q.Elements) > 0 && e.Type == q.Type:
		out, err = s.deps.Types.Elements(e.Type, e.Content, q.Elements)
	default:
		return e.Content, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shape %s/%s: %w", e.Type, e.ID, err)
	}
	return out, nil
}

// searchURL returns the URL of typ's search with params at a cursor ("" for
// the first page).
func (s *Server) searchURL(typ string, params url.Values) func(cursor string) string {
	u := s.base + "/fhir/" + typ
	enc := params.Encode() // once for the self, next and previous links
	return func(cursor string) string {
		switch {
		case cursor != "" && enc != "":
			return u + "?" + enc + "&_cursor=" + url.QueryEscape(cursor)
		case cursor != "":
			return u + "?_cursor=" + url.QueryEscape(cursor)
		case enc != "":
			return u + "?" + enc
		}
		return u
	}
}
