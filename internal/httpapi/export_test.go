package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/bulk"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/internal/httpapi"
)

// exportServer is a real vidda HTTP server with Bulk Data export, its
// exporter running beside it as in vidda serve, and an audit trail.
type exportServer struct {
	*server
	pool  *pgxpool.Pool
	types *fhir.Registry
	dir   string
}

func newExportServer(t *testing.T, tune func(*bulk.Config)) *exportServer {
	t.Helper()
	pool := dbtest.PoolFor(t, dbtest.NewDatabase(t))
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	types := fhir.NewRegistry()
	params := search.NewRegistry(time.UTC)
	st := store.New(pool, types, params, store.DefaultConfig(), log)
	auditCfg := audit.DefaultConfig()
	auditCfg.FlushEvery = 5 * time.Millisecond
	aw, err := audit.NewWriter(pool, params, auditCfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	xcfg := bulk.DefaultConfig()
	xcfg.Dir, xcfg.Poll, xcfg.Report, xcfg.Owner = t.TempDir(), 50*time.Millisecond, 50*time.Millisecond, "test"
	xcfg.Finished = httpapi.ExportAudit(aw)
	if tune != nil {
		tune(&xcfg)
	}
	exports := bulk.New(st, types, params, xcfg, log)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Addr = ln.Addr().String()
	srv, err := httpapi.New(httpapi.Deps{
		Store: st, Types: types, Params: params, Verifier: keys, Ready: st, Metrics: prometheus.NewRegistry(),
		Audit: aw, Exports: exports,
	}, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	storeDone, httpDone, exportDone := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { storeDone <- st.Run(ctx) }()
	auditCtx, stopAudit := context.WithCancel(context.Background())
	auditDone := make(chan error, 1)
	go func() { auditDone <- aw.Run(auditCtx) }()
	go func() { exportDone <- exports.Run(ctx) }()
	go func() { httpDone <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		for name, done := range map[string]chan error{"http server": httpDone, "exporter": exportDone} {
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		stopAudit()
		if err := <-auditDone; err != nil {
			t.Errorf("audit writer: %v", err)
		}
		if err := <-storeDone; err != nil {
			t.Errorf("store: %v", err)
		}
	})
	return &exportServer{
		server: &server{base: "http://" + cfg.Addr, keys: keys, st: st, audit: aw},
		pool:   pool, types: types, dir: xcfg.Dir,
	}
}

// mint is a token of any shape.
func (s *exportServer) mint(t *testing.T, req auth.TokenRequest) string {
	t.Helper()
	tok, err := s.keys.Mint(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *exportServer) put(t *testing.T, typ, id, body string) {
	t.Helper()
	body = strings.Replace(body, `{"resourceType":"`+typ+`"`, `{"resourceType":"`+typ+`","id":"`+id+`"`, 1)
	res, err := s.types.Parse(typ, []byte(body))
	if err != nil {
		t.Fatalf("parse %s/%s: %v", typ, id, err)
	}
	if _, _, err := s.st.Update(context.Background(), res, id, 0, store.Access{}); err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

// seed makes a monitored cohort: four patients with home devices and
// readings, a nurse caring for p1, and the Group "cohort" of p1, p2, p3.
func (s *exportServer) seed(t *testing.T) {
	t.Helper()
	s.put(t, "Practitioner", "nurse-1", `{"resourceType":"Practitioner","name":[{"family":"Dahl"}]}`)
	for i, p := range []string{"p1", "p2", "p3", "p4"} {
		s.put(t, "Patient", p, fmt.Sprintf(patientBody, p))
		s.put(t, "Device", "d-"+p, `{"resourceType":"Device","patient":{"reference":"Patient/`+p+`"},"status":"active"}`)
		for k := range 5 + i {
			code := []string{"29463-7", "8867-4"}[k%2]
			s.put(t, "Observation", fmt.Sprintf("%s-o%d", p, k), strings.Replace(obsBody(p, fmt.Sprintf("2026-11-%02dT07:30:00Z", k+1)), "29463-7", code, 1))
		}
	}
	s.put(t, "CareTeam", "ct-1", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p1"},`+
		`"participant":[{"member":{"reference":"Practitioner/nurse-1"}}]}`)
	s.put(t, "Group", "cohort", `{"resourceType":"Group","type":"person","actual":true,"name":"Heart failure, north",`+
		`"member":[{"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}},{"entity":{"reference":"Patient/p3"}}]}`)
}

// kickOff starts an export and returns its status URL's path.
func (s *exportServer) kickOff(t *testing.T, tok, path string) string {
	t.Helper()
	r := s.do(t, "GET", path, tok, "", "Prefer", "respond-async", "Accept", "application/fhir+json")
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.status, r.body)
	}
	loc := r.header.Get("Content-Location")
	if !strings.HasPrefix(loc, s.base+"/fhir/$export-status/") {
		t.Fatalf("Content-Location %q", loc)
	}
	return strings.TrimPrefix(loc, s.base)
}

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int64  `json:"count"`
	} `json:"output"`
	Error []any `json:"error"`
}

// poll polls the status until the manifest comes.
func (s *exportServer) poll(t *testing.T, tok, status string) *manifest {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do(t, "GET", status, tok, "")
		switch r.status {
		case http.StatusAccepted:
			if r.header.Get("X-Progress") == "" || r.header.Get("Retry-After") == "" {
				t.Errorf("in progress without X-Progress or Retry-After: %v", r.header)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		case http.StatusOK:
		default:
			t.Fatalf("status: %d %s", r.status, r.body)
		}
		if _, err := http.ParseTime(r.header.Get("Expires")); err != nil {
			t.Errorf("Expires %q: %v", r.header.Get("Expires"), err)
		}
		var m manifest
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("manifest: %v: %s", err, r.body)
		}
		if !m.RequiresAccessToken || m.Error == nil || m.TransactionTime == "" {
			t.Errorf("manifest %s", r.body)
		}
		return &m
	}
	t.Fatal("the export did not complete")
	return nil
}

// download reads every file of m, parsing it line by line: each line
// must be one valid resource of the file's type. It returns the ids per
// type, sorted.
func (s *exportServer) download(t *testing.T, tok string, m *manifest) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range m.Output {
		r := s.do(t, "GET", strings.TrimPrefix(f.URL, s.base), tok, "", "Accept", "application/fhir+ndjson")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/fhir+ndjson" {
			t.Fatalf("download %s: %d %s %s", f.URL, r.status, r.header.Get("Content-Type"), r.body)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		var n int64
		for sc.Scan() {
			n++
			res, err := s.types.Parse(f.Type, sc.Bytes())
			if err != nil {
				t.Fatalf("%s line %d is not a valid %s: %v", f.URL, n, f.Type, err)
			}
			out[f.Type] = append(out[f.Type], res.ID)
		}
		if n != f.Count || !bytes.HasSuffix(r.body, []byte("\n")) {
			t.Errorf("%s: %d lines, the manifest says %d", f.URL, n, f.Count)
		}
	}
	for typ := range out {
		slices.Sort(out[typ])
	}
	return out
}

// count is what the database holds: the ids of a query, sorted.
func (s *exportServer) ids(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func sameExport(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for typ := range got {
		if _, ok := want[typ]; !ok {
			t.Errorf("exported %d %s, which were not asked for", len(got[typ]), typ)
		}
	}
	for typ, ids := range want {
		if len(ids) == 0 {
			ids = nil
		}
		if !slices.Equal(got[typ], ids) {
			t.Errorf("%s: exported %d %v, the database has %d %v", typ, len(got[typ]), got[typ], len(ids), ids)
		}
	}
}

func TestACohortExportReadsBackLineByLine(t *testing.T) {
	s := newExportServer(t, func(c *bulk.Config) { c.MaxFileResources = 4 })
	s.seed(t)
	ehr := s.mint(t, auth.TokenRequest{Subject: "ehr-north", ClientID: "ehr-north", Role: auth.RoleSystem})
	cohort := []string{"p1", "p2", "p3"}

	kick := "/fhir/Group/cohort/$export?_type=Patient,Device,Observation&_outputFormat=application%2Ffhir%2Bndjson"
	m := s.poll(t, ehr, s.kickOff(t, ehr, kick))
	if m.Request != s.base+kick {
		t.Errorf("manifest request %q, want the kick-off URL", m.Request)
	}
	sameExport(t, s.download(t, ehr, m), map[string][]string{
		"Patient":     cohort,
		"Device":      s.ids(t, "SELECT id FROM device WHERE patient_id = ANY($1)", cohort),
		"Observation": s.ids(t, "SELECT id FROM observation WHERE patient_id = ANY($1)", cohort),
	})

	t.Run("_since keeps what changed after it, by the database's count", func(t *testing.T) {
		time.Sleep(20 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(20 * time.Millisecond)
		s.put(t, "Observation", "p2-late", obsBody("p2", "2026-11-23T09:00:00Z"))
		s.put(t, "Observation", "p4-late", obsBody("p4", "2026-11-23T09:00:00Z"))
		s.put(t, "Patient", "p3", fmt.Sprintf(patientBody, "p3-renamed"))
		m := s.poll(t, ehr, s.kickOff(t, ehr, "/fhir/Group/cohort/$export?_since="+url.QueryEscape(since.Format(time.RFC3339Nano))))
		sameExport(t, s.download(t, ehr, m), map[string][]string{
			"Patient":     {"p3"},
			"Observation": s.ids(t, "SELECT id FROM observation WHERE patient_id = ANY($1) AND last_updated >= $2", cohort, since),
			"Device":      {}, "CareTeam": {},
		})
	})
	t.Run("_typeFilter keeps the Observations its search matches", func(t *testing.T) {
		filter := url.QueryEscape("Observation?code=http://loinc.org|8867-4")
		m := s.poll(t, ehr, s.kickOff(t, ehr, "/fhir/$export?_type=Observation&_typeFilter="+filter))
		sameExport(t, s.download(t, ehr, m), map[string][]string{
			"Observation": s.ids(t, "SELECT id FROM observation WHERE code && ARRAY['http://loinc.org|8867-4']"),
		})
	})
	t.Run("a system export holds every type but the audit trail", func(t *testing.T) {
		m := s.poll(t, ehr, s.kickOff(t, ehr, "/fhir/$export"))
		want := map[string][]string{}
		for _, typ := range []string{"Patient", "Practitioner", "Device", "Observation", "CareTeam", "Group"} {
			table := strings.ToLower(typ)
			if typ == "Group" {
				table = "fhir_group"
			}
			want[typ] = s.ids(t, "SELECT id FROM "+table+" WHERE NOT deleted")
		}
		sameExport(t, s.download(t, ehr, m), want)
	})
}

func TestAnExportIsConfinedToWhatTheCallerMaySee(t *testing.T) {
	s := newExportServer(t, nil)
	s.seed(t)
	t.Run("a patient exports their own compartment", func(t *testing.T) {
		tok := s.token(t, auth.RolePatient, "p2")
		m := s.poll(t, tok, s.kickOff(t, tok, "/fhir/Patient/$export"))
		sameExport(t, s.download(t, tok, m), map[string][]string{
			"Patient": {"p2"}, "Device": {"d-p2"},
			"Observation": s.ids(t, "SELECT id FROM observation WHERE patient_id = 'p2'"),
		})
	})
	t.Run("a nurse exports the patients of their care teams", func(t *testing.T) {
		tok := s.mint(t, auth.TokenRequest{Subject: "nurse", Role: auth.RoleNurse, PractitionerID: "nurse-1"})
		m := s.poll(t, tok, s.kickOff(t, tok, "/fhir/Patient/$export?_type=Patient,Observation,CareTeam"))
		sameExport(t, s.download(t, tok, m), map[string][]string{
			"Patient": {"p1"}, "CareTeam": {"ct-1"},
			"Observation": s.ids(t, "SELECT id FROM observation WHERE patient_id = 'p1'"),
		})
	})
	for _, tc := range []struct {
		name, path string
		tok        func() string
		status     int
	}{
		{
			"a patient may not ask for types outside their compartment", "/fhir/$export?_type=Practitioner",
			func() string { return s.token(t, auth.RolePatient, "p2") }, http.StatusForbidden,
		},
		{
			"a patient may not export a Group", "/fhir/Group/cohort/$export",
			func() string { return s.token(t, auth.RolePatient, "p2") }, http.StatusForbidden,
		},
		{
			"a client may not ask for types its scopes do not grant", "/fhir/$export?_type=Patient,Observation",
			func() string {
				return s.mint(t, auth.TokenRequest{Subject: "lab", Role: auth.RoleSystem, Scopes: []string{"system/Observation.rs"}})
			}, http.StatusForbidden,
		},
		{"no token, no export", "/fhir/$export", func() string { return "" }, http.StatusUnauthorized},
		{"a Group that does not exist", "/fhir/Group/nope/$export", func() string { return s.token(t, auth.RoleAdmin, "") }, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", tc.path, tc.tok(), "", "Prefer", "respond-async")
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			r.outcome(t)
		})
	}
	t.Run("a client limited to Observations gets only those by default", func(t *testing.T) {
		tok := s.mint(t, auth.TokenRequest{Subject: "lab", Role: auth.RoleSystem, Scopes: []string{"system/Observation.rs"}})
		m := s.poll(t, tok, s.kickOff(t, tok, "/fhir/$export"))
		sameExport(t, s.download(t, tok, m), map[string][]string{"Observation": s.ids(t, "SELECT id FROM observation")})
	})
}

func TestTheKickOffIsChecked(t *testing.T) {
	s := newExportServer(t, nil)
	tok := s.token(t, auth.RoleAdmin, "")
	for _, tc := range []struct{ name, path, prefer, want string }{
		{"without Prefer: respond-async", "/fhir/$export", "", "respond-async"},
		{"another output format", "/fhir/$export?_outputFormat=application/json", "respond-async", "_outputFormat"},
		{"an unknown type", "/fhir/$export?_type=Observation,Spaceship", "respond-async", "Spaceship"},
		{"_since that is no instant", "/fhir/$export?_since=yesterday", "respond-async", "_since"},
		{"a _typeFilter the search engine refuses", "/fhir/$export?_typeFilter=" + url.QueryEscape("Observation?date=soon"), "respond-async", "date"},
		{"a parameter vidda does not implement", "/fhir/$export?_elements=id", "respond-async", "_elements"},
	} {
		t.Run(tc.name+" is a 400", func(t *testing.T) {
			r := s.do(t, "GET", tc.path, tok, "", "Prefer", tc.prefer)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			r.outcome(t)
		})
	}
	t.Run("handling=lenient ignores what vidda does not implement, and says so", func(t *testing.T) {
		r := s.do(t, "GET", "/fhir/$export?_elements=id&_type=Patient", tok, "", "Prefer", "respond-async, handling=lenient")
		if r.status != http.StatusAccepted || !strings.Contains(string(r.body), "_elements") {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestOnlyTheRequesterPollsCancelsAndDownloads(t *testing.T) {
	s := newExportServer(t, nil)
	s.seed(t)
	ehr := s.mint(t, auth.TokenRequest{Subject: "ehr-north", ClientID: "ehr-north", Role: auth.RoleSystem})
	status := s.kickOff(t, ehr, "/fhir/$export?_type=Patient")
	m := s.poll(t, ehr, status)
	file := strings.TrimPrefix(m.Output[0].URL, s.base)
	for _, tc := range []struct{ name, tok string }{
		{"another client", s.mint(t, auth.TokenRequest{Subject: "ehr-south", ClientID: "ehr-south", Role: auth.RoleSystem})},
		{"an admin", s.token(t, auth.RoleAdmin, "")},
	} {
		t.Run(tc.name+" finds nothing", func(t *testing.T) {
			for _, req := range [][2]string{{"GET", status}, {"GET", file}, {"DELETE", status}} {
				if r := s.do(t, req[0], req[1], tc.tok, ""); r.status != http.StatusNotFound {
					t.Errorf("%s %s: %d %s", req[0], req[1], r.status, r.body)
				}
			}
		})
	}
	t.Run("without a token nothing is served", func(t *testing.T) {
		for _, path := range []string{status, file} {
			if r := s.do(t, "GET", path, "", ""); r.status != http.StatusUnauthorized {
				t.Errorf("%s: %d", path, r.status)
			}
		}
	})
	t.Run("a file of the job that is not in its manifest", func(t *testing.T) {
		if r := s.do(t, "GET", strings.TrimSuffix(file, ".ndjson")+"x.ndjson", ehr, ""); r.status != http.StatusNotFound {
			t.Errorf("%d", r.status)
		}
	})
	t.Run("DELETE cancels: 202, then the job and its files are gone", func(t *testing.T) {
		if r := s.do(t, "DELETE", status, ehr, ""); r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, path := range []string{status, file} {
			if r := s.do(t, "GET", path, ehr, ""); r.status != http.StatusNotFound {
				t.Errorf("%s after DELETE: %d", path, r.status)
			}
		}
		id := strings.TrimPrefix(status, "/fhir/$export-status/")
		if _, err := os.Stat(filepath.Join(s.dir, id)); !os.IsNotExist(err) {
			t.Errorf("files of a cancelled job: %v", err)
		}
	})
}

func TestAnExportFinishesAfterItsClientWentAway(t *testing.T) {
	s := newExportServer(t, nil)
	s.seed(t)
	tok := s.token(t, auth.RoleAdmin, "")
	// Kick off over a connection that is closed as soon as the headers
	// are read: the job belongs to the server, not to the request.
	var d net.Dialer
	conn, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /fhir/$export?_type=Observation HTTP/1.1\r\nHost: vidda\r\nAuthorization: Bearer %s\r\nPrefer: respond-async\r\n\r\n", tok)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := resp.Header.Get("Content-Location")
	_ = resp.Body.Close()
	_ = conn.Close()
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("kick-off: %d", resp.StatusCode)
	}
	m := s.poll(t, tok, strings.TrimPrefix(loc, s.base))
	sameExport(t, s.download(t, tok, m), map[string][]string{"Observation": s.ids(t, "SELECT id FROM observation")})
}

func TestExportFilesExpire(t *testing.T) {
	s := newExportServer(t, func(c *bulk.Config) { c.TTL, c.Sweep = time.Second, 50*time.Millisecond })
	s.seed(t)
	tok := s.token(t, auth.RoleAdmin, "")
	status := s.kickOff(t, tok, "/fhir/$export?_type=Patient")
	m := s.poll(t, tok, status)
	file := strings.TrimPrefix(m.Output[0].URL, s.base)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do(t, "GET", file, tok, "")
		if r.status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file still served after its TTL: %d", r.status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := s.do(t, "GET", status, tok, ""); r.status != http.StatusNotFound {
		t.Errorf("status of an expired job: %d", r.status)
	}
}

func TestExportsAreAudited(t *testing.T) {
	s := newExportServer(t, nil)
	s.seed(t)
	ehr := s.mint(t, auth.TokenRequest{Subject: "ehr-north", ClientID: "ehr-north", Role: auth.RoleSystem})
	s.download(t, ehr, s.poll(t, ehr, s.kickOff(t, ehr, "/fhir/Group/cohort/$export?_type=Patient,Observation")))
	admin := s.token(t, auth.RoleAdmin, "")
	// One AuditEvent per patient for the finished run (p1, p2, p3), and
	// the kick-off, the polls and the downloads as export requests.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do(t, "GET", "/fhir/AuditEvent?type="+url.QueryEscape(audit.SystemDICOM+"|110106")+"&_count=200", admin, "")
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		body := string(r.body)
		var missing []string
		for _, want := range []string{
			"completed: ", "Patient/p3", "bulk data GET /fhir/Group/cohort/$export", "bulk data GET /fhir/$export-status/",
			"bulk data GET /fhir/$export-file/", "ehr-north", "Group/cohort",
		} {
			if !strings.Contains(body, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no export AuditEvent mentions %q: %s", missing, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTheCapabilityStatementDeclaresBulkExport(t *testing.T) {
	s := newExportServer(t, nil)
	r := s.do(t, "GET", "/fhir/metadata", "", "")
	var cs struct {
		Instantiates []string `json:"instantiates"`
		Rest         []struct {
			Operation []struct{ Name, Definition string } `json:"operation"`
			Resource  []struct {
				Type      string                              `json:"type"`
				Operation []struct{ Name, Definition string } `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.NewDecoder(io.NopCloser(bytes.NewReader(r.body))).Decode(&cs); err != nil {
		t.Fatal(err)
	}
	const ig = "http://hl7.org/fhir/uv/bulkdata/"
	if !slices.Contains(cs.Instantiates, ig+"CapabilityStatement/bulk-data") {
		t.Errorf("instantiates %v", cs.Instantiates)
	}
	if ops := cs.Rest[0].Operation; len(ops) != 1 || ops[0].Name != "export" || ops[0].Definition != ig+"OperationDefinition/export" {
		t.Errorf("system operations %v", ops)
	}
	want := map[string]string{"Patient": ig + "OperationDefinition/patient-export", "Group": ig + "OperationDefinition/group-export"}
	for _, res := range cs.Rest[0].Resource {
		if def, ok := want[res.Type]; ok {
			if len(res.Operation) != 1 || res.Operation[0].Definition != def {
				t.Errorf("%s operations %v", res.Type, res.Operation)
			}
			delete(want, res.Type)
		} else if len(res.Operation) > 0 {
			t.Errorf("%s declares operations %v", res.Type, res.Operation)
		}
	}
	if len(want) > 0 {
		t.Errorf("not declared: %v", want)
	}
}
