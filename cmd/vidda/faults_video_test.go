package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/visitclient"
)

// Video visits across instances and through stops: a visit's room lives
// in one process, so the instances pin each visit to one of them
// (signaling/owner.go), and a stopping instance closes its visits so that
// their clients join again elsewhere.

// visitFixture is a seeded database with one booked Appointment between
// demo-patient-1 and demo-clinician, and their tokens.
type visitFixture struct {
	dbURL                   string
	appointment             string
	patient, clinician, key string
	admin                   string
}

func newVisitFixture(t *testing.T, appointment string) *visitFixture {
	t.Helper()
	f := &visitFixture{dbURL: dbtest.NewDatabase(t), appointment: appointment}
	envFile := filepath.Join(t.TempDir(), "tokens.env")
	env := map[string]string{"VIDDA_DATABASE_URL": f.dbURL, "VIDDA_LOG_LEVEL": "error"}
	if _, _, err := runCmd(t, context.Background(), env, "seed", "--env-file", envFile); err != nil {
		t.Fatal(err)
	}
	tokens := readEnvFile(t, envFile)
	f.patient, f.clinician, f.admin = tokens["PATIENT_TOKEN"], tokens["CLINICIAN_TOKEN"], tokens["ADMIN_TOKEN"]
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f.key = base64.StdEncoding.EncodeToString(key)
	return f
}

// env is the environment of one instance with id; lease is how long a
// killed instance keeps its visits.
func (f *visitFixture) env(t *testing.T, id string, lease time.Duration) map[string]string {
	t.Helper()
	return map[string]string{
		"VIDDA_DATABASE_URL": f.dbURL, "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_MQTT_LISTEN": freeAddr(t), "VIDDA_LOG_LEVEL": "error",
		"VIDDA_INSTANCE_ID": id, "VIDDA_VIDEO_TOKEN_KEY": f.key, "VIDDA_VIDEO_OWNER_LEASE": lease.String(),
	}
}

// book stores the Appointment through the instance at base.
func (f *visitFixture) book(t *testing.T, base string) {
	t.Helper()
	code, body := send(t, http.MethodPut, base+"/fhir/Appointment/"+f.appointment, f.clinician,
		`{"resourceType":"Appointment","id":"`+f.appointment+`","status":"booked","participant":[`+
			`{"actor":{"reference":"Patient/demo-patient-1"},"status":"accepted"},`+
			`{"actor":{"reference":"Practitioner/demo-clinician"},"status":"accepted"}]}`)
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("book the visit: %d %s", code, body)
	}
}

// grant asks the instance at base for a join token with bearer.
func (f *visitFixture) grant(t *testing.T, base, bearer string) *visitclient.Grant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := visitclient.Join(ctx, http.DefaultClient, base, bearer, f.appointment)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// inVisit joins the clinician through base, then the patient through
// patientBase, admits the patient and waits until media flows both ways.
func (f *visitFixture) inVisit(t *testing.T, base, patientBase string) (clinician, patient *visitclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if clinician, err = visitclient.Dial(ctx, f.grant(t, base, f.clinician)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clinician.Close)
	if patient, err = visitclient.Dial(ctx, f.grant(t, patientBase, f.patient)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(patient.Close)
	if err := visitclient.Admit(ctx, clinician, patient, nil); err != nil {
		t.Fatal(err)
	}
	return clinician, patient
}

func wsOf(env map[string]string) string { return "ws://" + env["VIDDA_HTTP_ADDR"] + "/video/ws?visit=" }

// TestAVisitIsServedByTheInstanceThatOwnsIt runs two instances on one
// database: the instance that handed out the first join token owns the
// visit; asked for a join token, the other sends the client there; a
// websocket opened on the other is refused with the owner's address.
// Once the owner is killed, its lease runs out and the other takes the
// visit, which goes on.
func TestAVisitIsServedByTheInstanceThatOwnsIt(t *testing.T) {
	const lease = 2 * time.Second
	f := newVisitFixture(t, "pinned-visit")
	envA, envB := f.env(t, "pin-a", lease), f.env(t, "pin-b", lease)
	startVidda(t, envA)
	b := startVidda(t, envB)
	baseA, baseB := "http://"+envA["VIDDA_HTTP_ADDR"], "http://"+envB["VIDDA_HTTP_ADDR"]
	f.book(t, baseA)

	// Nobody holds the visit yet: B, asked first, claims it; A, asked
	// next, sends the client to B.
	if g := f.grant(t, baseB, f.patient); !strings.HasPrefix(g.WS, wsOf(envB)) {
		t.Fatalf("first join token from B: ws %s, want B's %s", g.WS, wsOf(envB))
	}
	if g := f.grant(t, baseA, f.clinician); !strings.HasPrefix(g.WS, wsOf(envB)) {
		t.Fatalf("A answered a join of B's visit with ws %s, want B's %s", g.WS, wsOf(envB))
	}
	clinician, patient := f.inVisit(t, baseA, baseB)
	t.Logf("clinician (token from A) and patient (from B) are in the visit on B; media flows (%d and %d packets)",
		clinician.Received(), patient.Received())
	// B's /metrics shows the visit; A's shows none.
	for _, m := range []struct {
		env  map[string]string
		name string
		want func(int) bool
	}{
		{envB, "vidda_sfu_rooms", func(n int) bool { return n == 1 }},
		{envB, "vidda_sfu_participants", func(n int) bool { return n == 2 }},
		{envB, "vidda_sfu_forwarded_packets_total", func(n int) bool { return n > 0 }},
		{envA, "vidda_sfu_rooms", func(n int) bool { return n == 0 }},
	} {
		if n := metric(t, m.env["VIDDA_HTTP_ADDR"], f.admin, m.name); !m.want(n) {
			t.Errorf("%s of %s: %d", m.name, m.env["VIDDA_INSTANCE_ID"], n)
		}
	}

	// A websocket opened on A, which does not own the visit, is told
	// where the visit is.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g := f.grant(t, baseB, f.patient)
	g.WS = wsOf(envA) + f.appointment
	if c, err := visitclient.Dial(ctx, g); err == nil {
		c.Close()
		t.Fatal("A let a participant into B's visit")
	} else if !strings.Contains(err.Error(), "elsewhere") || !strings.Contains(err.Error(), baseB) {
		t.Fatalf("A refused the join with %v, want elsewhere naming %s", err, baseB)
	}

	// kill -9 the owner: its clients lose the websocket; once its lease
	// has run out, A takes the visit over and it goes on there.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, c := range []*visitclient.Client{clinician, patient} {
		t.Logf("%s: websocket closed with %d", c.Participant, errCloseCode(t, c))
	}
	var moved time.Duration
	for {
		if g := f.grant(t, baseA, f.patient); strings.HasPrefix(g.WS, wsOf(envA)) {
			moved = time.Since(killed)
			break
		}
		if time.Since(killed) > 10*lease+20*time.Second {
			t.Fatalf("A still sends joins to the killed B after %v", time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("A took the visit over %v after B was killed (lease %v)", moved.Round(10*time.Millisecond), lease)
	clinician, patient = f.inVisit(t, baseA, baseA)
	t.Logf("the visit goes on on A; media flows (%d and %d packets)", clinician.Received(), patient.Received())
	if n := f.encounters(t, baseA); n != 1 {
		t.Errorf("%d Encounters for the visit, want the one B started, continued on A", n)
	}
}

// encounters counts the Encounters of the visit.
func (f *visitFixture) encounters(t *testing.T, base string) int {
	t.Helper()
	code, body := send(t, http.MethodGet, base+"/fhir/Encounter?appointment="+f.appointment, f.clinician, "")
	if code != http.StatusOK {
		t.Fatalf("search Encounters: %d %s", code, body)
	}
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	return len(b.Entry)
}

// errCloseCode is a client's close code once it closed.
func errCloseCode(t *testing.T, c *visitclient.Client) int {
	t.Helper()
	select {
	case <-c.Closed():
		return c.CloseCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the websocket did not close", c.Participant)
		return 0
	}
}

// TestFaultSigtermDuringAVideoVisit stops vidda with SIGTERM while a
// video visit is live and devices flood it: vidda exits 0 within the
// shutdown bound, both participants' websockets close with "going away"
// (1001) after an error message telling them to join again, every
// reading a gateway saw acknowledged is stored, and the visit's Encounter
// stays in progress. After a restart the flood completes exactly and the
// participants join again: the same Encounter goes on.
func TestFaultSigtermDuringAVideoVisit(t *testing.T) {
	requireFaults(t)
	const perHome = 200 // 5,000 readings: the flood is not the point here
	v := newVisitFixture(t, "sigterm-visit")
	env := v.env(t, "sigterm", signaling.DefaultLease)
	homes := addHomes(t, map[string]string{"VIDDA_DATABASE_URL": v.dbURL, "VIDDA_LOG_LEVEL": "error"}, faultHomes)
	first := startVidda(t, env)
	base := "http://" + env["VIDDA_HTTP_ADDR"]
	v.book(t, base)
	clinician, patient := v.inVisit(t, base, base)

	f := newFleet(env["VIDDA_MQTT_LISTEN"], homes, perHome, faultWindow)
	started := time.Now()
	// The deadline detects a hang; a visit and two starts share it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*faultTimeout)
	defer cancel()
	flooded := f.start(ctx)
	f.waitStored(t, v.dbURL, f.total()/3, faultTimeout)
	before := [2]uint64{clinician.Received(), patient.Received()}

	stopGracefully(t, first)
	for _, c := range []*visitclient.Client{clinician, patient} {
		code := errCloseCode(t, c)
		t.Logf("%s: websocket closed with %d", c.Participant, code)
		if code != signaling.CloseGoingAway {
			t.Errorf("%s: closed with %d, want %d (going away: join again)", c.Participant, code, signaling.CloseGoingAway)
		}
	}
	t.Logf("media packets received in the visit before the stop: clinician %d, patient %d", before[0], before[1])
	acked := f.nAcked.Load()
	r := f.count(t, v.dbURL)
	t.Logf("at the exit %d of %d readings acknowledged, %d stored, %d acknowledged but not stored", acked, f.total(), r.distinct, r.missingAcked)
	if r.missingAcked > 0 {
		t.Errorf("%d readings were acknowledged to their gateway but not stored", r.missingAcked)
	}
	if n := v.openEncounters(t); n != 1 {
		t.Errorf("%d Encounters in progress after the stop, want the visit's one", n)
	}

	time.Sleep(500 * time.Millisecond) // the gateways find nobody listening
	startVidda(t, env)
	clinician, patient = v.inVisit(t, base, base)
	t.Logf("after the restart the visit goes on; media flows (%d and %d packets)", clinician.Received(), patient.Received())
	if n := v.encounters(t, base); n != 1 {
		t.Errorf("%d Encounters for the visit, want the one continued after the restart", n)
	}
	<-flooded
	if n := f.nAcked.Load(); int(n) != f.total() {
		t.Fatalf("%d of %d readings acknowledged", n, f.total())
	}
	report(t, f, v.dbURL, started)
}

// openEncounters counts the visit's Encounters in progress, in the
// database (vidda may be stopped).
func (f *visitFixture) openEncounters(t *testing.T) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM encounter WHERE NOT deleted AND content::jsonb->>'status' = 'in-progress'
		 AND content::jsonb->'appointment' @> jsonb_build_array(jsonb_build_object('reference', 'Appointment/' || $1::text))`,
		f.appointment).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
