package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/care"
)

// rowOrder is the order of the worklist's rows, by Task id.
var rowOrder = regexp.MustCompile(`data-task="([^"]+)"`)

func tasksIn(body string) []string {
	var out []string
	for _, m := range rowOrder.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestTheWorklistPutsTheMostUrgentFirstThenTheLongestWaiting(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	now := time.Now()
	h.reading("o1", "p1", "59408-5", now.Add(-3*time.Hour), "L", 89)
	h.reading("o2", "p2", "85354-9", now.Add(-2*time.Hour), "H", 182, 104)
	h.reading("o3", "p3", "59408-5", now.Add(-time.Hour), "LL", 84)
	// Alphabetical order would be asap, routine, stat, urgent.
	h.task("t-routine-old", "p1", "routine", "o1", now.Add(-5*time.Hour))
	h.task("t-routine-new", "p2", "routine", "", now.Add(-10*time.Minute))
	h.task("t-urgent", "p2", "urgent", "o2", now.Add(-2*time.Hour))
	h.task("t-stat", "p1", "stat", "o1", now.Add(-12*time.Minute))
	h.task("t-asap", "p1", "asap", "", now.Add(-time.Hour))
	h.task("t-other-team", "p3", "stat", "o3", now.Add(-time.Hour))

	ingrid := h.signIn("ingrid", "ingrid's long password")
	resp, body := ingrid.get("/app")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /app: %d %s", resp.StatusCode, body)
	}
	want := []string{"t-stat", "t-asap", "t-urgent", "t-routine-old", "t-routine-new"}
	if got := tasksIn(body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("worklist order %v, want %v", got, want)
	}
	for _, s := range []string{"Astrid Nilsson", "Olav Hansen", "182/104 mmHg", "Oxygen saturation", "12 min ago", `<th scope="col">`, `lang="en"`, `class="skip"`, `src="/static/live.js"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the worklist lacks %q", s)
		}
	}
	if strings.Contains(body, "Karin") {
		t.Error("the worklist shows a patient of another care team")
	}
	// The fragment the script fetches is the same list.
	resp, frag := ingrid.get("/app/worklist")
	if resp.StatusCode != http.StatusOK || strings.Join(tasksIn(frag), " ") != strings.Join(want, " ") || strings.Contains(frag, "<html") {
		t.Errorf("GET /app/worklist: %d %v", resp.StatusCode, tasksIn(frag))
	}
}

func TestANurseOfAnotherCareTeamSeesNoneOfThesePatients(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	now := time.Now()
	h.reading("o1", "p1", "59408-5", now.Add(-time.Hour), "L", 89)
	h.task("t1", "p1", "urgent", "o1", now.Add(-time.Hour))
	berit := h.signIn("berit", "berit's long password")
	_, body := berit.get("/app")
	if len(tasksIn(body)) != 0 || strings.Contains(body, "Astrid") {
		t.Errorf("berit sees another team's task: %v", tasksIn(body))
	}
	if !strings.Contains(body, "Nothing needs attention") {
		t.Error("an empty worklist does not say so")
	}
	for _, path := range []string{"/app/patients/p1", "/app/patients/p1?days=90"} {
		if resp, body := berit.get(path); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "Astrid") {
			t.Errorf("GET %s as another team's nurse: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := berit.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"x"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("acknowledging another team's task: %d", resp.StatusCode)
	}
	if resp, _ := berit.do(http.MethodPost, "/app/patients/p1/visit", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("starting a visit with another team's patient: %d", resp.StatusCode)
	}
	if resp, _ := berit.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"59408-5"}, "low": {"90"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("setting another team's patient's limits: %d", resp.StatusCode)
	}
}

func TestAPatientSeesOnlyTheirOwnPageAndNoDashboard(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	now := time.Now()
	h.reading("o1", "p1", "85354-9", now.Add(-26*time.Hour), "H", 152, 95)
	h.reading("o2", "p1", "85354-9", now.Add(-2*time.Hour), "", 128, 82)
	h.reading("o3", "p2", "85354-9", now.Add(-2*time.Hour), "", 199, 99)
	h.task("t1", "p1", "urgent", "o1", now.Add(-26*time.Hour))
	h.put("Appointment", "visit-1", map[string]any{
		"status": "booked", "start": now.Add(2 * time.Hour).UTC().Format(time.RFC3339), "end": now.Add(150 * time.Minute).UTC().Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": ref("Patient/p1"), "status": "accepted"}},
	})
	h.put("Appointment", "visit-other", map[string]any{
		"status": "booked", "start": now.Add(2 * time.Hour).UTC().Format(time.RFC3339), "end": now.Add(150 * time.Minute).UTC().Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": ref("Patient/p2"), "status": "accepted"}},
	})
	astrid := h.signIn("astrid", "astrid's long password")
	resp, body := astrid.get("/me")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /me: %d %s", resp.StatusCode, body)
	}
	for _, s := range []string{
		"Hello, Astrid Nilsson", "128/82", "Your blood pressure this week: all within your limits; highest 152/95 mmHg on",
		`href="/visit/visit-1"`, "Your nurse has been told", "If a device stops sending",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("/me lacks %q", s)
		}
	}
	for _, s := range []string{"199/99", "visit-other", "Olav"} {
		if strings.Contains(body, s) {
			t.Errorf("/me shows another patient's %q", s)
		}
	}
	if resp, _ := astrid.get("/app"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/me" {
		t.Errorf("GET /app as a patient: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/app/worklist", "/app/patients/p1", "/app/events"} {
		if resp, _ := astrid.get(path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s as a patient: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := astrid.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"ok"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a patient acknowledging: %d", resp.StatusCode)
	}
	ingrid := h.signIn("ingrid", "ingrid's long password")
	if resp, _ := ingrid.get("/me"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app" {
		t.Errorf("GET /me as a nurse: %d", resp.StatusCode)
	}
	// Once the nurse acknowledges, the patient reads that she did.
	if resp, body := ingrid.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"Called her; fine."}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("acknowledge: %d %s", resp.StatusCode, body)
	}
	if _, body := astrid.get("/me"); !strings.Contains(body, "Your nurse reviewed this on") {
		t.Error("/me does not say the nurse reviewed the reading")
	}
}

func TestAcknowledgingCompletesTheTaskThroughTheStore(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	now := time.Now()
	h.reading("o1", "p1", "59408-5", now.Add(-time.Hour), "LL", 85)
	h.task("t1", "p1", "stat", "o1", now.Add(-time.Hour))
	ingrid := h.signIn("ingrid", "ingrid's long password")
	_, page := ingrid.get("/app/patients/p1")
	if !strings.Contains(page, `action="/app/tasks/t1/acknowledge"`) || !strings.Contains(page, `<label for="note-t1">`) {
		t.Fatalf("the patient page has no acknowledge form for t1")
	}
	// Without the session's CSRF token: refused, nothing changes.
	if resp, _ := ingrid.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"x"}, "csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("acknowledge without CSRF: %d", resp.StatusCode)
	}
	resp, _ := ingrid.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"Spoke to patient, resting."}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/patients/p1?saved=ack" {
		t.Fatalf("acknowledge: %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	st, err := h.st.Read(context.Background(), "Task", "t1", store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	var task map[string]any
	_ = json.Unmarshal(st.Content, &task)
	raw := string(st.Content)
	if task["status"] != "completed" || st.VersionID != 2 || !strings.Contains(raw, `"owner":{"reference":"Practitioner/nurse-a"}`) ||
		!strings.Contains(raw, "Spoke to patient, resting.") {
		t.Errorf("task after acknowledge (v%d): %s", st.VersionID, raw)
	}
	_, list := ingrid.get("/app")
	if len(tasksIn(list)) != 0 {
		t.Errorf("an acknowledged task stays on the worklist: %v", tasksIn(list))
	}
	// Twice: the second finds it done.
	if resp, _ := ingrid.do(http.MethodPost, "/app/tasks/t1/acknowledge", url.Values{"note": {"again"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("acknowledging a completed task: %d", resp.StatusCode)
	}
	// Each page and write left an AuditEvent naming the patient.
	waitFor(t, func() bool {
		var n int
		_ = h.pool.QueryRow(context.Background(), `SELECT count(*) FROM auditevent WHERE patient_id = 'p1'`).Scan(&n)
		return n >= 3
	}, "audit events of p1")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestThePatientPageChartsTrendsWithTheLimitsBandAndEditsGoals(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	now := time.Now()
	for d := range 20 {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		h.reading("bp"+itoa(d), "p1", "85354-9", at, "", 130+float64(d%5), 80+float64(d%3))
		h.reading("w"+itoa(d), "p1", "29463-7", at, "", 71.5+0.1*float64(d))
	}
	ingrid := h.signIn("ingrid", "ingrid's long password")
	// A limit for systolic pressure, typed with a decimal comma.
	resp, body := ingrid.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"8480-6"}, "low": {"95"}, "high": {"132,5"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save goal: %d %s", resp.StatusCode, body)
	}
	resp, body = ingrid.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"8480-6"}, "low": {"95"}, "high": {"133"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("update goal: %d %s", resp.StatusCode, body)
	}
	page, err := h.st.Search(context.Background(), mustParse(t, h, "Goal", "patient=p1"), store.Access{})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].VersionID != 2 || !strings.Contains(string(page.Entries[0].Content), `"value":133`) {
		t.Fatalf("goals after two saves: %v %+v", err, page)
	}
	if resp, _ := ingrid.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"8480-6"}, "low": {"140"}, "high": {"90"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("low above high: %d", resp.StatusCode)
	}
	if resp, _ := ingrid.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"1234-5"}, "low": {"1"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown measure: %d", resp.StatusCode)
	}

	for _, days := range []string{"7", "30", "90"} {
		if resp, _ := ingrid.get("/app/patients/p1?days=" + days); resp.StatusCode != http.StatusOK {
			t.Fatalf("patient page: %d", resp.StatusCode)
		}
	}
	_, body = ingrid.get("/app/patients/p1?days=30")
	for _, s := range []string{
		`<svg class="chart"`, `<polyline class="line line-0"`, `<polyline class="line line-1"`, `<rect class="band band-0"`,
		"Limits 95–133 mmHg", `class="pt out pt-0"`, `<title id="chart-blood-pressure-t">Blood pressure, last 30 days</title>`,
		`<label for="low-8480-6">`, `value="133"`, "71.5 kg",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("the patient page lacks %q", s)
		}
	}
	// Systolic has the patient's Goal, diastolic the clinic's default;
	// weight has no limit in the rules: a chart without a band.
	if n := strings.Count(body, `<rect class="band`); n != 2 || !strings.Contains(body, "Systolic: Limits 95–133 mmHg; Diastolic: Below 110 mmHg (clinic default)") {
		t.Errorf("%d limit bands, want 2 (systolic's Goal, diastolic's default)", n)
	}
	// Clearing both ends cancels the Goal: the clinic's defaults apply.
	if resp, _ := ingrid.do(http.MethodPost, "/app/patients/p1/goals", url.Values{"code": {"8480-6"}, "low": {""}, "high": {""}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("clear goal: %d", resp.StatusCode)
	}
	if _, body = ingrid.get("/app/patients/p1"); strings.Contains(body, "95–133") || !strings.Contains(body, "Systolic: Limits 90 to under 180 mmHg (clinic default)") {
		t.Error("a cancelled Goal still draws its band, or the default does not come back")
	}
}

func TestTheClinicsDefaultLimitsShowWhereAPatientHasNoGoal(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	rules, err := care.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	h.pages.deps.Rules = rules
	h.clinic()
	h.reading("o1", "p1", "59408-5", time.Now().Add(-time.Hour), "", 95)
	ingrid := h.signIn("ingrid", "ingrid's long password")
	_, body := ingrid.get("/app/patients/p1")
	for _, s := range []string{`<rect class="band band-0"`, "(clinic default)", `placeholder="92"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the patient page lacks %q", s)
		}
	}
}

func mustParse(t *testing.T, h *harness, typ, q string) *search.Query {
	t.Helper()
	v, _ := url.ParseQuery(q)
	sq, err := h.params.Parse(typ, v, true)
	if err != nil {
		t.Fatal(err)
	}
	return sq
}

func TestStartingAVisitBooksAnAppointmentForNow(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	ingrid := h.signIn("ingrid", "ingrid's long password")
	resp, body := ingrid.do(http.MethodPost, "/app/patients/p1/visit", url.Values{})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/visit/") {
		t.Fatalf("start visit: %d → %q %s", resp.StatusCode, loc, body)
	}
	st, err := h.st.Read(context.Background(), "Appointment", strings.TrimPrefix(loc, "/visit/"), store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	raw := string(st.Content)
	for _, s := range []string{`"status":"booked"`, `"Patient/p1"`, `"Practitioner/nurse-a"`} {
		if !strings.Contains(raw, s) {
			t.Errorf("appointment lacks %s: %s", s, raw)
		}
	}
	if st.PatientID != "p1" {
		t.Errorf("appointment in compartment %q", st.PatientID)
	}
}
