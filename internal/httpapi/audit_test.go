package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/auth"
)

// auditEvent is what the tests read of a stored AuditEvent.
type auditEvent struct {
	ID      string
	Type    struct{ Code string }
	Subtype []struct{ Code string }
	Action  string
	Outcome string
	Agent   []struct {
		Who struct {
			Reference  string
			Identifier struct{ Value string }
		}
		Network struct{ Address string }
		Policy  []string
	}
	Entity []struct {
		What struct {
			Reference  string
			Identifier struct{ Value string }
		}
		Role        struct{ Code string }
		Query       string
		Description string
	}
}

func (e auditEvent) subtype() string {
	if len(e.Subtype) == 0 {
		return ""
	}
	return e.Subtype[0].Code
}

func (e auditEvent) agent() string { return e.Agent[0].Who.Reference }

// entity returns the reference of the entity with role code role ("4"
// domain resource, "1" patient), or the decoded query for role "24".
func (e auditEvent) entity(role string) string {
	for _, en := range e.Entity {
		if en.Role.Code != role {
			continue
		}
		if role == "24" {
			q, _ := base64.StdEncoding.DecodeString(en.Query)
			return string(q)
		}
		return en.What.Reference
	}
	return ""
}

func (e auditEvent) String() string {
	return fmt.Sprintf("%s/%s %s outcome %s agent %q resource %q patient %q query %q",
		e.Type.Code, e.subtype(), e.Action, e.Outcome, e.agent(), e.entity("4"), e.entity("1"), e.entity("24"))
}

// auditSearch runs GET /fhir/AuditEvent?query as admin and decodes what it
// finds.
func (s *server) auditSearch(t *testing.T, admin, query string) []auditEvent {
	t.Helper()
	r := s.do(t, "GET", "/fhir/AuditEvent?"+query, admin, "")
	if r.status != 200 {
		t.Fatalf("AuditEvent?%s: %d %s", query, r.status, r.body)
	}
	var b struct {
		Entry []struct{ Resource auditEvent }
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	out := make([]auditEvent, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out
}

// awaitAudit waits until AuditEvent?query finds at least n events: the
// writer flushes every few milliseconds, in the order events came.
func (s *server) awaitAudit(t *testing.T, admin, query string, n int) []auditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := s.auditSearch(t, admin, query)
		if len(found) >= n {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("AuditEvent?%s: %d events after 10s, want %d: %v", query, len(found), n, found)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) practitionerToken(t *testing.T, role auth.Role, practitioner string) string {
	t.Helper()
	tok, err := s.keys.Mint(context.Background(), auth.TokenRequest{Subject: "user-" + practitioner, Role: role, PractitionerID: practitioner})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestEveryAccessLeavesAnAuditEvent drives each kind of FHIR access
// through the real server and finds its AuditEvent as an admin would.
func TestEveryAccessLeavesAnAuditEvent(t *testing.T) {
	s := newServer(t)
	admin := s.token(t, auth.RoleAdmin, "")
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	pat := s.create(t, admin, "Patient", fmt.Sprintf(patientBody, "AUD-1"))
	other := s.create(t, admin, "Patient", fmt.Sprintf(patientBody, "AUD-2"))
	prac := s.create(t, admin, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Lind"}]}`)
	s.create(t, admin, "CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/`+pat+`"},"participant":[{"member":{"reference":"Practitioner/`+prac+`"}}]}`)
	obs := s.create(t, admin, "Observation", obsBody(pat, "2026-11-20T08:00:00Z"))
	theirs := s.create(t, admin, "Observation", obsBody(other, "2026-11-20T08:00:00Z"))
	nurse := s.practitionerToken(t, auth.RoleNurse, prac)
	patient := s.token(t, auth.RolePatient, pat)
	who := "Practitioner/" + prac

	// What the nurse does, and what the audit trail must say about it.
	steps := []struct {
		method, path, token, body string
		status                    int
		// want: type/subtype action outcome, the resource, the patient
		// entity, the agent and, for a search, its query.
		want auditEvent
	}{
		{"GET", "/fhir/Observation/" + obs, nurse, "", 200, ev("110110", "read", "R", "0", who, "Observation/"+obs, "Patient/"+pat, "")},
		{"GET", "/fhir/Observation?patient=" + pat + "&_count=50", nurse, "", 200, ev("110112", "search-type", "E", "0", who, "", "Patient/"+pat, "Observation?patient="+pat+"&_count=50")},
		{"GET", "/fhir/Observation/" + obs + "/_history/1", nurse, "", 200, ev("110110", "vread", "R", "0", who, "Observation/"+obs+"/_history/1", "Patient/"+pat, "")},
		{"GET", "/fhir/Observation/" + obs + "/_history", nurse, "", 200, ev("110110", "history-instance", "R", "0", who, "Observation/"+obs, "Patient/"+pat, "")},
		{"GET", "/fhir/Observation/$lastn?patient=" + pat, nurse, "", 200, ev("110112", "operation", "E", "0", who, "", "Patient/"+pat, "Observation/$lastn?patient="+pat)},
		{"GET", "/fhir/Patient/" + pat + "/Observation?_count=5", nurse, "", 200, ev("110112", "search-type", "E", "0", who, "", "Patient/"+pat, "Patient/"+pat+"/Observation?_count=5")},
		{"PUT", "/fhir/Observation/" + obs, nurse, strings.Replace(obsBody(pat, "2026-11-20T09:00:00Z"), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+obs+`",`, 1), 200, ev("110110", "update", "U", "0", who, "Observation/"+obs+"/_history/2", "Patient/"+pat, "")},
		{"GET", "/fhir/Observation/" + theirs, nurse, "", 404, ev("110110", "read", "R", "4", who, "Observation/"+theirs, "", "")},
		{"GET", "/fhir/Observation/" + theirs, patient, "", 404, ev("110110", "read", "R", "4", "Patient/"+pat, "Observation/"+theirs, "", "")},
		{"GET", "/fhir/Observation?patient=" + other, patient, "", 403, ev("110112", "search-type", "E", "8", "Patient/"+pat, "", "", "Observation?patient="+other)},
		{"GET", "/fhir/Observation/" + obs, "", "", 401, ev("110110", "read", "R", "8", "", "Observation/"+obs, "", "")},
		{"GET", "/metrics", admin, "", 200, ev("110112", "", "E", "0", "", "", "", "GET /metrics")},
		{"GET", "/admin/deadletters?limit=5", admin, "", 200, ev("110112", "", "E", "0", "", "", "", "GET /admin/deadletters?limit=5")},
	}
	for _, st := range steps {
		if r := s.do(t, st.method, st.path, st.token, st.body); r.status != st.status {
			t.Fatalf("%s %s: %d, want %d: %s", st.method, st.path, r.status, st.status, r.body)
		}
	}
	created := s.create(t, nurse, "Observation", obsBody(pat, "2026-11-21T08:00:00Z"))
	if r := s.do(t, "DELETE", "/fhir/Observation/"+created, nurse, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	tx := `{"resourceType":"Bundle","type":"batch","entry":[` +
		`{"request":{"method":"GET","url":"Observation/` + obs + `"}},` +
		`{"request":{"method":"GET","url":"Observation?patient=` + pat + `"}},` +
		`{"request":{"method":"POST","url":"AuditEvent"},"resource":{"resourceType":"AuditEvent","type":{"code":"x"},"recorded":"2026-11-23T10:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"forger"}}}}]}`
	if r := s.do(t, "POST", "/fhir", nurse, tx); r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	// The marker: once its event is there, so are all before it.
	s.do(t, "GET", "/fhir/Patient/"+other+"?marker", admin, "")
	s.awaitAudit(t, admin, "patient="+other+"&subtype=read&date=ge"+start, 1)

	all := s.auditSearch(t, admin, "date=ge"+start+"&_count=1000")
	find := func(want auditEvent) bool {
		for _, got := range all {
			if got.Type.Code == want.Type.Code && got.subtype() == want.subtype() && got.Action == want.Action &&
				got.Outcome == want.Outcome && (want.Agent == nil || got.agent() == want.agent()) &&
				got.entity("4") == want.entity("4") && got.entity("1") == want.entity("1") && got.entity("24") == want.entity("24") {
				return true
			}
		}
		return false
	}
	for _, st := range steps {
		t.Run(fmt.Sprintf("%s %s answered %d is audited", st.method, st.path, st.status), func(t *testing.T) {
			if !find(st.want) {
				t.Errorf("no AuditEvent like\n  %v\namong\n  %v", st.want, strings.Join(strings.Fields(fmt.Sprint(all)), " "))
			}
		})
	}
	for _, want := range []struct {
		name string
		ev   auditEvent
	}{
		{"a create", ev("110110", "create", "C", "0", who, "Observation/"+created+"/_history/1", "Patient/"+pat, "")},
		{"a delete", ev("110110", "delete", "D", "0", who, "Observation/"+created, "Patient/"+pat, "")},
		{"a batch's read entry", ev("110110", "read", "R", "0", who, "Observation/"+obs, "Patient/"+pat, "")},
		{"a batch's search entry", ev("110112", "search-type", "E", "0", who, "", "Patient/"+pat, "Observation?patient="+pat)},
		{"a batch's refused AuditEvent entry", ev("110110", "create", "C", "8", who, "", "", "")},
	} {
		t.Run(want.name+" is audited", func(t *testing.T) {
			if !find(want.ev) {
				t.Errorf("no AuditEvent like %v", want.ev)
			}
		})
	}

	t.Run("an admin finds a nurse's read and search by patient, date and agent", func(t *testing.T) {
		found := s.auditSearch(t, admin, "patient="+pat+"&date=ge"+start+"&agent="+url.QueryEscape(who)+"&_count=100")
		var kinds []string
		for _, e := range found {
			if e.agent() != who {
				t.Errorf("agent= found %s", e)
			}
			if e.entity("1") != "Patient/"+pat {
				t.Errorf("patient= found %s", e)
			}
			kinds = append(kinds, e.subtype())
		}
		for _, k := range []string{"read", "search-type", "vread", "update", "operation", "create", "delete"} {
			if !slices.Contains(kinds, k) {
				t.Errorf("no %s among %v", k, kinds)
			}
		}
		if later := s.auditSearch(t, admin, "patient="+pat+"&date=gt"+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); len(later) != 0 {
			t.Errorf("date=gt an hour from now found %d", len(later))
		}
	})
	t.Run("the user's token id and address are recorded, never the token", func(t *testing.T) {
		for _, e := range all {
			raw, _ := json.Marshal(e)
			if strings.Contains(string(raw), nurse) || strings.Contains(string(raw), admin) {
				t.Fatalf("a token was stored: %s", raw)
			}
		}
		e := s.auditSearch(t, admin, "agent="+url.QueryEscape(who)+"&subtype=read&_count=1")[0]
		if e.Agent[0].Network.Address != "127.0.0.1" || len(e.Agent[0].Policy) != 1 || e.Agent[0].Who.Identifier.Value != "user-"+prac {
			t.Errorf("agent: %+v", e.Agent[0])
		}
	})
}

func ev(typ, subtype, action, outcome, agent, resource, patient, query string) auditEvent {
	var e auditEvent
	e.Type.Code, e.Action, e.Outcome = typ, action, outcome
	if subtype != "" {
		e.Subtype = append(e.Subtype, struct{ Code string }{subtype})
	}
	e.Agent = make([]struct {
		Who struct {
			Reference  string
			Identifier struct{ Value string }
		}
		Network struct{ Address string }
		Policy  []string
	}, 1)
	e.Agent[0].Who.Reference = agent
	add := func(role, ref, q string) {
		en := struct {
			What struct {
				Reference  string
				Identifier struct{ Value string }
			}
			Role        struct{ Code string }
			Query       string
			Description string
		}{}
		en.Role.Code, en.What.Reference, en.Query = role, ref, base64.StdEncoding.EncodeToString([]byte(q))
		e.Entity = append(e.Entity, en)
	}
	if resource != "" {
		add("4", resource, "")
	}
	if patient != "" {
		add("1", patient, "")
	}
	if query != "" {
		add("24", "", query)
	}
	return e
}

// TestAuditEventsCannotBeChangedThroughTheAPI: vidda writes them; nobody
// edits them, and only admins read them.
func TestAuditEventsCannotBeChangedThroughTheAPI(t *testing.T) {
	s := newServer(t)
	admin := s.token(t, auth.RoleAdmin, "")
	pat := s.create(t, admin, "Patient", fmt.Sprintf(patientBody, "AUD-3"))
	s.do(t, "GET", "/fhir/Patient/"+pat, admin, "")
	id := s.awaitAudit(t, admin, "patient="+pat+"&subtype=read", 1)[0].ID
	forged := `{"resourceType":"AuditEvent","id":"` + id + `","type":{"code":"x"},"recorded":"2026-11-23T10:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"forger"}}}`
	tests := []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"an admin may not create one", "POST", "/fhir/AuditEvent", admin, forged, 403},
		{"an admin may not update one", "PUT", "/fhir/AuditEvent/" + id, admin, forged, 403},
		{"an admin may not delete one", "DELETE", "/fhir/AuditEvent/" + id, admin, "", 403},
		{"a nurse may not search them", "GET", "/fhir/AuditEvent?patient=" + pat, s.token(t, auth.RoleNurse, ""), "", 403},
		{"a nurse may not read one", "GET", "/fhir/AuditEvent/" + id, s.token(t, auth.RoleNurse, ""), "", 403},
		{"a patient may not search their own", "GET", "/fhir/AuditEvent", s.token(t, auth.RolePatient, pat), "", 403},
		{"a transaction may not create one", "POST", "/fhir", admin, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"AuditEvent"},"resource":` + strings.Replace(forged, `"id":"`+id+`",`, "", 1) + `}]}`, 403},
		{"a transaction may not delete one", "POST", "/fhir", admin, `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"AuditEvent/` + id + `"}}]}`, 403},
		{"an admin may read one", "GET", "/fhir/AuditEvent/" + id, admin, "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
		})
	}
	if n := s.auditSearch(t, admin, "_id="+id); len(n) != 1 || n[0].subtype() != "read" {
		t.Fatalf("the AuditEvent changed: %v", n)
	}
	refused := s.awaitAudit(t, admin, "outcome=8&action=C,U,D&_count=100", 5)
	t.Logf("%d refused writes audited", len(refused))
}
