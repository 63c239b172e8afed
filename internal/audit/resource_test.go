package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/db"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/golden"
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
		Event{Time: at, Kind: KindRead, ResourceType: "Patient", ResourceID: "pat-9", Patients: []string{"pat-9"}, Agent: patient, RequestID: "rid-own-record"},
		Event{Time: at, Kind: KindRead, ResourceType: "Patient", ResourceID: "pat-8", Outcome: OutcomeMinorFailure, Agent: patient, RequestID: "rid-other-record"},
		Event{Time: at, Kind: KindSearch, ResourceType: "Practitioner", Query: "Practitioner?name=Holm", Agent: Agent{Subject: "sys", Role: "system"}, RequestID: "rid-system"},
		Event{Time: at, Kind: kindCount + 3, Outcome: Outcome(99), Agent: Agent{Subject: "x", Address: "host-b"}, RequestID: "rid-unknown-kind"},
	)
	return out
}

// TestEveryKindIsValidR4AndIndexedAsTheRegistryWould writes an event of
// every kind, reads each row back through the auditevent view as the store
// does, parses its content with the FHIR registry, extracts its search
// values with fhir/search exactly as the store indexes resources, and
// compares them with the columns the view gives.
func TestEveryKindIsValidR4AndIndexedAsTheRegistryWould(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	types := fhir.NewRegistry()
	def := r.params.Definition("AuditEvent")
	events := sampleEvents()
	if err := r.w.WriteNow(ctx, events...); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		t.Run(e.Kind.String()+" "+e.ResourceType+" "+e.RequestID, func(t *testing.T) {
			rows := viewRows(t, r.pool, e.RequestID)
			if want := max(1, len(e.Patients)); len(rows) != want {
				t.Fatalf("%d rows, want one per patient (%d)", len(rows), want)
			}
			for i, vr := range rows {
				res, err := types.Parse("AuditEvent", []byte(vr.content))
				if err != nil {
					t.Fatalf("row %d is not a valid AuditEvent: %v\n%s", i, err, vr.content)
				}
				want := registryRow(t, def, r.params, res, vr.id)
				if reg, _ := want[0].(*string); !samePatient(reg, vr.patientID) {
					t.Errorf("patient_id %v differs from the registry's compartment %v", deref(vr.patientID), deref(reg))
				}
				if diff := cmp.Diff(want[1:], vr.columns); diff != "" {
					t.Errorf("index columns differ from the registry's extraction (-registry +view):\n%s\n%s", diff, vr.content)
				}
			}
		})
	}
}

// viewRow is one row of the auditevent view.
type viewRow struct {
	id, content string
	patientID   *string
	columns     []any // the search columns, in the registry's order
}

// viewRows reads the rows of one request from the auditevent view, in the
// order they were written.
func viewRows(t *testing.T, pool *pgxpool.Pool, requestID string) []viewRow {
	t.Helper()
	return viewRowsWhere(t, pool, "v.id IN (SELECT id FROM audit_record WHERE request_id = $1)", requestID)
}

func viewRowsWhere(t *testing.T, pool *pgxpool.Pool, where string, args ...any) []viewRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT v.id, v.content, v.patient_id, v.date_start, v.date_end,
			v.type, v.subtype, v.action, v.outcome, v.agent, v.entity
		FROM auditevent v WHERE `+where+` ORDER BY v.id`, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (viewRow, error) {
		var v viewRow
		var start, end time.Time
		var typ, sub, action, outcome, agent, entity []string
		err := row.Scan(&v.id, &v.content, &v.patientID, &start, &end, &typ, &sub, &action, &outcome, &agent, &entity)
		v.columns = []any{start.UTC(), end.UTC(), typ, sub, action, outcome, agent, entity}
		return v, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
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
			out = append(out, start.UTC(), end.UTC())
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
	r := newRig(t, func(c *Config) { c.Instance = "vidda-a" })
	e := sampleEvents()[KindSearch-1]
	if err := r.w.WriteNow(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	rows := viewRows(t, r.pool, e.RequestID)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want one per patient (3)", len(rows))
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
	if err := json.Unmarshal([]byte(rows[1].content), &ae); err != nil {
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

// TestWhatAClientTypedIsStoredCleanedAndReadAsJSON: invalid UTF-8 and
// NUL would make PostgreSQL refuse the whole COPY, so they are replaced;
// quotes and markup come back as they were sent.
func TestWhatAClientTypedIsStoredCleanedAndReadAsJSON(t *testing.T) {
	r := newRig(t, nil)
	for i, name := range []string{"plain", `quo"te`, `back\slash`, "tab\tnl\ncr\r", "\x01\x1f", "<a href='x'>&</a>", "ünïcødé ✓", "bad \xff utf8", "nul\x00byte"} {
		e := Event{Kind: KindLoginFailed, Outcome: OutcomeMinorFailure, Agent: Agent{Name: name, Address: "198.51.100.9"}, RequestID: fmt.Sprintf("typed-%d", i)}
		if err := r.w.WriteNow(context.Background(), e); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		rows := viewRows(t, r.pool, e.RequestID)
		if len(rows) != 1 {
			t.Fatalf("%q: %d rows", name, len(rows))
		}
		var ae struct{ Agent []struct{ Name string } }
		if err := json.Unmarshal([]byte(rows[0].content), &ae); err != nil {
			t.Fatalf("%q: %v\n%s", name, err, rows[0].content)
		}
		want := strings.ReplaceAll(strings.ToValidUTF8(name, "\uFFFD"), "\x00", "\uFFFD")
		if len(ae.Agent) != 1 || ae.Agent[0].Name != want {
			t.Errorf("%q: read back %+v, want %q", name, ae.Agent, want)
		}
	}
}

// TestTheKindTableHasEveryKind: the database renders each kind from
// audit_kind (migration 00016). It must hold every Kind under its name,
// each with a type and an action (C, R, U, D or E), and the token keys
// fhir/search would index its codes under. What the codes are is pinned
// by the golden file of TestTheRenderingIsTheGolden.
func TestTheKindTableHasEveryKind(t *testing.T) {
	pool := dbtest.Pool(t)
	rows, err := pool.Query(context.Background(), `SELECT kind, name, type_system, type_code,
			coalesce(subtype_system, ''), coalesce(subtype_code, ''), action,
			type_keys, subtype_keys, action_keys
		FROM audit_kind ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	type kindRow struct {
		kind                                              int16
		name, typSystem, typCode, subSystem, subCode, act string
		typKeys, subKeys, actKeys                         []string
	}
	got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (kindRow, error) {
		var k kindRow
		err := row.Scan(&k.kind, &k.name, &k.typSystem, &k.typCode, &k.subSystem, &k.subCode, &k.act, &k.typKeys, &k.subKeys, &k.actKeys)
		return k, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != int(kindCount) {
		t.Fatalf("audit_kind has %d kinds, Kind has %d", len(got), kindCount)
	}
	actionSystem := search.NewRegistry(time.UTC).Definition("AuditEvent").Param("action").System
	for i, k := range got {
		want := Kind(i).String()
		if i == 0 {
			want = "unknown"
		}
		if int(k.kind) != i || k.name != want {
			t.Errorf("audit_kind row %d is kind %d %q, want %q", i, k.kind, k.name, want)
		}
		if k.typSystem == "" || k.typCode == "" || !slices.Contains([]string{"C", "R", "U", "D", "E"}, k.act) {
			t.Errorf("kind %s is incomplete: type %s|%s, action %q", k.name, k.typSystem, k.typCode, k.act)
		}
		keys := [][2][]string{
			{k.typKeys, tokenKeys(k.typSystem, k.typCode)},
			{k.subKeys, tokenKeys(k.subSystem, k.subCode)},
			{k.actKeys, tokenKeys(actionSystem, k.act)},
		}
		for _, kk := range keys {
			if !slices.Equal(kk[0], kk[1]) {
				t.Errorf("kind %s: token keys %q, search.TokenKeys %q", k.name, kk[0], kk[1])
			}
		}
	}
}

func tokenKeys(system, code string) []string {
	if system == "" && code == "" {
		return []string{}
	}
	return search.TokenKeys(system, code)
}

// TestTheLeanTrailMigratesBothWays: migration 00016 turns the stored
// AuditEvents into audit_record rows that keep their JSON, and its way down
// turns the view back into a table. After down and up again, every row
// reads exactly as before, and searches still find it by every column.
func TestTheLeanTrailMigratesBothWays(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	if err := r.w.WriteNow(ctx, sampleEvents()...); err != nil {
		t.Fatal(err)
	}
	before := allViewRows(t, r.pool)
	if err := db.MigrateTo(ctx, r.pool, 15); err != nil {
		t.Fatal(err)
	}
	var kind string
	if err := r.pool.QueryRow(ctx, "SELECT relkind::text FROM pg_class WHERE relname = 'auditevent'").Scan(&kind); err != nil || kind != "r" {
		t.Fatalf("after the way down auditevent is relkind %q (%v), want a table", kind, err)
	}
	if diff := cmp.Diff(before, allViewRows(t, r.pool), cmp.AllowUnexported(viewRow{})); diff != "" {
		t.Fatalf("the table the way down left differs from the view (-view +table):\n%s", diff)
	}
	if err := db.MigrateTo(ctx, r.pool, 16); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, allViewRows(t, r.pool), cmp.AllowUnexported(viewRow{})); diff != "" {
		t.Fatalf("after down and up the rows differ (-before +after):\n%s", diff)
	}
	var stored int
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM audit_record WHERE stored IS NOT NULL").Scan(&stored); err != nil || stored != len(before) {
		t.Fatalf("%d rows keep their stored JSON (%v), want all %d", stored, err, len(before))
	}
}

// allViewRows reads every row of auditevent, in id order.
func allViewRows(t *testing.T, pool *pgxpool.Pool) []viewRow {
	t.Helper()
	return viewRowsWhere(t, pool, "true")
}

// TestTheRenderingIsTheGolden compares the AuditEvents the view renders
// for sampleEvents with testdata/golden/auditevents.json (ids replaced).
// The golden file was first written from the resources the writer stored
// before migration 00016 rendered them in the database, and the two agreed
// member for member: what a client reads did not change.
func TestTheRenderingIsTheGolden(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	if err := r.w.WriteNow(ctx, sampleEvents()...); err != nil {
		t.Fatal(err)
	}
	rows, err := r.pool.Query(ctx, "SELECT id, content FROM auditevent ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = forEachRow(rows, func(id, content string) {
		if !strings.HasPrefix(content, `{"resourceType":"AuditEvent","id":"`+id+`",`) {
			t.Errorf("content does not start with its type and id: %.80s", content)
		}
		if out == nil {
			out = append(out, '[')
		} else {
			out = append(out, ',')
		}
		out = append(out, strings.Replace(content, id, "ID", 1)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	golden.JSON(t, "auditevents.json", append(out, ']'), *update)
}

func forEachRow(rows pgx.Rows, fn func(id, content string)) error {
	var id, content string
	_, err := pgx.ForEachRow(rows, []any{&id, &content}, func() error {
		fn(id, content)
		return nil
	})
	return err
}
