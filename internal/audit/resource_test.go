package audit

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
)

// sampleEvents has an event of every kind, with every part filled in
// somewhere.
func sampleEvents() []Event {
	at := time.Date(2026, 11, 23, 17, 4, 5, 678_900_000, time.UTC)
	nurse := Agent{
		Subject: "u-17", Role: "nurse", Reference: "Practitioner/prac-1", ClientID: "ehr-app",
		TokenID: "3f1c0e0a-jti", Address: "192.0.2.7",
	}
	patient := Agent{Subject: "u-p", Role: "patient", Reference: "Patient/pat-1", Address: "2001:db8::1"}
	var out []Event
	for k := KindRead; k < kindCount; k++ {
		e := Event{Time: at, Kind: k, Agent: nurse, RequestID: "rid-" + k.String()}
		switch k {
		case KindRead, KindVRead, KindHistoryInstance, KindUpdate, KindDelete, KindCreate:
			e.ResourceType, e.ResourceID, e.Patients = "Observation", "obs-1", []string{"pat-1"}
			if k == KindVRead {
				e.VersionID = "2"
			}
		case KindSearch, KindHistoryType, KindOperation, KindExport:
			e.ResourceType, e.Query = "Observation", "Observation?patient=pat-1&_count=50"
			e.Patients = []string{"pat-1", "pat-2", "pat-3"}
			e.PatientsLeftOut = 2
		case KindTransaction, KindBatch:
			e.Outcome, e.OutcomeDesc = OutcomeMinorFailure, "HTTP 400"
		case KindAdminQuery, KindAdminChange:
			e.Agent = Agent{Subject: "admin", Role: "admin", Address: "127.0.0.1"}
			e.Query, e.Detail = "GET /admin/deadletters?limit=5", "dead letters"
		case KindLogin, KindLogout:
			e.Agent = patient
		case KindLoginFailed:
			e.Agent = Agent{Name: "bob\"<script>\x01", Address: "198.51.100.9"}
			e.Outcome, e.OutcomeDesc = OutcomeSeriousFailure, "unknown-user"
		case KindVideoJoin, KindVideoAdmit, KindVideoLeave:
			e.ResourceType, e.ResourceID, e.Patients = "Appointment", "appt-1", []string{"pat-1"}
		case KindDeviceCredentialAdd, KindDeviceCredentialRotate, KindDeviceCredentialDisable:
			e.Agent = Agent{Subject: "root", Role: "operator", Address: "host-a"}
			e.ResourceType, e.ResourceID, e.Patients = "Device", "dev-1", []string{"pat-1"}
		case kindCount:
		}
		out = append(out, e)
	}
	out = append(out,
		Event{Time: at, Kind: KindRead, ResourceType: "Patient", ResourceID: "pat-9", Patients: []string{"pat-9"}, Agent: patient},
		Event{Time: at, Kind: KindRead, ResourceType: "Patient", ResourceID: "pat-8", Outcome: OutcomeMinorFailure, Agent: patient},
		Event{Time: at, Kind: KindSearch, ResourceType: "Practitioner", Query: "Practitioner?name=Holm", Agent: Agent{Subject: "sys", Role: "system"}},
	)
	return out
}

// TestEveryKindIsValidR4AndIndexedAsTheRegistryWould parses each row's
// content with the FHIR registry, extracts its search values with
// fhir/search exactly as the store indexes resources, and compares them
// with the columns the writer computed.
func TestEveryKindIsValidR4AndIndexedAsTheRegistryWould(t *testing.T) {
	params := search.NewRegistry(time.UTC)
	types := fhir.NewRegistry()
	l, err := newLayout(params, "vidda-test-1")
	if err != nil {
		t.Fatal(err)
	}
	def := params.Definition("AuditEvent")
	at := time.Date(2026, 11, 23, 17, 4, 6, 0, time.UTC)
	for _, e := range sampleEvents() {
		t.Run(e.Kind.String()+" "+e.ResourceType, func(t *testing.T) {
			rows, err := l.rows(&e, at, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := max(1, len(e.Patients)); len(rows) != want {
				t.Fatalf("%d rows, want one per patient (%d)", len(rows), want)
			}
			for i, r := range rows {
				content := r[4].([]byte)
				res, err := types.Parse("AuditEvent", content)
				if err != nil {
					t.Fatalf("row %d is not a valid AuditEvent: %v\n%s", i, err, content)
				}
				want := registryRow(t, def, params, res, r[0].(string))
				got, _ := r[3].(*string)
				if reg, _ := want[0].(*string); !samePatient(reg, got) {
					t.Errorf("patient_id %v differs from the registry's compartment %v", deref(got), deref(reg))
				}
				if diff := cmp.Diff(want[1:], []any(r[5:])); diff != "" {
					t.Errorf("index columns differ from the registry's extraction (-registry +writer):\n%s\n%s", diff, content)
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

func samePatient(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// registryRow is what the store would index for res: the compartment, then
// the values of each parameter in the layout of search.Param.Columns.
func registryRow(t *testing.T, def *search.Definition, params *search.Registry, res *fhir.Resource, id string) []any {
	t.Helper()
	var pid *string
	if p := def.Compartment(res.Model, id); p != "" {
		pid = &p
	}
	out := []any{pid}
	for _, p := range def.Params {
		if p.Shared() {
			continue
		}
		v, err := p.Extract(res.Model, params.Dates())
		if err != nil {
			t.Fatal(err)
		}
		switch p.Kind {
		case search.Date:
			var start, end time.Time
			for _, r := range v.Dates {
				if start.IsZero() || r.Start.Before(start) {
					start = r.Start
				}
				if r.End.After(end) {
					end = r.End
				}
			}
			out = append(out, start, end)
		case search.Reference:
			out = append(out, nonNil(v.Refs))
		case search.Token:
			out = append(out, nonNil(v.Tokens))
		case search.String, search.Number, search.Quantity, search.URI:
			t.Fatalf("AuditEvent parameter %s of kind %s: extend this test", p.Name, p.Kind)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestTheResourceSaysWhoWhatWhenWhereAndHowItEnded(t *testing.T) {
	l, err := newLayout(search.NewRegistry(time.UTC), "vidda-a")
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEvents()[KindSearch-1]
	rows, err := l.rows(&e, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ae struct {
		Type     struct{ Code string }
		Subtype  []struct{ System, Code string }
		Action   string
		Recorded string
		Outcome  string
		Agent    []struct {
			Who struct {
				Reference  string
				Identifier struct{ Value string }
			}
			Policy  []string
			Network struct{ Address, Type string }
		}
		Source struct {
			Observer struct{ Identifier struct{ Value string } }
		}
		Entity []struct {
			What        struct{ Reference string }
			Role        struct{ Code string }
			Query       string
			Description string
		}
	}
	if err := json.Unmarshal(rows[1][4].([]byte), &ae); err != nil {
		t.Fatal(err)
	}
	query, _ := base64.StdEncoding.DecodeString(ae.Entity[1].Query)
	checks := []struct{ name, got, want string }{
		{"type", ae.Type.Code, "110112"},
		{"subtype", ae.Subtype[0].System + "|" + ae.Subtype[0].Code, SystemInteraction + "|search-type"},
		{"action", ae.Action, "E"},
		{"recorded", ae.Recorded, "2026-11-23T17:04:05.678Z"},
		{"outcome", ae.Outcome, "0"},
		{"user", ae.Agent[0].Who.Reference + " " + ae.Agent[0].Who.Identifier.Value, "Practitioner/prac-1 u-17"},
		{"token id", strings.Join(ae.Agent[0].Policy, ","), "3f1c0e0a-jti"},
		{"address", ae.Agent[0].Network.Address + " type " + ae.Agent[0].Network.Type, "192.0.2.7 type 2"},
		{"client", ae.Agent[1].Who.Identifier.Value, "ehr-app"},
		{"observer", ae.Source.Observer.Identifier.Value, "vidda-a"},
		{"second row's patient", ae.Entity[0].What.Reference + " role " + ae.Entity[0].Role.Code, "Patient/pat-2 role 1"},
		{"query", string(query), "Observation?patient=pat-1&_count=50"},
		{"left out", ae.Entity[2].Description, "2 more patients were touched than are recorded"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestOutcomeOfStatus(t *testing.T) {
	for status, want := range map[int]Outcome{200: 0, 201: 0, 204: 0, 304: 0, 400: 4, 404: 4, 409: 4, 410: 4, 401: 8, 403: 8, 500: 12, 503: 12} {
		if got := OutcomeOfStatus(status); got != want {
			t.Errorf("status %d: outcome %d, want %d", status, got, want)
		}
	}
}

func TestAppendStringEscapesLikeEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "tab\tnl\ncr\r", "\x00\x1f", "<a href='x'>&</a>", "ünïcødé ✓", "bad \xff utf8"} {
		got := appendString(nil, s)
		want, _ := json.Marshal(strings.ToValidUTF8(s, "\uFFFD"))
		if string(got) != string(want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

func TestEveryKindHasATypeAndAnAction(t *testing.T) {
	for k := KindRead; k < kindCount; k++ {
		i := k.info()
		if i.name == "" || i.typ.code == "" || !slices.Contains([]byte("CRUDE"), i.action) {
			t.Errorf("kind %d is incomplete: %+v", k, i)
		}
	}
}
