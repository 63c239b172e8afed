package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/httpapi"
)

// bundleOf builds a Bundle of type typ around entries.
func bundleOf(typ string, entries ...string) string {
	return fmt.Sprintf(`{"resourceType":"Bundle","type":%q,"entry":[%s]}`, typ, strings.Join(entries, ","))
}

// req builds one entry; fullURL and resource may be empty, extra are more
// request members ("ifNoneExist":"...").
func req(method, u, fullURL, resource string, extra ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	if fullURL != "" {
		fmt.Fprintf(&b, `"fullUrl":%q,`, fullURL)
	}
	if resource != "" {
		fmt.Fprintf(&b, `"resource":%s,`, resource)
	}
	fmt.Fprintf(&b, `"request":{"method":%q,"url":%q`, method, u)
	for _, x := range extra {
		b.WriteString("," + x)
	}
	b.WriteString("}}")
	return b.String()
}

// answers are the entries of a transaction-response or batch-response.
type answer struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Response struct {
		Status       string          `json:"status"`
		Location     string          `json:"location"`
		Etag         string          `json:"etag"`
		LastModified string          `json:"lastModified"`
		Outcome      json.RawMessage `json:"outcome"`
	} `json:"response"`
}

func answers(t *testing.T, r *response, wantType string) []answer {
	t.Helper()
	var b struct {
		ResourceType, Type string
		Entry              []answer
	}
	if err := json.Unmarshal(r.body, &b); err != nil || r.status != 200 || b.ResourceType != "Bundle" || b.Type != wantType {
		t.Fatalf("want a %s Bundle, got %d %s", wantType, r.status, r.body)
	}
	return b.Entry
}

// newID reads the id from a location Type/id/_history/v.
func (a *answer) newID(t *testing.T, typ string) string {
	t.Helper()
	m := regexp.MustCompile(`^` + typ + `/([A-Za-z0-9\-.]+)/_history/(\d+)$`).FindStringSubmatch(a.Response.Location)
	if m == nil {
		t.Fatalf("location %q is not %s/id/_history/v", a.Response.Location, typ)
	}
	return m[1]
}

const (
	urnPatient = "urn:uuid:6f0e1d52-2a7c-4c1e-9a43-0d3c1b7a0001"
	urnObs     = "urn:uuid:6f0e1d52-2a7c-4c1e-9a43-0d3c1b7a0002"
)

// clientObs is an Observation as a client would write it, spacing,
// trailing zeros and primitive extensions included.
func clientObs(subject, code string) string {
	return `{"resourceType": "Observation", "status": "final",
	  "code": {"coding": [{"system": "http://loinc.org", "code": "` + code + `"}]},
	  "subject": { "reference" : "` + subject + `" },
	  "effectiveDateTime": "2026-11-20T07:31:00+01:00", "_effectiveDateTime": {"extension": [{"url": "http://example.org/src", "valueString": "cuff"}]},
	  "valueQuantity": {"value": 71.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}`
}

func TestATransactionCreatesAPatientWithTheObservationsThatReferToIt(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	first := clientObs(urnPatient, "29463-7")
	second := strings.Replace(clientObs(urnPatient, "8867-4"), `"status"`, `"derivedFrom": [{"reference": "`+urnObs+`"}], "status"`, 1)
	r := s.do(t, "POST", "/fhir", nurse, bundleOf("transaction",
		req("POST", "Observation", "", second),
		req("POST", "Observation", urnObs, first),
		req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "TX-1")),
	))
	got := answers(t, r, "transaction-response")
	if len(got) != 3 {
		t.Fatalf("%d entries answered, want 3: %s", len(got), r.body)
	}
	for i, a := range got {
		if a.Response.Status != "201 Created" || a.Response.Etag != `W/"1"` || a.Response.LastModified == "" {
			t.Errorf("entry %d answered %+v", i, a.Response)
		}
	}
	patientID, obsID, secondID := got[2].newID(t, "Patient"), got[1].newID(t, "Observation"), got[0].newID(t, "Observation")

	t.Run("a search by the new patient finds both observations", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/Observation?patient="+patientID, nurse, "")
		if total := r.json(t)["total"]; total != 2.0 {
			t.Fatalf("total %v, want 2: %s", total, r.body)
		}
	})
	t.Run("what is stored is the client's bytes with only id, meta and the references changed", func(t *testing.T) {
		for _, c := range []struct{ id, client string }{{obsID, first}, {secondID, second}} {
			r := s.do(t, "GET", "/fhir/Observation/"+c.id, nurse, "")
			lastUpdated, err := time.Parse(time.RFC3339Nano, r.json(t)["meta"].(map[string]any)["lastUpdated"].(string))
			if err != nil {
				t.Fatal(err)
			}
			sent := strings.NewReplacer(urnPatient, "Patient/"+patientID, urnObs, "Observation/"+obsID).Replace(c.client)
			want, err := fhir.WithMeta([]byte(sent), c.id, "1", lastUpdated)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.body, want) {
				t.Errorf("stored\n%s\nwant\n%s", r.body, want)
			}
		}
	})
}

func TestAConditionalCreateInATransactionCreatesNothingTheSecondTime(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	body := bundleOf("transaction",
		req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "COND-TX"), `"ifNoneExist":"identifier=urn:test|COND-TX"`),
		req("POST", "Observation", "", clientObs(urnPatient, "29463-7"),
			`"ifNoneExist":"patient=`+urnPatient+`&code=http://loinc.org|29463-7&date=2026-11-20"`),
	)
	var ids [2][2]string
	for run, want := range []string{"201 Created", "200 OK"} {
		got := answers(t, s.do(t, "POST", "/fhir", nurse, body), "transaction-response")
		for i, a := range got {
			if a.Response.Status != want {
				t.Errorf("run %d entry %d: %s, want %s", run+1, i, a.Response.Status, want)
			}
		}
		ids[run] = [2]string{got[0].newID(t, "Patient"), got[1].newID(t, "Observation")}
	}
	if ids[0] != ids[1] {
		t.Errorf("the second run named %v, the first %v", ids[1], ids[0])
	}
	if r := s.do(t, "GET", "/fhir/Patient?identifier=urn:test|COND-TX", nurse, ""); r.json(t)["total"] != 1.0 {
		t.Errorf("patients: %s", r.body)
	}
	if r := s.do(t, "GET", "/fhir/Observation?patient="+ids[0][0], nurse, ""); r.json(t)["total"] != 1.0 {
		t.Errorf("observations: %s", r.body)
	}
}

func TestAConditionalUpdate(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "TWO"))
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "TWO"))
	put := func(ident, body string) *response {
		return s.do(t, "POST", "/fhir", nurse, bundleOf("transaction", req("PUT", "Patient?identifier=urn:test|"+ident, "", body)))
	}
	var created string
	t.Run("with no match creates the resource", func(t *testing.T) {
		got := answers(t, put("UPD", fmt.Sprintf(patientBody, "UPD")), "transaction-response")
		if got[0].Response.Status != "201 Created" {
			t.Fatalf("%+v", got[0].Response)
		}
		created = got[0].newID(t, "Patient")
	})
	t.Run("with one match updates that resource", func(t *testing.T) {
		got := answers(t, put("UPD", strings.Replace(fmt.Sprintf(patientBody, "UPD"), "Astrid", "Ingrid", 1)), "transaction-response")
		if got[0].Response.Status != "200 OK" || got[0].Response.Location != "Patient/"+created+"/_history/2" {
			t.Fatalf("%+v, want version 2 of Patient/%s", got[0].Response, created)
		}
	})
	t.Run("with several matches is 412", func(t *testing.T) {
		r := put("TWO", fmt.Sprintf(patientBody, "TWO"))
		if r.status != 412 || r.outcome(t) != "conflict" || !strings.Contains(string(r.body), "Bundle.entry[0]") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("whose body names another id than the match is 400", func(t *testing.T) {
		body := strings.Replace(fmt.Sprintf(patientBody, "UPD"), `"resourceType":"Patient"`, `"resourceType":"Patient","id":"someone-else"`, 1)
		if r := put("UPD", body); r.status != 400 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

// history counts every version of every resource of typ.
func (s *server) history(t *testing.T, tok, typ string) int {
	t.Helper()
	r := s.do(t, "GET", "/fhir/"+typ+"/_history?_count=1000", tok, "")
	entries, _ := r.json(t)["entry"].([]any)
	return len(entries)
}

func TestATransactionThatFailsHalfWayLeavesNothingBehind(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	existing := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "OLD"))
	update := req("PUT", "Patient/"+existing, "", strings.Replace(fmt.Sprintf(patientBody, "NEW"), `"resourceType":"Patient"`, `"resourceType":"Patient","id":"`+existing+`"`, 1))
	tests := []struct {
		name   string
		third  string
		status int
	}{
		{"a read of a missing resource, after every write", req("GET", "Patient/nobody", "", ""), 404},
		{"an invalid observation", req("POST", "Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"colour":"red"}`), 400},
		{"an observation without its required status", req("POST", "Observation", "", `{"resourceType":"Observation","code":{"text":"x"}}`), 422},
		{"a conditional create that matches two patients", req("POST", "Patient", "", fmt.Sprintf(patientBody, "DUP"), `"ifNoneExist":"identifier=DUP"`), 412},
		{"a type the server does not serve", req("GET", "MedicationRequest/m1", "", ""), 404},
		{"a second change of the same resource", update, 400},
	}
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "DUP"))
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "DUP"))
	patients, observations := s.history(t, nurse, "Patient"), s.history(t, nurse, "Observation")
	for _, tt := range tests {
		t.Run("when entry 3 of 4 is "+tt.name+", entries 1, 2 and 4 are undone", func(t *testing.T) {
			r := s.do(t, "POST", "/fhir", nurse, bundleOf("transaction",
				req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "HALF")),
				req("POST", "Observation", "", clientObs(urnPatient, "29463-7")),
				tt.third,
				update,
			))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			r.outcome(t)
			if !strings.Contains(string(r.body), "Bundle.entry[") {
				t.Errorf("the outcome does not name the entry: %s", r.body)
			}
			if p, o := s.history(t, nurse, "Patient"), s.history(t, nurse, "Observation"); p != patients || o != observations {
				t.Errorf("versions: %d patients and %d observations, want %d and %d", p, o, patients, observations)
			}
			if r := s.do(t, "GET", "/fhir/Patient?identifier=HALF", nurse, ""); r.json(t)["total"] != 0.0 {
				t.Errorf("the new patient is there: %s", r.body)
			}
			if r := s.do(t, "GET", "/fhir/Patient/"+existing, nurse, ""); r.header.Get("ETag") != `W/"1"` {
				t.Errorf("the existing patient changed: %s", r.header.Get("ETag"))
			}
		})
	}
}

func TestABatchAppliesEveryEntryThatSucceeds(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	pid := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "B-1"))
	r := s.do(t, "POST", "/fhir", nurse, bundleOf("batch",
		req("POST", "Observation", "", clientObs("Patient/"+pid, "29463-7")),
		req("POST", "Observation", "", `{"resourceType":"Observation","status":"bogus","code":{"text":"x"}}`),
		req("GET", "Patient/nobody", "", ""),
		req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "B-2")),
		req("POST", "Observation", "", clientObs(urnPatient, "8867-4")),
		req("GET", "Patient/"+pid, "", ""),
	))
	got := answers(t, r, "batch-response")
	want := []string{"201 Created", "422 Unprocessable Entity", "404 Not Found", "201 Created", "400 Bad Request", "200 OK"}
	if len(got) != len(want) {
		t.Fatalf("%d entries answered: %s", len(got), r.body)
	}
	for i, a := range got {
		if a.Response.Status != want[i] {
			t.Errorf("entry %d: %s, want %s", i, a.Response.Status, want[i])
		}
		failed := want[i][0] != '2'
		if failed && !bytes.Contains(a.Response.Outcome, []byte(`"resourceType":"OperationOutcome"`)) {
			t.Errorf("entry %d failed without an OperationOutcome: %s", i, a.Response.Outcome)
		}
		if !failed && a.Response.Outcome != nil {
			t.Errorf("entry %d succeeded with an outcome", i)
		}
	}
	if !bytes.Contains(got[4].Response.Outcome, []byte("Bundle.entry[3]")) {
		t.Errorf("the reference to another entry is not explained: %s", got[4].Response.Outcome)
	}
	if !bytes.Contains(got[5].Resource, []byte(pid)) {
		t.Errorf("the read answered %s", got[5].Resource)
	}
	if r := s.do(t, "GET", "/fhir/Observation?patient="+pid, nurse, ""); r.json(t)["total"] != 1.0 {
		t.Errorf("the good observation is not stored: %s", r.body)
	}
}

func TestGETEntriesSeeTheDeletesAndCreatesOfTheirTransaction(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	pid := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "G-1"))
	gone := s.create(t, nurse, "Observation", obsBody(pid, "2026-11-18T08:00:00Z"))
	s.create(t, nurse, "Observation", obsBody(pid, "2026-11-19T08:00:00Z"))
	r := s.do(t, "POST", "/fhir", nurse, bundleOf("transaction",
		req("GET", "Patient/"+pid, "", ""),
		req("GET", "Observation?patient="+pid+"&_count=10", "", ""),
		req("POST", "Observation", "", obsBody(pid, "2026-11-20T08:00:00Z")),
		req("DELETE", "Observation/"+gone, "", ""),
	))
	got := answers(t, r, "transaction-response")
	if got[0].Response.Status != "200 OK" || got[0].Response.Etag != `W/"1"` || !bytes.Contains(got[0].Resource, []byte(`"id":"`+pid+`"`)) {
		t.Errorf("read answered %+v %s", got[0].Response, got[0].Resource)
	}
	var set struct {
		Type  string
		Total int
		Entry []struct{ FullURL string }
	}
	if err := json.Unmarshal(got[1].Resource, &set); err != nil || set.Type != "searchset" || set.Total != 2 || len(set.Entry) != 2 {
		t.Errorf("search answered %s (%v); want a searchset of the new and the kept observation", got[1].Resource, err)
	}
	for _, e := range set.Entry {
		if strings.HasSuffix(e.FullURL, "/"+gone) {
			t.Errorf("the search still finds the deleted observation")
		}
	}
	if got[3].Response.Status != "204 No Content" || got[3].Response.Etag != `W/"2"` {
		t.Errorf("delete answered %+v", got[3].Response)
	}
	if r := s.do(t, "GET", "/fhir/Observation/"+gone, nurse, ""); r.status != 410 {
		t.Errorf("read of the deleted observation: %d", r.status)
	}
}

func TestReferencesByConditionAndByOIDAreResolved(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	one := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "REF-1"))
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "REF-2"))
	s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "REF-2"))
	const oid = "urn:oid:1.2.752.129.2.1.4.1"
	tests := []struct {
		name, bundle, status, want string
	}{
		{
			"a conditional reference with one match points at it",
			bundleOf("transaction", req("POST", "Observation", "", clientObs("Patient?identifier=urn:test|REF-1", "29463-7"))),
			"200", "Patient/" + one,
		},
		{
			"a conditional reference without a match fails the transaction",
			bundleOf("transaction", req("POST", "Observation", "", clientObs("Patient?identifier=urn:test|NONE", "29463-7"))),
			"412", "",
		},
		{
			"a conditional reference with two matches fails the transaction",
			bundleOf("transaction", req("POST", "Observation", "", clientObs("Patient?identifier=urn:test|REF-2", "29463-7"))),
			"412", "",
		},
		{
			"a urn:oid fullUrl is resolved like a urn:uuid",
			bundleOf("transaction", req("POST", "Observation", "", clientObs(oid, "29463-7")), req("POST", "Patient", oid, fmt.Sprintf(patientBody, "OID"))),
			"200", "Patient/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, "POST", "/fhir", nurse, tt.bundle)
			if fmt.Sprint(r.status) != tt.status {
				t.Fatalf("status %d, want %s: %s", r.status, tt.status, r.body)
			}
			if tt.want == "" {
				return
			}
			id := answers(t, r, "transaction-response")[0].newID(t, "Observation")
			stored := s.do(t, "GET", "/fhir/Observation/"+id, nurse, "")
			ref, _ := stored.json(t)["subject"].(map[string]any)["reference"].(string)
			if !strings.HasPrefix(ref, tt.want) || strings.Contains(ref, "?") || strings.HasPrefix(ref, "urn:") {
				t.Errorf("subject.reference = %q, want %s...", ref, tt.want)
			}
		})
	}
}

func TestAPatientTokenWritesOnlyInsideItsOwnCompartment(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	me := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "ME"))
	other := s.create(t, nurse, "Patient", fmt.Sprintf(patientBody, "OTHER"))
	tok, err := s.keys.Mint(context.Background(), auth.TokenRequest{
		Subject: "test-patient", Role: auth.RolePatient, PatientID: me, Scopes: []string{"patient/*.*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(ident string) string {
		return req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, ident), `"ifNoneExist":"identifier=urn:test|`+ident+`"`)
	}
	tests := []struct {
		name, bundle string
		status       int
	}{
		{"a reading of its own is stored", bundleOf("transaction", req("POST", "Observation", "", obsBody(me, "2026-11-20T08:00:00Z"))), 200},
		{"a reading of another patient is refused", bundleOf("transaction",
			req("POST", "Observation", "", obsBody(me, "2026-11-20T08:00:00Z")),
			req("POST", "Observation", "", obsBody(other, "2026-11-20T08:00:00Z"))), 403},
		{"a new patient is refused", bundleOf("transaction", req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "NEW"))), 403},
		{"a reading for itself found by a conditional create is stored", bundleOf("transaction",
			lookup("ME"), req("POST", "Observation", "", clientObs(urnPatient, "29463-7"))), 200},
		{"a conditional create cannot find another patient, and creating one is refused", bundleOf("transaction",
			lookup("OTHER"), req("POST", "Observation", "", clientObs(urnPatient, "29463-7"))), 403},
		{"a practitioner is refused", bundleOf("transaction", req("POST", "Practitioner", "", `{"resourceType":"Practitioner"}`)), 403},
		{"deleting another patient's data is refused", bundleOf("transaction", req("DELETE", "Patient/"+other, "", "")), 404},
		{"a search naming another patient is refused", bundleOf("transaction", req("GET", "Observation?patient="+other, "", "")), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := s.do(t, "POST", "/fhir", tok, tt.bundle); r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
		})
	}
	if r := s.do(t, "GET", "/fhir/Observation?patient="+other, nurse, ""); r.json(t)["total"] != 0.0 {
		t.Errorf("another patient got a reading: %s", r.body)
	}
	if r := s.do(t, "GET", "/fhir/Observation?patient="+me, nurse, ""); r.json(t)["total"] != 2.0 {
		t.Errorf("own readings: %s", r.body)
	}
	t.Run("in a batch only the entry outside the compartment fails", func(t *testing.T) {
		got := answers(t, s.do(t, "POST", "/fhir", tok, bundleOf("batch",
			req("POST", "Observation", "", obsBody(me, "2026-11-21T08:00:00Z")),
			req("POST", "Observation", "", obsBody(other, "2026-11-21T08:00:00Z")))), "batch-response")
		if got[0].Response.Status != "201 Created" || got[1].Response.Status != "403 Forbidden" {
			t.Fatalf("%s, %s", got[0].Response.Status, got[1].Response.Status)
		}
	})
}

func TestMalformedBundlesAreRefusedWithAnOutcome(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	patient := fmt.Sprintf(patientBody, "M")
	var many []string
	for range httpapi.MaxBundleEntries + 1 {
		many = append(many, req("GET", "Patient/x", "", ""))
	}
	tests := []struct {
		name, body string
		status     int
	}{
		{"a body that is not JSON", `{"resourceType":"Bundle",`, 400},
		{"a JSON array", `[]`, 400},
		{"null", `null`, 400},
		{"a Patient", patient, 400},
		{"a collection Bundle", bundleOf("collection"), 400},
		{"a Bundle without type", `{"resourceType":"Bundle","entry":[]}`, 400},
		{"entries that are not an array", `{"resourceType":"Bundle","type":"batch","entry":{}}`, 400},
		{"an entry that is not an object", bundleOf("batch", `"x"`), 400},
		{"an entry without request", bundleOf("transaction", `{"resource":`+patient+`}`), 400},
		{"a request without url", bundleOf("transaction", `{"request":{"method":"GET"}}`), 400},
		{"a method that is not a string", bundleOf("transaction", `{"request":{"method":1,"url":"Patient"}}`), 400},
		{"an unknown method", bundleOf("batch", req("FETCH", "Patient/1", "", "")), 400},
		{"PATCH", bundleOf("batch", req("PATCH", "Patient/1", "", "")), 400},
		{"a url of another server", bundleOf("batch", req("GET", "https://elsewhere.example/fhir/Patient/1", "", "")), 400},
		{"a url that is not Type or Type/id", bundleOf("batch", req("GET", "Patient/1/_history/1", "", "")), 400},
		{"a url without a type", bundleOf("batch", req("GET", "patient/1", "", "")), 400},
		{"an id that is not valid", bundleOf("batch", req("DELETE", "Patient/a$b", "", "")), 400},
		{"a conditional delete", bundleOf("batch", req("DELETE", "Patient?identifier=x", "", "")), 400},
		{"a POST without a resource", bundleOf("batch", req("POST", "Patient", "", "")), 400},
		{"a GET with a resource", bundleOf("batch", req("GET", "Patient/1", "", patient)), 400},
		{"an element R4 does not define", `{"resourceType":"Bundle","type":"batch","colour":"red"}`, 400},
		{"a modifier extension on an entry", bundleOf("batch", `{"modifierExtension":[],"request":{"method":"GET","url":"Patient/1"}}`), 400},
		{"two entries with one fullUrl", bundleOf("transaction", req("POST", "Patient", urnPatient, patient), req("POST", "Patient", urnPatient, patient)), 400},
		{"an ifMatch that is not a version", bundleOf("transaction", req("PUT", "Patient/p", "", patient, `"ifMatch":"yesterday"`)), 400},
		{"an ifNoneExist on a PUT", bundleOf("transaction", req("PUT", "Patient/p", "", patient, `"ifNoneExist":"identifier=x"`)), 400},
		{"more entries than a bundle may hold", bundleOf("batch", many...), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is "+fmt.Sprint(tt.status), func(t *testing.T) {
			r := s.do(t, "POST", "/fhir", nurse, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			r.outcome(t)
		})
	}
	t.Run("a form body is 415", func(t *testing.T) {
		r := s.do(t, "POST", "/fhir", nurse, bundleOf("batch"), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != 415 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("no token is 401", func(t *testing.T) {
		if r := s.do(t, "POST", "/fhir", "", bundleOf("batch")); r.status != 401 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("an empty batch answers an empty batch-response", func(t *testing.T) {
		if got := answers(t, s.do(t, "POST", "/fhir/", nurse, bundleOf("batch")), "batch-response"); len(got) != 0 {
			t.Fatalf("%d entries", len(got))
		}
	})
}

// fakeStore answers every entry without a database, for the fuzz target.
type fakeStore struct{ httpapi.Resources }

func (fakeStore) Transaction(_ context.Context, entries []store.Entry) ([]store.Result, error) {
	for _, e := range entries {
		if e.Err != nil {
			return nil, &store.EntryError{Index: e.Index, Method: e.Method, URL: e.URL, Err: e.Err}
		}
	}
	return fakeResults(entries), nil
}

func (fakeStore) Batch(_ context.Context, entries []store.Entry) []store.Result {
	results := fakeResults(entries)
	for i, e := range entries {
		if e.Err != nil {
			results[i] = store.Result{Err: &store.EntryError{Index: e.Index, Method: e.Method, URL: e.URL, Err: e.Err}}
		}
	}
	return results
}

func fakeResults(entries []store.Entry) []store.Result {
	results := make([]store.Result, len(entries))
	for i, e := range entries {
		if e.Op == store.OpSearch {
			results[i].Page = &store.Page{Total: 0}
			continue
		}
		results[i].Stored = &store.Stored{Type: e.Type, ID: "fake", VersionID: 1, LastUpdated: time.Now(), Content: []byte(`{}`)}
	}
	return results
}

type anyone struct{}

func (anyone) Verify(context.Context, string) (*auth.Principal, error) {
	p := &auth.Principal{Subject: "fuzz", Role: auth.RoleAdmin}
	for _, sc := range auth.RoleAdmin.DefaultScopes() {
		parsed, err := auth.ParseScope(sc)
		if err != nil {
			return nil, err
		}
		p.Scopes = append(p.Scopes, parsed)
	}
	return p, nil
}

// FuzzTransactionBundle: whatever the body, POST /fhir answers an
// OperationOutcome or a response Bundle, never a 500 (a recovered panic).
func FuzzTransactionBundle(f *testing.F) {
	for _, s := range []string{
		bundleOf("transaction", req("POST", "Patient", urnPatient, fmt.Sprintf(patientBody, "F")),
			req("POST", "Observation", "", clientObs(urnPatient, "29463-7"), `"ifNoneExist":"patient=`+urnPatient+`"`)),
		bundleOf("batch", req("GET", "Observation?patient=p&_count=2", "", ""), req("DELETE", "Patient/p", "", ""),
			req("PUT", "Patient?identifier=x", "", `{"resourceType":"Patient"}`, `"ifMatch":"W/\"2\""`)),
		bundleOf("batch", `{"request":{"method":"GET","url":"/Patient/1?x=%zz"}}`, `null`),
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/1"},"resource":{"resourceType":"Patient","id":"2"}}]}`,
		`{"resourceType":"Bundle","type":"batch","_type":{"extension":[]},"entry":[{"request":{"method":"GET","url":"http://127.0.0.1:1/fhir/Patient/1"}}]}`,
	} {
		f.Add([]byte(s))
	}
	types, params := fhir.NewRegistry(), search.NewRegistry(time.UTC)
	srv, err := httpapi.New(httpapi.Deps{
		Store: fakeStore{}, Types: types, Params: params, Verifier: anyone{}, Metrics: prometheus.NewRegistry(),
	}, httpapi.Config{Addr: "127.0.0.1:1", BodyLimit: 4 << 20, RequestTimeout: time.Minute}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	app := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rq := httptest.NewRequest(http.MethodPost, "/fhir", bytes.NewReader(body))
		rq.Header.Set("Content-Type", "application/fhir+json")
		rq.Header.Set("Authorization", "Bearer x")
		resp, err := app.Test(rq, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 500 || !json.Valid(out) {
			t.Fatalf("%d %s\nfor %q", resp.StatusCode, out, body)
		}
		var m struct{ ResourceType string }
		if json.Unmarshal(out, &m) != nil || (m.ResourceType != "Bundle" && m.ResourceType != "OperationOutcome") {
			t.Fatalf("answered %s", out)
		}
	})
}
