package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The video visit page in real browsers: two headless Chromiums (separate
// processes and profiles) with Chromium's fake camera and microphone,
// against a real `vidda serve` (its SFU, TURN and database). The demo
// clinician starts a visit from the patient's page, the demo patient
// checks her camera, joins and waits, the clinician lets her in, and both
// must decode the other's video (inbound-rtp framesDecoded > 0 in
// getStats of the page's RTCPeerConnection, window.viddaVisit.pc). The
// test keeps a screenshot of the patient's visit, leaves and ends, and
// checks that the Encounter is finished.
//
// TestVisitJoinToFirstFrame measures, over several visits, the time from
// the patient's page receiving "admitted" to its first decoded frame of
// the clinician's video (see admissionToFirstFrame); logged, not asserted.

// visitBrowserOpts are the flags of a browser that takes part in visits:
// the fake camera and microphone, permission granted without a prompt,
// and media that plays without a user gesture.
func visitBrowserOpts(path, dataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dataDir), chromedp.WindowSize(412, 915),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Headless Chromium throttles timers of pages it thinks are hidden.
		chromedp.Flag("disable-background-timer-throttling", true), chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
}

// browser is one Chromium with one page, and the test's helpers on it.
type visitBrowser struct {
	t    *testing.T
	ctx  context.Context
	name string
}

// newVisitBrowser starts a Chromium with opts; it ends with the test.
func newVisitBrowser(t *testing.T, name string, opts []chromedp.ExecAllocatorOption) *visitBrowser {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 8*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	// The browser starts with the first action on ctx itself.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", name, err)
	}
	return &visitBrowser{t: t, ctx: ctx, name: name}
}

// step runs actions within 45 s or fails with where the page is.
func (b *visitBrowser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.stepWithin(45*time.Second, what, actions...)
}

func (b *visitBrowser) stepWithin(d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		b.t.Fatalf("%s: %s: %v\n%s", b.name, what, err, b.describe())
	}
}

// describe is the page's location, visit state and recent visit events,
// for failure messages.
func (b *visitBrowser) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
  state: document.getElementById('visit')?.getAttribute('data-state'),
  status: document.getElementById('visit-status')?.textContent,
  notice: document.getElementById('visit-notice')?.textContent,
  pc: window.viddaVisit?.pc?.connectionState, marks: window.viddaVisit?.marks,
  events: (window.viddaVisit?.events || []).slice(-25)})`))
	return "at " + loc + ": " + st
}

// eval evaluates a JavaScript expression on the page.
func evalIn[T any](b *visitBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, expr, err)
	}
	return v
}

// press waits for an enabled element and clicks it from script: the
// visit page's layout moves as videos start, and a mouse click at
// computed coordinates may land beside a button that just moved.
func press(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := chromedp.WaitEnabled(sel)(ctx, t); err != nil {
			return chromedp.Void{}, err
		}
		ok, err := chromedp.Evaluate[bool](`(() => { const el = document.querySelector(`+strconvQuote(sel)+`); if (!el) return false; el.click(); return true; })()`)(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("%s: no such element", sel)
		}
		return chromedp.Void{}, err
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// poll waits up to d for a JavaScript expression to be truthy.
func (b *visitBrowser) poll(d time.Duration, what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: %s: %v\n%s", b.name, what, err, b.describe())
	}
}

func (b *visitBrowser) signIn(base, user, password string) {
	b.t.Helper()
	b.step("sign in as "+user,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", user),
		chromedp.SendKeys("#password", password),
		chromedp.Submit("#password"),
		chromedp.WaitVisible("#main h1"),
	)
}

// startVisit is the dashboard's "Start video visit" on a patient's page;
// it returns the new Appointment's id from the visit page's URL.
func (b *visitBrowser) startVisit(base, patient string) string {
	b.t.Helper()
	b.step("start a video visit",
		chromedp.Navigate(base+"/app/patients/"+patient),
		chromedp.Click(`form[action$="/visit"] button[type="submit"]`),
		chromedp.WaitVisible("#visit"),
	)
	loc := evalIn[string](b, `location.pathname`)
	id, ok := strings.CutPrefix(loc, "/visit/")
	if !ok || id == "" {
		b.t.Fatalf("start visit led to %s", loc)
	}
	return id
}

// joinVisit opens the visit page (unless it is open), waits for the
// camera check and presses Join; it returns once the page is in the state
// want ("waiting" or "in-visit").
func (b *visitBrowser) joinVisit(base, appointment, want string) {
	b.t.Helper()
	if evalIn[string](b, `location.pathname`) != "/visit/"+appointment {
		b.step("open the visit page", chromedp.Navigate(base+"/visit/"+appointment), chromedp.WaitVisible("#visit"))
	}
	b.step("join", press("#join-btn"))
	b.poll(30*time.Second, "reach "+want, `document.getElementById('visit').getAttribute('data-state') === '`+want+`'`)
}

// watchFirstFrame starts, in the page, a getStats poll every 20 ms that
// records (Date.now) the first inbound video framesDecoded > 0 in
// window.viddaVisit.firstFrame.
func (b *visitBrowser) watchFirstFrame() {
	b.t.Helper()
	evalIn[bool](b, `(() => {
  const v = window.viddaVisit;
  v.firstFrame = 0;
  const tick = async () => {
    if (v.firstFrame || v.state === 'done') return;
    if (v.pc) {
      const st = await v.pc.getStats();
      st.forEach(r => {
        if (r.type === 'inbound-rtp' && r.kind === 'video' && r.framesDecoded > 0 && !v.firstFrame) v.firstFrame = Date.now();
      });
    }
    if (!v.firstFrame) setTimeout(tick, 20);
  };
  tick();
  return true;
})()`)
}

// inbound sums the page's inbound-rtp counters of one kind.
type inbound struct {
	Packets       float64 `json:"packets"`
	FramesDecoded float64 `json:"framesDecoded"`
	Bytes         float64 `json:"bytes"`
}

func (b *visitBrowser) inbound(kind string) inbound {
	b.t.Helper()
	return evalIn[inbound](b, `(async () => {
  const out = {packets: 0, framesDecoded: 0, bytes: 0};
  const pc = window.viddaVisit && window.viddaVisit.pc;
  if (!pc) return out;
  (await pc.getStats()).forEach(r => {
    if (r.type === 'inbound-rtp' && r.kind === '`+kind+`') {
      out.packets += r.packetsReceived || 0; out.framesDecoded += r.framesDecoded || 0; out.bytes += r.bytesReceived || 0;
    }
  });
  return out;
})()`)
}

// waitFlowing waits up to d for inbound packets of kind to arrive.
func (b *visitBrowser) waitFlowing(t *testing.T, kind string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for b.inbound(kind).Packets == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no inbound %s within %v\n%s", b.name, kind, d, b.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// admit presses "Let in" for participant in the practitioner's waiting
// list.
func (b *visitBrowser) admit(participant string) {
	b.t.Helper()
	sel := `#waiting-list li[data-participant="` + participant + `"] button.admit`
	b.step("admit "+participant, chromedp.WaitVisible(sel), press(sel))
}

// saveScreenshot writes the page as a PNG next to the dashboard's.
func (b *visitBrowser) saveScreenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	dir := os.Getenv("VIDDA_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(b.t), ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, shot, 0o644); err != nil { //nolint:gosec // a screenshot of demo data, for people to look at
		b.t.Fatal(err)
	}
	return file
}

// fhirGet reads base+path as admin and decodes the JSON.
func fhirGet(t *testing.T, s *viddaServer, token, path string, into any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// encounterStatus is the status of the visit's Encounter, "" for none.
func encounterStatus(t *testing.T, s *viddaServer, token, appointment string) string {
	t.Helper()
	var bundle struct {
		Entry []struct {
			Resource struct {
				Status string `json:"status"`
			} `json:"resource"`
		} `json:"entry"`
	}
	fhirGet(t, s, token, "/fhir/Encounter?appointment="+url.QueryEscape("Appointment/"+appointment), &bundle)
	if len(bundle.Entry) == 0 {
		return ""
	}
	return bundle.Entry[0].Resource.Status
}

// visitPair is the clinician's and the patient's browsers, signed in.
type visitPair struct {
	s                  *viddaServer
	clinician, patient *visitBrowser
}

const (
	visitPatient    = "demo-patient-1" // Astrid Nilsson, the demo patient login
	visitPatientRef = "Patient/" + visitPatient
)

// newVisitPair starts the clinician's browser with extra flags (and the
// patient's, unless given), and signs both in.
func newVisitPair(t *testing.T, s *viddaServer, patient *visitBrowser, extra ...chromedp.ExecAllocatorOption) *visitPair {
	t.Helper()
	path := chromium(t)
	p := &visitPair{s: s, patient: patient}
	p.clinician = newVisitBrowser(t, "clinician", append(visitBrowserOpts(path, t.TempDir()), extra...))
	if p.patient == nil {
		p.patient = newVisitBrowser(t, "patient", visitBrowserOpts(path, t.TempDir()))
	}
	p.clinician.signIn(s.base, "lars", "vidda-demo-clinician")
	p.patient.signIn(s.base, "astrid", "vidda-demo-patient")
	return p
}

// admissionToFirstFrame runs one visit up to both sides decoding video:
// the clinician starts it and joins (admitted at once), the patient joins
// and waits — by then her peer with the SFU is negotiated and connected
// (a waiting participant may negotiate) — and the clinician lets her in.
// It returns, for the patient and the clinician, the time from the page
// receiving "admitted" (the patient's own, and the clinician's news that
// she was admitted) to the first inbound video framesDecoded > 0 seen by a
// 20 ms getStats poll.
func (p *visitPair) admissionToFirstFrame(t *testing.T) (appointment string, patient, clinician time.Duration) {
	t.Helper()
	base := p.s.base
	appointment = p.clinician.startVisit(base, visitPatient)
	p.clinician.joinVisit(base, appointment, "in-visit")
	p.patient.joinVisit(base, appointment, "waiting")
	p.patient.poll(30*time.Second, "the waiting patient's peer connects", `window.viddaVisit.pc && window.viddaVisit.pc.connectionState === 'connected'`)
	p.patient.watchFirstFrame()
	p.clinician.watchFirstFrame()
	p.clinician.admit(visitPatientRef)
	p.patient.poll(30*time.Second, "the patient is let in", `document.getElementById('visit').getAttribute('data-state') === 'in-visit'`)
	p.patient.poll(30*time.Second, "the patient decodes the clinician's video", `window.viddaVisit.firstFrame > 0`)
	p.clinician.poll(30*time.Second, "the clinician decodes the patient's video", `window.viddaVisit.firstFrame > 0`)
	ms := func(b *visitBrowser, mark string) time.Duration {
		return time.Duration(evalIn[float64](b, `window.viddaVisit.firstFrame - window.viddaVisit.marks.`+mark)) * time.Millisecond
	}
	return appointment, ms(p.patient, "admitted"), ms(p.clinician, "otherAdmitted")
}

// endVisit has the patient leave and the clinician end the visit.
func (p *visitPair) endVisit(t *testing.T) {
	t.Helper()
	p.patient.step("leave", press("#leave-btn"))
	p.patient.poll(10*time.Second, "the patient's page says she left", `document.getElementById('visit').getAttribute('data-state') === 'done'`)
	p.clinician.poll(15*time.Second, "the patient's tile goes", `!document.querySelector('.tile[data-participant="`+visitPatientRef+`"]')`)
	p.clinician.step("end the visit", press("#end-btn"))
	p.clinician.poll(15*time.Second, "the clinician's page says it ended", `document.getElementById('visit').getAttribute('data-state') === 'done'`)
}

func TestAPatientAndAClinicianSeeEachOtherInAVideoVisit(t *testing.T) {
	chromium(t)
	s := startVidda(t)
	p := newVisitPair(t, s, nil)
	appointment, tp, tc := p.admissionToFirstFrame(t)
	t.Logf("admitted → first decoded frame: patient %v, clinician %v", tp, tc)

	// Both see one tile of the other, with video and audio flowing.
	p.patient.poll(10*time.Second, "the patient has the clinician's tile", `document.querySelectorAll('#tiles .tile').length === 1 && !!document.querySelector('.tile[data-participant="Practitioner/demo-clinician"]')`)
	p.clinician.poll(10*time.Second, "the clinician has the patient's tile", `document.querySelectorAll('#tiles .tile').length === 1 && !!document.querySelector('.tile[data-participant="`+visitPatientRef+`"]')`)
	for _, b := range []*visitBrowser{p.patient, p.clinician} {
		b.waitFlowing(t, "audio", 20*time.Second)
	}
	if name := evalIn[string](p.clinician, `document.querySelector('#tiles .tile .who').textContent`); name != "Astrid Nilsson" {
		t.Errorf("the clinician's tile of the patient says %q, want her name", name)
	}
	if status := encounterStatus(t, s, strings.TrimSpace(string(s.run(t, "token", "--role", "admin"))), appointment); status != "in-progress" {
		t.Errorf("Encounter during the visit: %q, want in-progress", status)
	}
	// Let the quality indicator say something before the screenshot.
	p.patient.poll(15*time.Second, "the quality indicator shows a level", `document.getElementById('quality').getAttribute('data-quality') !== ''`)
	t.Logf("screenshot of the patient's visit: %s", p.patient.saveScreenshot("visit-patient.png"))
	t.Logf("screenshot of the clinician's visit: %s", p.clinician.saveScreenshot("visit-clinician.png"))

	// Mute and audio only reach the other side as text.
	p.patient.step("mute", press("#mute-btn"))
	p.clinician.poll(10*time.Second, "the clinician sees the patient muted", `document.querySelector('.tile[data-participant="`+visitPatientRef+`"] .tile-state').textContent.includes(JSON.parse(document.getElementById('visit-config').textContent).texts.muted)`)

	p.endVisit(t)
	admin := strings.TrimSpace(string(s.run(t, "token", "--role", "admin")))
	deadline := time.Now().Add(15 * time.Second)
	for {
		status := encounterStatus(t, s, admin, appointment)
		if status == "finished" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Encounter of the ended visit is %q, want finished", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestVisitJoinToFirstFrame(t *testing.T) {
	chromium(t)
	s := startVidda(t)
	p := newVisitPair(t, s, nil)
	var pat, cli []time.Duration
	for i := range 5 {
		_, tp, tc := p.admissionToFirstFrame(t)
		pat, cli = append(pat, tp), append(cli, tc)
		p.endVisit(t)
		t.Logf("run %d: admitted → first decoded frame: patient %v, clinician %v", i+1, tp, tc)
	}
	t.Logf("loopback, admitted → first decoded frame, %d runs: patient median %v (all %v); clinician median %v (all %v)",
		len(pat), pct(pat, 50), pat, pct(cli, 50), cli)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average: %s", strings.TrimSpace(string(b)))
	}
}
