package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// The authorization matrix: every route of a real vidda serve, asked by
// every role about its own patient and about another, with the exact
// answer each must get. The route table comes from the server itself (it
// logs it at debug level on start), so a route added without a row here
// fails the test.
//
// Roles: anon (no credentials), patient (demo-patient-1), nurse and
// clinician (the demo staff, acting as their Practitioners: their care
// team is the demo clinic, not the outsider), admin, and a system client
// with the default system/*.read scopes. "own" is demo-patient-1's data,
// "other" an outsider patient nobody's care team covers.

// roles is the matrix's column order.
var roles = []string{"anon", "patient", "nurse", "clinician", "admin", "system"} //nolint:gochecknoglobals // the test's fixed column order

// matrixRequest is one HTTP request of a matrix row.
type matrixRequest struct {
	method, path, body string
	header             map[string]string
}

// matrixRow is one route's check. want is a space-separated list of
// role=status, where status is one code for both targets or own/other
// (e.g. "patient=200/404"); every role must be listed.
type matrixRow struct {
	route string
	req   func(f *matrixFixture, target string) matrixRequest
	want  string
}

// matrixFixture holds the ids of the data the rows ask about.
type matrixFixture struct {
	patient map[string]string // target → Patient id
	obs     map[string]string // target → an Observation of that patient
	device  map[string]string
	base    string
	tokens  map[string]string
	// fresh creates an Observation of the target's patient (as admin), for
	// rows that change or delete one.
	fresh func(target string) string
}

func obsBody(patient string) string {
	return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},` +
		`"subject":{"reference":"Patient/` + patient + `"},"effectiveDateTime":"2026-11-20T08:00:00Z",` +
		`"valueQuantity":{"value":70,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`
}

func get(path string) func(*matrixFixture, string) matrixRequest {
	return func(f *matrixFixture, target string) matrixRequest {
		return matrixRequest{method: http.MethodGet, path: f.expand(path, target)}
	}
}

// expand fills {patient}, {obs} and {device} with the target's ids.
func (f *matrixFixture) expand(path, target string) string {
	return strings.NewReplacer("{patient}", f.patient[target], "{obs}", f.obs[target], "{device}", f.device[target]).Replace(path)
}

func matrixRows() []matrixRow {
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	async := map[string]string{"Prefer": "respond-async"}
	fhirJSON := map[string]string{"Content-Type": "application/fhir+json"}
	return []matrixRow{
		// Public.
		{"GET /healthz", get("/healthz"), "anon=200 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /readyz", get("/readyz"), "anon=200 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /fhir/metadata", get("/fhir/metadata"), "anon=200 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /.well-known/smart-configuration", get("/.well-known/smart-configuration"), "anon=200 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /login", get("/login"), "anon=200 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		{"POST /login", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/login", body: "username=nobody&password=wrong", header: form}
		}, "anon=403 patient=403 nurse=403 clinician=403 admin=403 system=403"}, // no CSRF cookie: refused before any password check
		{"POST /auth/token", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/auth/token", body: "grant_type=client_credentials", header: form}
		}, "anon=400 patient=400 nurse=400 clinician=400 admin=400 system=400"},
		// Pages: a bearer token is no sign-in; they send people to /login.
		{"GET /app", get("/app"), "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"},
		{"GET /me", get("/me"), "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"},
		{"GET /visit/:appointmentId", func(_ *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodGet, path: "/visit/matrix-visit-" + target}
		}, "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"},
		{"POST /logout", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/logout", header: form}
		}, "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"},
		{"POST /lang", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/lang", body: "lang=sv&next=/app", header: form}
		}, "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"}, // a preference: no session needed
		{"GET /app/patients/:id", get("/app/patients/{patient}"), "anon=303 patient=303 nurse=303 clinician=303 admin=303 system=303"},
		// The dashboard's fragments, stream and forms answer 401 without a session: a script or form cannot follow a sign-in.
		{"GET /app/worklist", get("/app/worklist"), "anon=401 patient=401 nurse=401 clinician=401 admin=401 system=401"},
		{"GET /app/events", get("/app/events"), "anon=401 patient=401 nurse=401 clinician=401 admin=401 system=401"},
		{"POST /app/patients/:id/goals", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: f.expand("/app/patients/{patient}/goals", target), body: "code=59408-5&low=90", header: form}
		}, "anon=401 patient=401 nurse=401 clinician=401 admin=401 system=401"},
		{"POST /app/patients/:id/visit", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: f.expand("/app/patients/{patient}/visit", target), header: form}
		}, "anon=401 patient=401 nurse=401 clinician=401 admin=401 system=401"},
		{"POST /app/tasks/:id/acknowledge", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/app/tasks/no-such-task/acknowledge", body: "note=x", header: form}
		}, "anon=401 patient=401 nurse=401 clinician=401 admin=401 system=401"},

		// Operations and administration.
		{"GET /metrics", get("/metrics"), "anon=401 patient=403 nurse=403 clinician=403 admin=200 system=200"},
		{"GET /admin/deadletters", get("/admin/deadletters"), "anon=401 patient=403 nurse=403 clinician=403 admin=200 system=403"},
		{"GET /admin/users", get("/admin/users"), "anon=401 patient=403 nurse=403 clinician=403 admin=200 system=403"},
		{"GET /admin/users/:id", get("/admin/users/nobody"), "anon=401 patient=403 nurse=403 clinician=403 admin=404 system=403"},
		{"POST /admin/users", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/admin/users", body: `{}`, header: map[string]string{"Content-Type": "application/json"}}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=400 system=403"},
		{"POST /admin/users/:id/disable", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/admin/users/nobody/disable"}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=404 system=403"},
		{"POST /admin/users/:id/enable", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/admin/users/nobody/enable"}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=404 system=403"},
		{"PUT /admin/users/:id/password", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPut, path: "/admin/users/nobody/password", body: `{"password":"a long enough password"}`, header: map[string]string{"Content-Type": "application/json"}}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=404 system=403"},
		{"DELETE /admin/users/:id/sessions", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodDelete, path: "/admin/users/nobody/sessions"}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=404 system=403"},
		// An external broker's calls: the system client stands for it.
		{"POST /mqtt/auth/user", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/mqtt/auth/user", body: `{"username":"x","password":"y"}`, header: map[string]string{"Content-Type": "application/json"}}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=403 system=403"},
		{"POST /mqtt/auth/acl", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/mqtt/auth/acl", body: `{"username":"x","topic":"t","acc":1}`, header: map[string]string{"Content-Type": "application/json"}}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=403 system=403"},
		{"POST /mqtt/auth/superuser", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/mqtt/auth/superuser", body: `{"username":"x"}`, header: map[string]string{"Content-Type": "application/json"}}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=403 system=403"},

		// FHIR reads: another patient's resource is not found.
		{"GET /fhir/:type/:id", get("/fhir/Observation/{obs}"), "anon=401 patient=200/404 nurse=200/404 clinician=200/404 admin=200 system=200"},
		{"GET /fhir/:type/:id/_history/:vid", get("/fhir/Observation/{obs}/_history/1"), "anon=401 patient=200/404 nurse=200/404 clinician=200/404 admin=200 system=200"},
		{"GET /fhir/:type/:id/_history", get("/fhir/Observation/{obs}/_history"), "anon=401 patient=200/404 nurse=200/404 clinician=200/404 admin=200 system=200"},
		{"GET /fhir/:type/_history", get("/fhir/Observation/_history?_count=1000"), "anon=401 patient=200 nurse=200 clinician=200 admin=200 system=200"},
		// Searches: a patient naming another patient is refused; staff find
		// nothing outside their care teams (checked: no other's id leaks).
		{"GET /fhir/:type", get("/fhir/Observation?patient={patient}&_count=1000"), "anon=401 patient=200/403 nurse=200 clinician=200 admin=200 system=200"},
		{"POST /fhir/:type/_search", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/fhir/Device/_search", body: "patient=" + f.patient[target], header: form}
		}, "anon=401 patient=200/403 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /fhir/:type/:id/:ctype", get("/fhir/Patient/{patient}/Observation?_count=1000"), "anon=401 patient=200/403 nurse=200 clinician=200 admin=200 system=200"},
		{"GET /fhir/Observation/$lastn", get("/fhir/Observation/$lastn?patient={patient}"), "anon=401 patient=200/403 nurse=200 clinician=200 admin=200 system=200"},
		// The audit trail: admins and system clients read it; nobody writes it.
		{"GET /fhir/:type", get("/fhir/AuditEvent?_count=1"), "anon=401 patient=403 nurse=403 clinician=403 admin=200 system=200"},

		// FHIR writes: patients and read-only system clients write nothing;
		// staff write inside their care teams only.
		{"POST /fhir/:type", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/fhir/Observation", body: obsBody(f.patient[target]), header: fhirJSON}
		}, "anon=401 patient=403 nurse=201/403 clinician=201/403 admin=201 system=403"},
		{"POST /fhir/:type", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/fhir/AuditEvent", body: `{"resourceType":"AuditEvent"}`, header: fhirJSON}
		}, "anon=401 patient=403 nurse=403 clinician=403 admin=403 system=403"},
		{"PUT /fhir/:type/:id", func(f *matrixFixture, target string) matrixRequest {
			id := f.fresh(target)
			body := strings.Replace(obsBody(f.patient[target]), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1)
			return matrixRequest{method: http.MethodPut, path: "/fhir/Observation/" + id, body: body, header: fhirJSON}
		}, "anon=401 patient=403 nurse=200/404 clinician=200/404 admin=200 system=403"},
		{"DELETE /fhir/:type/:id", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodDelete, path: "/fhir/Observation/" + f.fresh(target)}
		}, "anon=401 patient=403 nurse=204/404 clinician=204/404 admin=204 system=403"},
		{"POST /fhir/", func(f *matrixFixture, target string) matrixRequest {
			bundle := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + obsBody(f.patient[target]) +
				`,"request":{"method":"POST","url":"Observation"}}]}`
			return matrixRequest{method: http.MethodPost, path: "/fhir/", body: bundle, header: fhirJSON}
		}, "anon=401 patient=403 nurse=200/403 clinician=200/403 admin=200 system=403"},

		// Bulk Data export: every job is confined like a search by the
		// same caller (a patient's to their compartment, staff to their
		// care teams); the export's own tests read the files back.
		{"GET /fhir/$export", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodGet, path: "/fhir/$export?_type=Observation", header: async}
		}, "anon=401 patient=202 nurse=202 clinician=202 admin=202 system=202"},
		{"GET /fhir/Patient/$export", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodGet, path: "/fhir/Patient/$export?_type=Observation", header: async}
		}, "anon=401 patient=202 nurse=202 clinician=202 admin=202 system=202"},
		{"GET /fhir/Group/:id/$export", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodGet, path: "/fhir/Group/no-such-group/$export", header: async}
		}, "anon=401 patient=403 nurse=404 clinician=404 admin=404 system=404"},
		{"GET /fhir/$export-status/:job", get("/fhir/$export-status/no-such-job"), "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"DELETE /fhir/$export-status/:job", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodDelete, path: "/fhir/$export-status/no-such-job"}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"GET /fhir/$export-file/:job/:name", get("/fhir/$export-file/no-such-job/Observation.ndjson"), "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},

		// Everything else under /fhir is refused, after authentication.
		{"GET /fhir/*", get("/fhir/Observation/x/y/z/w"), "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"POST /fhir/*", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPost, path: "/fhir/Observation/x/y", body: "{}", header: fhirJSON}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"PUT /fhir/*", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodPut, path: "/fhir/Observation", body: "{}", header: fhirJSON}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"DELETE /fhir/*", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodDelete, path: "/fhir/Observation"}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"PATCH /fhir/*", func(f *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodPatch, path: f.expand("/fhir/Observation/{obs}", target), body: "[]", header: map[string]string{"Content-Type": "application/json-patch+json"}}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"OPTIONS /fhir/*", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodOptions, path: "/fhir/Observation"}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"TRACE /fhir/*", func(*matrixFixture, string) matrixRequest {
			return matrixRequest{method: http.MethodTrace, path: "/fhir/Observation"}
		}, "anon=401 patient=404 nurse=404 clinician=404 admin=404 system=404"},
		{"CONNECT /fhir/*", nil, ""}, // Go's HTTP client cannot send CONNECT to a path; the route is the same catch-all as above

		// Video visits: only the appointment's participants get a join
		// token; only its practitioners see the waiting room and admit,
		// remove, end. "own" is demo-patient-1's visit with the demo
		// clinician, "other" the outsider's with nobody from the clinic.
		// Nobody joined, so admit and remove find no one (404) and end
		// finds no visit (409).
		{"GET /video/ws", get("/video/ws"), "anon=426 patient=426 nurse=426 clinician=426 admin=426 system=426"},
		{"POST /video/visits/:appointmentId/join", visitPost("join", ""), "anon=401 patient=200/403 nurse=403 clinician=200/403 admin=403 system=403"},
		{"GET /video/visits/:appointmentId", func(_ *matrixFixture, target string) matrixRequest {
			return matrixRequest{method: http.MethodGet, path: "/video/visits/matrix-visit-" + target}
		}, "anon=401 patient=403 nurse=403 clinician=200/403 admin=403 system=403"},
		{"POST /video/visits/:appointmentId/admit", visitPost("admit", `{"participant":"Patient/demo-patient-1"}`), "anon=401 patient=403 nurse=403 clinician=404/403 admin=403 system=403"},
		{"POST /video/visits/:appointmentId/remove", visitPost("remove", `{"participant":"Patient/demo-patient-1"}`), "anon=401 patient=403 nurse=403 clinician=404/403 admin=403 system=403"},
		{"POST /video/visits/:appointmentId/end", visitPost("end", ""), "anon=401 patient=403 nurse=403 clinician=409/403 admin=403 system=403"},
	}
}

// visitPost is a POST to /video/visits/matrix-visit-{target}/{action}.
func visitPost(action, body string) func(*matrixFixture, string) matrixRequest {
	return func(_ *matrixFixture, target string) matrixRequest {
		r := matrixRequest{method: http.MethodPost, path: "/video/visits/matrix-visit-" + target + "/" + action, body: body}
		if body != "" {
			r.header = map[string]string{"Content-Type": "application/json"}
		}
		return r
	}
}

// parseWant reads "role=own[/other] ..." into status per role and target.
func parseWant(t *testing.T, want string) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for _, f := range strings.Fields(want) {
		role, codes, ok := strings.Cut(f, "=")
		own, other, two := strings.Cut(codes, "/")
		a, err1 := strconv.Atoi(own)
		b := a
		var err2 error
		if two {
			b, err2 = strconv.Atoi(other)
		}
		if !ok || err1 != nil || err2 != nil || !slices.Contains(roles, role) {
			t.Fatalf("bad expectation %q", f)
		}
		out[role] = [2]int{a, b}
	}
	if len(out) != len(roles) {
		t.Fatalf("expectation %q does not list every role", want)
	}
	return out
}

var routeLine = regexp.MustCompile(`"msg":"http: route","route":"([^"]+)"`) //nolint:gochecknoglobals // compiled once

func TestAuthorizationMatrix(t *testing.T) {
	addr := freeAddr(t)
	envFile := filepath.Join(t.TempDir(), "tokens.env")
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "debug", "VIDDA_EXPORT_DIR": t.TempDir(),
	}
	if _, _, err := runCmd(t, context.Background(), env, "seed", "--env-file", envFile); err != nil {
		t.Fatal(err)
	}
	tokens := readEnvFile(t, envFile)
	sys, _, err := runCmd(t, context.Background(), env, "token", "--role", "system")
	if err != nil {
		t.Fatal(err)
	}
	f := &matrixFixture{
		base: "http://" + addr,
		tokens: map[string]string{
			"anon": "", "patient": tokens["PATIENT_TOKEN"], "nurse": tokens["NURSE_TOKEN"], "clinician": tokens["CLINICIAN_TOKEN"],
			"admin": tokens["ADMIN_TOKEN"], "system": strings.TrimSpace(sys),
		},
	}

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitReady(t, f.base, done)

	// The data: the outsider is a patient of no care team.
	admin := f.tokens["admin"]
	f.send(t, admin, matrixRequest{
		method: http.MethodPut, path: "/fhir/Patient/outsider",
		body: `{"resourceType":"Patient","id":"outsider","name":[{"family":"Utenfor"}]}`, header: map[string]string{"Content-Type": "application/fhir+json"},
	}, 201)
	f.send(t, admin, matrixRequest{
		method: http.MethodPut, path: "/fhir/Device/outsider-cuff",
		body: `{"resourceType":"Device","id":"outsider-cuff","patient":{"reference":"Patient/outsider"}}`, header: map[string]string{"Content-Type": "application/fhir+json"},
	}, 201)
	f.patient = map[string]string{"own": "demo-patient-1", "other": "outsider"}
	f.device = map[string]string{"own": "demo-cuff-1", "other": "outsider-cuff"}
	f.fresh = func(target string) string {
		_, body := f.send(t, admin, matrixRequest{
			method: http.MethodPost, path: "/fhir/Observation", body: obsBody(f.patient[target]),
			header: map[string]string{"Content-Type": "application/fhir+json"},
		}, 201)
		var m struct{ ID string }
		if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
			t.Fatalf("fresh observation: %v %s", err, body)
		}
		return m.ID
	}
	f.obs = map[string]string{"own": f.fresh("own"), "other": f.fresh("other")}
	for target, people := range map[string][2]string{"own": {"demo-patient-1", "demo-clinician"}, "other": {"outsider", "outsider-doctor"}} {
		f.send(t, admin, matrixRequest{
			method: http.MethodPut, path: "/fhir/Appointment/matrix-visit-" + target,
			body: `{"resourceType":"Appointment","id":"matrix-visit-` + target + `","status":"booked","participant":[` +
				`{"actor":{"reference":"Patient/` + people[0] + `"},"status":"accepted"},` +
				`{"actor":{"reference":"Practitioner/` + people[1] + `"},"status":"accepted"}]}`,
			header: map[string]string{"Content-Type": "application/fhir+json"},
		}, 201)
	}

	rows := matrixRows()
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.route] = true
	}
	served := routeLine.FindAllStringSubmatch(logs.String(), -1)
	if len(served) == 0 {
		t.Fatal("the server logged no route table")
	}
	for _, m := range served {
		if !covered[m[1]] {
			t.Errorf("route %s has no row in the authorization matrix: add one with the answer every role must get", m[1])
		}
	}

	for _, r := range rows {
		if r.req == nil {
			continue
		}
		want := parseWant(t, r.want)
		for _, role := range roles {
			for i, target := range []string{"own", "other"} {
				if i == 1 && !strings.Contains(r.want, "/") && !dependsOnTarget(f, r) {
					continue // the same request twice
				}
				req := r.req(f, target)
				status := want[role][i]
				t.Run(fmt.Sprintf("%s %s as %s (%s)", req.method, req.path, role, target), func(t *testing.T) {
					got, body := f.send(t, f.tokens[role], req, status)
					if target == "other" && got < 300 && role != "admin" && role != "system" && req.method != http.MethodPost {
						// Allowed, but it must not show the outsider's data.
						if strings.Contains(string(body), `"Patient/outsider"`) || strings.Contains(string(body), f.obs["other"]) {
							t.Errorf("%s sees the outsider's data: %.300s", role, body)
						}
					}
				})
			}
		}
	}
}

// dependsOnTarget reports whether r asks about the target at all. Rows
// that create data for it (fresh) count as depending.
func dependsOnTarget(f *matrixFixture, r matrixRow) bool {
	own, other := r.req(f, "own"), r.req(f, "other")
	return own.path != other.path || own.body != other.body
}

// send makes req with token and checks the status; it returns the status
// and body.
func (f *matrixFixture) send(t *testing.T, token string, r matrixRequest, want int) (int, []byte) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(context.Background(), r.method, f.base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("%s %s: %d, want %d: %.300s", r.method, r.path, resp.StatusCode, want, b)
	}
	if resp.StatusCode >= 400 && strings.HasPrefix(r.path, "/fhir") && !strings.Contains(string(b), "OperationOutcome") {
		t.Errorf("%s %s: %d without an OperationOutcome: %.200s", r.method, r.path, resp.StatusCode, b)
	}
	return resp.StatusCode, b
}
