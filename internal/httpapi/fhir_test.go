package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/vidda/vidda/internal/auth"
)

const patientBody = `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"%s"}],"name":[{"family":"Nilsson","given":["Astrid"]}],"gender":"female","birthDate":"1941-03-12","_birthDate":{"extension":[{"url":"http://example.org/accuracy","valueString":"exact"}]}}`

func obsBody(patient, when string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"valueQuantity":{"value":71.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, patient, when)
}

// create posts body and returns the new id.
func (s *server) create(t *testing.T, tok, typ, body string) string {
	t.Helper()
	r := s.do(t, "POST", "/fhir/"+typ, tok, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", typ, r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	return id
}

func TestTheCRUDInteractions(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")

	r := s.do(t, "POST", "/fhir/Patient", nurse, fmt.Sprintf(patientBody, "P-1"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if r.header.Get("ETag") != `W/"1"` {
		t.Errorf("ETag %q, want W/\"1\"", r.header.Get("ETag"))
	}
	if loc := r.header.Get("Location"); loc != s.base+"/fhir/Patient/"+id+"/_history/1" {
		t.Errorf("Location %q", loc)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(string(r.body), "_birthDate") {
		t.Errorf("primitive extension lost: %s", r.body)
	}

	t.Run("read returns the stored resource", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+id, nurse, "")
		if r.status != 200 || r.json(t)["id"] != id {
			t.Fatalf("read: %d %s", r.status, r.body)
		}
	})
	t.Run("_summary=true drops non-summary elements and marks the subset", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+id+"?_summary=true", nurse, "")
		if r.status != 200 || !strings.Contains(string(r.body), "SUBSETTED") {
			t.Fatalf("summary: %d %s", r.status, r.body)
		}
	})
	t.Run("_pretty indents", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+id+"?_pretty=true", nurse, "")
		if !strings.Contains(string(r.body), "\n  ") {
			t.Fatalf("not indented: %s", r.body)
		}
	})

	update := strings.Replace(fmt.Sprintf(patientBody, "P-1"), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)
	t.Run("update with the current version makes version 2", func(t *testing.T) {
		r := s.do(t, "PUT", "/fhir/Patient/"+id, nurse, update, "If-Match", `W/"1"`)
		if r.status != 200 || r.header.Get("ETag") != `W/"2"` {
			t.Fatalf("update: %d %s %s", r.status, r.header.Get("ETag"), r.body)
		}
	})
	t.Run("update with a stale version is 412", func(t *testing.T) {
		r := s.do(t, "PUT", "/fhir/Patient/"+id, nurse, update, "If-Match", `W/"1"`)
		if r.status != 412 || r.outcome(t) != "conflict" {
			t.Fatalf("stale update: %d %s", r.status, r.body)
		}
	})
	t.Run("vread returns version 1", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+id+"/_history/1", nurse, "")
		if r.status != 200 || r.json(t)["meta"].(map[string]any)["versionId"] != "1" {
			t.Fatalf("vread: %d %s", r.status, r.body)
		}
	})
	t.Run("delete, then read is 410", func(t *testing.T) {
		if r := s.do(t, "DELETE", "/fhir/Patient/"+id, nurse, ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		r := s.do(t, "GET", "/fhir/Patient/"+id, nurse, "")
		if r.status != 410 || r.outcome(t) != "deleted" {
			t.Fatalf("read deleted: %d %s", r.status, r.body)
		}
	})
	t.Run("instance history lists every version newest first", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/"+id+"/_history", nurse, "")
		m := r.json(t)
		entries, _ := m["entry"].([]any)
		if r.status != 200 || m["type"] != "history" || len(entries) != 3 {
			t.Fatalf("history: %d %s", r.status, r.body)
		}
		methods := ""
		for _, e := range entries {
			methods += e.(map[string]any)["request"].(map[string]any)["method"].(string) + " "
		}
		if methods != "DELETE PUT POST " {
			t.Errorf("history methods %q", methods)
		}
	})
	t.Run("type history includes the patient", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Patient/_history?_count=10", nurse, "")
		if r.status != 200 || !strings.Contains(string(r.body), id) {
			t.Fatalf("type history: %d %s", r.status, r.body)
		}
	})
}

func TestConditionalCreate(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	first := s.do(t, "POST", "/fhir/Patient", nurse, fmt.Sprintf(patientBody, "COND"), "If-None-Exist", "identifier=urn:test|COND")
	again := s.do(t, "POST", "/fhir/Patient", nurse, fmt.Sprintf(patientBody, "COND"), "If-None-Exist", "identifier=urn:test|COND")
	if first.status != 201 || again.status != 200 || first.json(t)["id"] != again.json(t)["id"] {
		t.Fatalf("conditional create: %d then %d", first.status, again.status)
	}
}

func TestErrorsAreOperationOutcomesWithTheRightStatus(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	pid := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "E-1"))
	s.create(t, nurse, "Observation", obsBody(pid, "2026-11-20T08:00:00Z"))
	tests := []struct {
		name, method, path, token, body string
		headers                         []string
		status                          int
		code                            string
	}{
		{"no token is 401", "GET", "/fhir/Patient", "", "", nil, 401, "login"},
		{"a forged token is 401", "GET", "/fhir/Patient", "eyJhbGciOiJub25lIn0.e30.", "", nil, 401, "login"},
		{"malformed JSON is 400", "POST", "/fhir/Patient", nurse, `{"resourceType":`, nil, 400, ""},
		{"an element R4 does not define is 400", "POST", "/fhir/Patient", nurse, `{"resourceType":"Patient","colour":"blue"}`, nil, 400, ""},
		{"a body of another type is 400", "POST", "/fhir/Patient", nurse, `{"resourceType":"Device"}`, nil, 400, ""},
		{"a missing required element is 422", "POST", "/fhir/Observation", nurse, `{"resourceType":"Observation","code":{"text":"x"}}`, nil, 422, ""},
		{"a reference of the wrong type is 422", "POST", "/fhir/Device", nurse, `{"resourceType":"Device","patient":{"reference":"Practitioner/x"}}`, nil, 422, ""},
		{"a wrong media type is 415", "POST", "/fhir/Patient", nurse, `{"resourceType":"Patient"}`, []string{"Content-Type", "text/plain"}, 415, "not-supported"},
		{"an unknown id is 404", "GET", "/fhir/Patient/nope", nurse, "", nil, 404, "not-found"},
		{"an unknown type is 404", "GET", "/fhir/Spaceship/1", nurse, "", nil, 404, "not-supported"},
		{"a bad id is 400", "GET", "/fhir/Patient/" + strings.Repeat("x", 65), nurse, "", nil, 400, "invalid"},
		{"an update whose body id differs from the URL is 400", "PUT", "/fhir/Patient/" + pid, nurse, `{"resourceType":"Patient","id":"other"}`, nil, 400, "invalid"},
		{"deleting a patient who still has readings is 409", "DELETE", "/fhir/Patient/" + pid, nurse, "", nil, 409, "conflict"},
		{"If-Match that is not a version is 400", "PUT", "/fhir/Patient/" + pid, nurse, `{"resourceType":"Patient","id":"` + pid + `"}`, []string{"If-Match", "yesterday"}, 400, "invalid"},
		{"a strict search with an unknown parameter is 400", "GET", "/fhir/Patient?shoe-size=42", nurse, "", []string{"Prefer", "handling=strict"}, 400, "not-supported"},
		{"a bad date is 400", "GET", "/fhir/Observation?date=yesterday", nurse, "", nil, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, tt.method, tt.path, tt.token, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			code := r.outcome(t)
			if tt.code != "" && code != tt.code {
				t.Errorf("issue code %q, want %q", code, tt.code)
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestAPatientSeesOnlyTheirOwnData(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	me := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "ME"))
	other := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "OTHER"))
	mine := s.create(t, nurse, "Observation", obsBody(me, "2026-11-20T08:00:00Z"))
	theirs := s.create(t, nurse, "Observation", obsBody(other, "2026-11-20T08:00:00Z"))
	prac := s.create(t, nurse, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Holm"}]}`)
	pt := s.token(t, auth.RolePatient, me)

	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"reads their own Patient", "GET", "/fhir/Patient/" + me, "", 200},
		{"reads their own Observation", "GET", "/fhir/Observation/" + mine, "", 200},
		{"gets 404 for another patient's Observation", "GET", "/fhir/Observation/" + theirs, "", 404},
		{"gets 404 for another Patient", "GET", "/fhir/Patient/" + other, "", 404},
		{"gets 404 for another patient's Observation history", "GET", "/fhir/Observation/" + theirs + "/_history/1", "", 404},
		{"is refused a search naming another patient", "GET", "/fhir/Observation?patient=" + other, "", 403},
		{"is refused Practitioners (outside the compartment)", "GET", "/fhir/Practitioner/" + prac, "", 403},
		{"may not write", "POST", "/fhir/Observation", obsBody(me, "2026-11-21T08:00:00Z"), 403},
		{"may not delete", "DELETE", "/fhir/Observation/" + mine, "", 403},
	}
	for _, tt := range tests {
		t.Run("a patient "+tt.name, func(t *testing.T) {
			r := s.do(t, tt.method, tt.path, pt, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if r.status >= 400 {
				r.outcome(t)
				if strings.Contains(string(r.body), "71.5") {
					t.Error("a denial leaked the reading")
				}
			}
		})
	}
	t.Run("a patient's unfiltered search returns only their own readings", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation", pt, "")
		m := r.json(t)
		if r.status != 200 || m["total"].(float64) != 1 || strings.Contains(string(r.body), theirs) {
			t.Fatalf("search: %d %s", r.status, r.body)
		}
	})
	t.Run("a patient's type history holds only their own", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation/_history", pt, "")
		if r.status != 200 || strings.Contains(string(r.body), theirs) || !strings.Contains(string(r.body), mine) {
			t.Fatalf("history: %d %s", r.status, r.body)
		}
	})
}

func TestSearchBundlesPageWithNextLinks(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	pid := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "S-1"))
	for d := 1; d <= 7; d++ {
		s.create(t, nurse, "Observation", obsBody(pid, fmt.Sprintf("2026-11-%02dT08:00:00Z", d)))
	}
	seen := 0
	path := "/fhir/Observation?patient=" + pid + "&code=http://loinc.org|29463-7&date=ge2026-11-02&_count=3"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		r := s.do(t, "GET", path, nurse, "")
		m := r.json(t)
		// Pages of 3 out of 6: no total unless asked for (see below).
		_, counted := m["total"].(float64)
		if r.status != 200 || m["type"] != "searchset" || counted {
			t.Fatalf("search page %d: %d %s", pages, r.status, r.body)
		}
		entries, _ := m["entry"].([]any)
		seen += len(entries)
		path = ""
		for _, l := range m["link"].([]any) {
			if l.(map[string]any)["relation"] == "next" {
				path = strings.TrimPrefix(l.(map[string]any)["url"].(string), s.base)
			}
		}
	}
	if seen != 6 {
		t.Fatalf("paged through %d entries, want 6", seen)
	}
	r0 := s.do(t, "GET", "/fhir/Observation?patient="+pid+"&date=ge2026-11-02&_count=3&_total=accurate", nurse, "")
	if total, _ := r0.json(t)["total"].(float64); total != 6 {
		t.Fatalf("_total=accurate: %s", r0.body)
	}
	r := s.do(t, "GET", "/fhir/Patient?identifier=urn:test|S-1", nurse, "")
	if m := r.json(t); m["total"].(float64) != 1 {
		t.Fatalf("identifier search: %s", r.body)
	}
	r = s.do(t, "GET", "/fhir/Patient?shoe-size=42", nurse, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"mode":"outcome"`) {
		t.Fatalf("lenient unknown parameter: %d %s", r.status, r.body)
	}
	form := s.do(t, "POST", "/fhir/Patient/_search", nurse, "identifier=S-1", "Content-Type", "application/x-www-form-urlencoded")
	if form.status != 200 || form.json(t)["total"].(float64) != 1 {
		t.Fatalf("POST _search: %d %s", form.status, form.body)
	}
}

func TestConcurrentPutsOnOneVersionLetOneWin(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	id := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "RACE"))
	body := `{"resourceType":"Patient","id":"` + id + `","active":true}`
	var wg sync.WaitGroup
	statuses := make(chan int, 10)
	for range 10 {
		wg.Go(func() { statuses <- s.do(t, "PUT", "/fhir/Patient/"+id, nurse, body, "If-Match", `W/"1"`).status })
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[200] != 1 || count[412] != 9 {
		t.Fatalf("statuses %v, want one 200 and nine 412", count)
	}
}

func TestPublicAndProtectedOperationalEndpoints(t *testing.T) {
	s := newServer(t)
	for _, tt := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/fhir/metadata", "", 200},
		{"/metrics", "", 401},
		{"/metrics", s.token(t, auth.RoleNurse, ""), 403},
		{"/metrics", s.token(t, auth.RoleAdmin, ""), 200},
	} {
		if r := s.do(t, "GET", tt.path, tt.token, ""); r.status != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, r.status, tt.status)
		}
	}
	m := s.do(t, "GET", "/fhir/metadata", "", "").json(t)
	if m["resourceType"] != "CapabilityStatement" || m["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %v", m)
	}
	rest := m["rest"].([]any)[0].(map[string]any)
	sec, _ := json.Marshal(rest["security"])
	if !strings.Contains(string(sec), `"token","valueUri":"`+s.base+`/auth/token"`) || !strings.Contains(string(sec), "SMART-on-FHIR") {
		t.Errorf("security does not declare SMART and the token URL: %s", sec)
	}
	for _, r := range rest["resource"].([]any) {
		r := r.(map[string]any)
		if r["type"] != "AuditEvent" {
			continue
		}
		inter, _ := json.Marshal(r["interaction"])
		if strings.Contains(string(inter), "create") || strings.Contains(string(inter), "update") || strings.Contains(string(inter), "delete") {
			t.Errorf("AuditEvent declared writable: %s", inter)
		}
	}
	met := s.do(t, "GET", "/metrics", s.token(t, auth.RoleAdmin, ""), "")
	for _, want := range []string{"vidda_http_requests_total", "vidda_http_request_duration_seconds"} {
		if !strings.Contains(string(met.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
