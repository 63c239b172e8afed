package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

const contentTypeFHIR = "application/fhir+json; charset=utf-8"

// authorize asks the policy whether the caller may do interaction on typ
// and returns the restriction the store must apply.
func (s *Server) authorize(c *fiber.Ctx, interaction auth.Interaction, typ string) (store.Access, error) {
	def := s.deps.Params.Definition(typ)
	if def == nil || !s.deps.Types.Supports(typ) {
		return store.Access{}, fmt.Errorf("resource type %q: %w", typ, fhir.ErrUnsupportedType)
	}
	d, err := auth.Decide(principal(c), auth.Action{Interaction: interaction, ResourceType: typ, InPatientCompartment: def.InPatientCompartment()})
	if err != nil {
		return store.Access{}, fmt.Errorf("%s %s: %w", interaction, typ, err)
	}
	return store.Access{PatientID: d.PatientID, CareOf: d.CareOf}, nil
}

// params copies the route parameters out of fasthttp's reused buffers.
func params(c *fiber.Ctx) (typ, id string, err error) {
	typ = strings.Clone(c.Params("type"))
	id = strings.Clone(c.Params("id"))
	if c.Params("id") != "" && !fhir.ValidID(id) {
		return typ, id, errBadRequest(fmt.Sprintf("%q is not a valid resource id", id))
	}
	return typ, id, nil
}

func (s *Server) read(c *fiber.Ctx) error {
	typ, id, err := params(c)
	if err != nil {
		return err
	}
	acc, err := s.authorize(c, auth.InteractionRead, typ)
	if err != nil {
		return err
	}
	st, err := s.deps.Store.Read(c.UserContext(), typ, id, acc)
	if err != nil {
		return err
	}
	return s.writeResource(c, fiber.StatusOK, st)
}

func (s *Server) vread(c *fiber.Ctx) error {
	typ, id, err := params(c)
	if err != nil {
		return err
	}
	vid, err := strconv.ParseInt(c.Params("vid"), 10, 64)
	if err != nil || vid < 1 {
		return errBadRequest(fmt.Sprintf("%q is not a version id", c.Params("vid")))
	}
	acc, err := s.authorize(c, auth.InteractionVRead, typ)
	if err != nil {
		return err
	}
	st, err := s.deps.Store.VRead(c.UserContext(), typ, id, vid, acc)
	if err != nil {
		return err
	}
	return s.writeResource(c, fiber.StatusOK, st)
}

func (s *Server) create(c *fiber.Ctx) error {
	typ, _, err := params(c)
	if err != nil {
		return err
	}
	acc, err := s.authorize(c, auth.InteractionCreate, typ)
	if err != nil {
		return err
	}
	res, err := s.parseBody(c, typ)
	if err != nil {
		return err
	}
	if typ == subscriptionType {
		return s.createSubscription(c, res, acc)
	}
	if cond := c.Get("If-None-Exist"); cond != "" {
		q, err := url.ParseQuery(strings.TrimPrefix(cond, "?"))
		if err != nil {
			return errBadRequest("If-None-Exist is not a query string: " + err.Error())
		}
		st, created, err := s.deps.Store.CreateIfNoneExist(c.UserContext(), res, q, acc)
		if err != nil {
			return err
		}
		if !created {
			return s.writeResource(c, fiber.StatusOK, st)
		}
		return s.writeCreated(c, st)
	}
	st, err := s.deps.Store.Create(c.UserContext(), res, acc)
	if err != nil {
		return err
	}
	return s.writeCreated(c, st)
}

func (s *Server) update(c *fiber.Ctx) error {
	typ, id, err := params(c)
	if err != nil {
		return err
	}
	acc, err := s.authorize(c, auth.InteractionUpdate, typ)
	if err != nil {
		return err
	}
	res, err := s.parseBody(c, typ)
	if err != nil {
		return err
	}
	if res.ID != id {
		return &fhir.ValidationError{Issues: []fhir.Issue{{
			Severity: "error", Code: "invalid",
			Diagnostics: fmt.Sprintf("the body's id %q must equal the id in the URL %q", res.ID, id), Expression: []string{typ + ".id"},
		}}}
	}
	var ifMatch int64
	if h := c.Get(fiber.HeaderIfMatch); h != "" {
		if ifMatch, err = parseETag(h); err != nil {
			return err
		}
	}
	if typ == subscriptionType {
		return s.updateSubscription(c, res, id, ifMatch, acc)
	}
	st, created, err := s.deps.Store.Update(c.UserContext(), res, id, ifMatch, acc)
	if err != nil {
		return err
	}
	if created {
		return s.writeCreated(c, st)
	}
	return s.writeResource(c, fiber.StatusOK, st)
}

func (s *Server) delete(c *fiber.Ctx) error {
	typ, id, err := params(c)
	if err != nil {
		return err
	}
	acc, err := s.authorize(c, auth.InteractionDelete, typ)
	if err != nil {
		return err
	}
	st, err := s.deps.Store.Delete(c.UserContext(), typ, id, acc)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, etag(st.VersionID))
	return c.SendStatus(fiber.StatusNoContent)
}

// parseBody checks the media type and validates the resource.
func (s *Server) parseBody(c *fiber.Ctx, typ string) (*fhir.Resource, error) {
	ct := c.Get(fiber.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		return nil, errUnsupportedMedia(ct)
	}
	return s.deps.Types.Parse(typ, c.Body())
}

// parseETag reads W/"3" (or "3") into 3.
func parseETag(h string) (int64, error) {
	v := strings.TrimPrefix(strings.TrimSpace(h), "W/")
	v = strings.Trim(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errBadRequest(fmt.Sprintf("If-Match %q is not a version ETag like W/\"1\"", h))
	}
	return n, nil
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

func (s *Server) resourceURL(typ, id string, version int64) string {
	return s.base + "/fhir/" + typ + "/" + id + "/_history/" + strconv.FormatInt(version, 10)
}

func (s *Server) writeCreated(c *fiber.Ctx, st *store.Stored) error {
	c.Set(fiber.HeaderLocation, s.resourceURL(st.Type, st.ID, st.VersionID))
	return s.writeResource(c, fiber.StatusCreated, st)
}

// writeResource sends the stored bytes as they are, with the version
// headers; Prefer: return=minimal sends none.
func (s *Server) writeResource(c *fiber.Ctx, status int, st *store.Stored) error {
	c.Status(status)
	c.Set(fiber.HeaderETag, etag(st.VersionID))
	c.Set(fiber.HeaderLastModified, st.LastUpdated.UTC().Format(http.TimeFormat))
	if strings.Contains(c.Get("Prefer"), "return=minimal") {
		return nil
	}
	body := st.Content
	if c.Query("_summary") == "true" {
		var err error
		if body, err = s.deps.Types.Summary(st.Type, body); err != nil {
			return fmt.Errorf("summary %s/%s: %w", st.Type, st.ID, err)
		}
	}
	return s.send(c, body)
}

// send writes a JSON body, indented with _pretty=true.
func (s *Server) send(c *fiber.Ctx, body []byte) error {
	c.Set(fiber.HeaderContentType, contentTypeFHIR)
	if c.Query("_pretty") == "true" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, body, "", "  "); err == nil {
			return c.Send(buf.Bytes())
		}
	}
	return c.Send(body)
}

func (s *Server) capability(c *fiber.Ctx) error {
	return s.send(c, s.capJSON)
}

// instant formats t as a FHIR instant.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
