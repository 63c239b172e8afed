package httpapi_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/vidda/vidda/internal/auth"
)

// entries returns "mode:Type" for each entry of a searchset.
func entries(t *testing.T, m map[string]any) []string {
	t.Helper()
	var out []string
	list, _ := m["entry"].([]any)
	for _, e := range list {
		e := e.(map[string]any)
		res, _ := e["resource"].(map[string]any)
		mode := e["search"].(map[string]any)["mode"]
		out = append(out, fmt.Sprintf("%s:%s", mode, res["resourceType"]))
	}
	return out
}

func link(m map[string]any, rel string) string {
	links, _ := m["link"].([]any)
	for _, l := range links {
		if l := l.(map[string]any); l["relation"] == rel {
			return l["url"].(string)
		}
	}
	return ""
}

func TestTheSearchSurface(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	pid := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "SRCH"))
	other := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "OTHER"))
	for d := 1; d <= 4; d++ {
		s.create(t, nurse, "Observation", obsBody(pid, fmt.Sprintf("2026-11-%02dT08:00:00Z", d)))
	}
	s.create(t, nurse, "Observation", obsBody(other, "2026-11-05T08:00:00Z"))
	pt := s.token(t, auth.RolePatient, pid)

	t.Run("a compartment search is the search restricted to the patient", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+pid+"/Observation?_count=2&_sort=-date&_total=accurate", nurse, "")
		m := r.json(t)
		if r.status != 200 || m["total"].(float64) != 4 || len(entries(t, m)) != 2 || link(m, "next") == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		next := strings.TrimPrefix(link(m, "next"), s.base)
		r = s.do(t, "GET", next, nurse, "")
		if m := r.json(t); r.status != 200 || link(m, "previous") == "" || len(entries(t, m)) != 2 {
			t.Fatalf("next page: %d %s", r.status, r.body)
		}
	})
	t.Run("POST _search takes the parameters from a form body", func(t *testing.T) {
		r := s.do(t, "POST", "/fhir/Observation/_search", nurse, url.Values{"patient": {pid}, "date": {"ge2026-11-03"}}.Encode(),
			"Content-Type", "application/x-www-form-urlencoded")
		if m := r.json(t); r.status != 200 || m["total"].(float64) != 2 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("_include adds the patient once, marked include", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?patient="+pid+"&_include=Observation:patient", nurse, "")
		got := entries(t, r.json(t))
		if r.status != 200 || len(got) != 5 || got[4] != "include:Patient" {
			t.Fatalf("%d %v", r.status, got)
		}
	})
	t.Run("_elements keeps the named elements and tags the result", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?patient="+pid+"&_elements=code,value&_count=1", nurse, "")
		body := string(r.body)
		if r.status != 200 || !strings.Contains(body, `"valueQuantity"`) || strings.Contains(body, `"subject"`) || !strings.Contains(body, "SUBSETTED") {
			t.Fatalf("%d %s", r.status, body)
		}
	})
	t.Run("an unknown parameter is ignored with a warning", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?patient="+pid+"&shoe-size=42", nurse, "")
		got := entries(t, r.json(t))
		if r.status != 200 || got[len(got)-1] != "outcome:OperationOutcome" {
			t.Fatalf("%d %v", r.status, got)
		}
	})
	t.Run("and refused with Prefer: handling=strict", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?shoe-size=42", nurse, "", "Prefer", "handling=strict")
		if r.status != 400 || !strings.Contains(string(r.body), "shoe-size") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("an unsupported modifier is refused", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?code:above=x", nurse, "")
		if r.status != 400 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("$lastn answers the newest reading per code", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation/$lastn?patient="+pid+"&max=2", nurse, "")
		m := r.json(t)
		if r.status != 200 || m["total"].(float64) != 2 || !strings.Contains(string(r.body), "2026-11-04T08:00:00Z") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("$lastn without a patient is refused", func(t *testing.T) {
		if r := s.do(t, "GET", "/fhir/Observation/$lastn", nurse, ""); r.status != 400 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("a patient's $lastn and includes stay in their compartment", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation/$lastn?max=5", pt, "")
		if m := r.json(t); r.status != 200 || m["total"].(float64) != 4 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = s.do(t, "GET", "/fhir/Patient?_revinclude=Observation:patient", pt, "")
		if r.status != 200 || strings.Contains(string(r.body), other) || len(entries(t, r.json(t))) != 5 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = s.do(t, "GET", "/fhir/Patient/"+other+"/Observation", pt, "")
		if r.status != 403 {
			t.Fatalf("another patient's compartment: %d %s", r.status, r.body)
		}
	})
	t.Run("the CapabilityStatement lists the registered parameters", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/metadata", "", "")
		for _, p := range []string{`"value-quantity"`, `"combo-code"`, `"general-practitioner"`, `"birthdate"`} {
			if !strings.Contains(string(r.body), p) {
				t.Errorf("metadata lacks %s", p)
			}
		}
	})
}
