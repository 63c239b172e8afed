package httpapi

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// lastnParams are the parameters Observation/$lastn takes besides max
// (R4 Observation §6.3.5.1).
func lastnParams() []string {
	return []string{"patient", "subject", "category", "code", "_format", "_pretty", "_summary", "_elements"}
}

// maxLastN caps $lastn's max, like _count caps a page.
const maxLastN = 100

// lastn is GET Observation/$lastn?patient=X[&category=][&code=][&max=N]:
// the N most recent Observations per code, newest first, in one searchset.
func (s *Server) lastn(c *fiber.Ctx) error {
	acc, err := s.authorize(c, auth.InteractionSearch, "Observation")
	if err != nil {
		return err
	}
	raw := queryArgs(c)
	n := 1
	if v := raw.Get("max"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return errBadRequest("$lastn: max must be a positive integer")
		}
		n = min(n, maxLastN)
	}
	raw.Del("max")
	for k := range raw {
		if !slices.Contains(lastnParams(), k) {
			return errBadRequest(fmt.Sprintf("$lastn: unsupported parameter %q (it takes patient, subject, category, code and max)", k))
		}
	}
	if acc.PatientID == "" && raw.Get("patient") == "" && raw.Get("subject") == "" {
		return errBadRequest("$lastn: name the patient (patient=...)")
	}
	q, err := s.deps.Params.Parse("Observation", raw, true)
	if err != nil {
		return err
	}
	if err := s.confine(c, q, acc); err != nil {
		return err
	}
	found, err := s.deps.Store.LastN(c.UserContext(), q, n, acc)
	if err != nil {
		return err
	}
	b := newBundle("searchset")
	b.grow(entriesSize(s.base, found))
	total := int64(len(found))
	b.total = &total
	q.Params.Set("max", strconv.Itoa(n))
	b.link("self", s.base+"/fhir/Observation/$lastn?"+q.Params.Encode())
	for _, e := range found {
		content, err := s.shape(q, e)
		if err != nil {
			return err
		}
		b.entry(s.base+"/fhir/Observation/"+e.ID, content, `"search":{"mode":"match"}`)
	}
	return s.send(c, b.bytes())
}
