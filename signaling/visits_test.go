package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

func TestOnlyTheAppointmentsParticipantsGetAJoinToken(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.appointment(t, "a1", "booked", "p1", "c1")
	f.appointment(t, "a2", "booked", "p2", "c2")
	f.appointment(t, "cancelled", "cancelled", "p1", "c1")
	f.appointment(t, "done", "fulfilled", "p1", "c1")
	f.put(t, "PractitionerRole", "r3", `{"resourceType":"PractitionerRole","id":"r3","practitioner":{"reference":"Practitioner/c3"}}`)
	f.put(t, "Practitioner", "c3", `{"resourceType":"Practitioner","id":"c3"}`)
	f.appointment(t, "a3", "arrived", "p1", "role:r3")

	admin := Actor{Principal: &auth.Principal{Subject: "admin", Role: auth.RoleAdmin}}
	system := Actor{Principal: &auth.Principal{Subject: "ehr", Role: auth.RoleSystem}}
	tests := []struct {
		name string
		who  Actor
		appt string
		want error
		ref  string
	}{
		{"the patient of the appointment gets one", patientActor("p1"), "a1", nil, "Patient/p1"},
		{"its practitioner gets one", clinicianActor("c1"), "a1", nil, "Practitioner/c1"},
		{"a practitioner named through a PractitionerRole gets one", clinicianActor("c3"), "a3", nil, "Practitioner/c3"},
		{"the patient of another appointment is refused", patientActor("p2"), "a1", ErrNotParticipant, ""},
		{"another appointment's practitioner is refused", clinicianActor("c2"), "a1", ErrNotParticipant, ""},
		{"an admin acting as no practitioner is refused", admin, "a1", ErrNotParticipant, ""},
		{"a system client is refused", system, "a1", ErrNotParticipant, ""},
		{"an unknown appointment is not found", patientActor("p1"), "nope", ErrAppointmentNotFound, ""},
		{"a cancelled appointment is not joinable", patientActor("p1"), "cancelled", ErrNotJoinable, ""},
		{"a fulfilled appointment is not joinable", clinicianActor("c1"), "done", ErrNotJoinable, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := f.v.Issue(ctx, tc.who, tc.appt)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Issue: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if g.Participant != tc.ref || !strings.HasPrefix(g.Token, tokenPrefix) || len(g.ICEServers) != 1 {
				t.Fatalf("grant %+v", g)
			}
			if ttl := time.Until(g.ExpiresAt); ttl <= 0 || ttl > f.v.cfg.TokenTTL {
				t.Fatalf("token expires in %s", ttl)
			}
		})
	}
}

func TestAVisitFromWaitingRoomToEncounter(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.appointment(t, "a1", "booked", "p1", "c1")
	ctok := mustIssue(t, f, clinicianActor("c1"), "a1")
	ptok := mustIssue(t, f, patientActor("p1"), "a1")

	clin, joined := f.join(t, ctok, false)
	if joined.Self.State != "admitted" || joined.Visit.Status != "open" || len(joined.ICEServers) != 1 {
		t.Fatalf("clinician joined %+v", joined)
	}
	pat, joined := f.join(t, ptok, false)
	if joined.Self.State != "waiting" || len(joined.Participants) != 0 {
		t.Fatalf("patient joined %+v: a waiting patient sees nobody", joined)
	}
	pat.expect(TypeWaiting)
	w := clin.expect(TypeWaiting)
	if len(w.Waiting) != 1 || w.Waiting[0].ID != "Patient/p1" {
		t.Fatalf("clinician sees waiting %+v", w.Waiting)
	}
	peer := f.media.peersOf("Patient/p1")[0]
	if admitted, _, _ := peer.state(); admitted {
		t.Fatal("a waiting patient's peer is admitted")
	}

	// Negotiation works while waiting; chat does not.
	pat.send(Message{Type: TypeOffer, Description: &Description{Type: "offer", SDP: "v=0 offer"}})
	if a := pat.expect(TypeAnswer); a.Description.SDP != "v=0 fake answer" {
		t.Fatalf("answer %+v", a.Description)
	}
	pat.send(Message{Type: TypeChat, Text: "hello?"})
	if e := pat.expect(TypeError); e.Code != "not-admitted" {
		t.Fatalf("chat while waiting: %+v", e)
	}
	st, err := f.v.State(ctx, clinicianActor("c1"), "a1")
	if err != nil || st.Status != "open" || len(st.Waiting) != 1 || len(st.Participants) != 1 {
		t.Fatalf("state %+v %v", st, err)
	}
	if _, err := f.v.State(ctx, patientActor("p1"), "a1"); !errors.Is(err, ErrNotPractitioner) {
		t.Fatalf("patient reads the waiting room: %v", err)
	}

	clin.send(Message{Type: TypeAdmit, Participant: "Patient/p1"})
	adm := pat.expect(TypeAdmitted)
	if adm.Self.State != "admitted" || len(adm.Participants) != 2 {
		t.Fatalf("admitted %+v", adm)
	}
	if m := clin.expect(TypeAdmitted); m.Participant != "Patient/p1" {
		t.Fatalf("clinician told %+v", m)
	}
	clin.sync() // the Encounter is written before the admit's turn ends
	if admitted, _, _ := peer.state(); !admitted {
		t.Fatal("an admitted patient's peer is not admitted")
	}
	st, err = f.v.State(ctx, clinicianActor("c1"), "a1")
	if err != nil || st.Status != "in-progress" || st.Encounter == "" {
		t.Fatalf("state after admit %+v %v", st, err)
	}
	enc := f.read(t, "Encounter", st.Encounter)
	class, _ := enc["class"].(map[string]any)
	if enc["status"] != "in-progress" || class["code"] != "VR" || class["system"] != systemActCode ||
		ref(enc["subject"]) != "Patient/p1" || !strings.Contains(mustJSON(t, enc["appointment"]), "Appointment/a1") ||
		!strings.Contains(mustJSON(t, enc["participant"]), "Practitioner/c1") || enc["period"].(map[string]any)["start"] == nil {
		t.Fatalf("encounter %s", mustJSON(t, enc))
	}

	// Chat and mute reach the admitted; quality from the media layer too.
	pat.send(Message{Type: TypeChat, Text: "Can you hear me?"})
	if c := clin.expect(TypeChat); c.Text != "Can you hear me?" || c.Participant != "Patient/p1" {
		t.Fatalf("chat %+v", c)
	}
	if c := pat.expect(TypeChat); c.Participant != "Patient/p1" {
		t.Fatalf("own chat echo %+v", c)
	}
	yes := true
	pat.send(Message{Type: TypeMute, Audio: &yes})
	if m := clin.expect(TypeMute); m.Participant != "Patient/p1" || m.Audio == nil || !*m.Audio {
		t.Fatalf("mute %+v", m)
	}
	peer.send(MediaEvent{Kind: EventAudioOnly, AudioOnly: true, Reason: "bandwidth"})
	if m := clin.expect(TypeAudioOnly); m.Participant != "Patient/p1" || !*m.On || m.Reason != "bandwidth" {
		t.Fatalf("audio-only %+v", m)
	}
	pat.expect(TypeAudioOnly)

	clin.send(Message{Type: TypeEnd})
	for _, c := range []*client{clin, pat} {
		c.expectUntil(TypeEnded, "")
		c.closedWith(CloseNormal)
	}
	// "ended" goes out first (clients must hear it even when the database
	// is slow or down); the Encounter and the Appointment follow.
	waitFor(t, "the Appointment fulfilled", func() bool { return f.read(t, "Appointment", "a1")["status"] == "fulfilled" })
	enc = f.read(t, "Encounter", st.Encounter)
	period := enc["period"].(map[string]any)
	if enc["status"] != "finished" || period["end"] == nil || period["start"] == nil {
		t.Fatalf("finished encounter %s", mustJSON(t, enc))
	}
	appt := f.read(t, "Appointment", "a1")
	if appt["status"] != "fulfilled" || appt["start"] != "2026-11-23T10:00:00Z" {
		t.Fatalf("appointment %s", mustJSON(t, appt))
	}
	if _, closed, _ := peer.state(); !closed {
		t.Fatal("the patient's peer is still open after the end")
	}
	if _, err := f.v.Issue(ctx, patientActor("p1"), "a1"); !errors.Is(err, ErrNotJoinable) {
		t.Fatalf("join token after the end: %v", err)
	}
	late, _ := f.connectAndJoin(t, ptok)
	if e := late.expect(TypeError); e.Code != "not-joinable" {
		t.Fatalf("joining an ended visit: %+v", e)
	}
	late.closedWith(CloseConflict)

	f.waitAudit(t, "a1", "join", "admit", "leave")
}

func TestARoomWithoutAdmissionLeavesNoEncounter(t *testing.T) {
	f := newFixture(t, nil)
	f.appointment(t, "a1", "booked", "p1", "c1")
	clin, _ := f.join(t, mustIssue(t, f, clinicianActor("c1"), "a1"), false)
	clin.send(Message{Type: TypeEnd})
	clin.expectUntil(TypeEnded, "")
	clin.closedWith(CloseNormal)
	if appt := f.read(t, "Appointment", "a1"); appt["status"] != "booked" {
		t.Fatalf("appointment %v after a visit nobody was admitted to", appt["status"])
	}
}

func TestARejoinWithinTheGracePeriodSkipsTheWaitingRoom(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Grace = time.Hour })
	clin, pat, ptok := f.admittedVisit(t)

	// The connections belong to the whole test, not to one step.
	outer := t
	t.Run("with resume, the same peer restarts ICE", func(t *testing.T) {
		pat.drop()
		if m := clin.expectUntil(TypeLeft, "disconnected"); m.Participant != "Patient/p1" {
			t.Fatalf("left %+v", m)
		}
		again, joined := f.join(outer, ptok, true)
		if joined.Self.State != "admitted" {
			t.Fatalf("rejoined as %s", joined.Self.State)
		}
		if o := again.expect(TypeOffer); o.Description.SDP != "v=0 fake restart" {
			t.Fatalf("restart offer %+v", o.Description)
		}
		peers := f.media.peersOf("Patient/p1")
		if _, _, restarts := peers[0].state(); len(peers) != 1 || restarts != 1 {
			t.Fatalf("%d peers, %d restarts", len(peers), restarts)
		}
		if m := clin.expectUntil(TypeAdmitted, "rejoined"); m.Participant != "Patient/p1" {
			t.Fatalf("clinician told %+v", m)
		}
		pat = again
	})
	t.Run("without resume, a new peer is admitted at once", func(t *testing.T) {
		pat.drop()
		clin.expectUntil(TypeLeft, "disconnected")
		again, joined := f.join(outer, ptok, false)
		if joined.Self.State != "admitted" {
			t.Fatalf("rejoined as %s", joined.Self.State)
		}
		pat = again
		peers := f.media.peersOf("Patient/p1")
		if len(peers) != 2 {
			t.Fatalf("%d peers", len(peers))
		}
		_, oldClosed, _ := peers[0].state()
		newAdmitted, newClosed, _ := peers[1].state()
		if !oldClosed || newClosed || !newAdmitted {
			t.Fatalf("old peer closed %v, new peer admitted %v closed %v", oldClosed, newAdmitted, newClosed)
		}
	})
	t.Run("a second connection replaces the first", func(t *testing.T) {
		first := pat
		second, joined := f.join(outer, ptok, false)
		if joined.Self.State != "admitted" {
			t.Fatalf("joined as %s", joined.Self.State)
		}
		for {
			m := first.next()
			if m == nil {
				t.Fatal("the first connection closed without saying why")
			}
			if m.Type == TypeError && m.Code == "replaced" {
				break
			}
		}
		first.closedWith(CloseReplaced)
		second.sync()
	})
}

func TestAfterTheGracePeriodTheWaitingRoomAgain(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Grace = 50 * time.Millisecond })
	clin, pat, ptok := f.admittedVisit(t)
	pat.drop()
	clin.expectUntil(TypeLeft, "disconnected")
	clin.expectUntil(TypeLeft, "timeout")
	// The peer closes outside the room lock, just after "left" goes out.
	waitFor(t, "the peer to close after the grace period", func() bool {
		_, closed, _ := f.media.peersOf("Patient/p1")[0].state()
		return closed
	})
	_, joined := f.join(t, ptok, false)
	if joined.Self.State != "waiting" {
		t.Fatalf("after the grace period joined as %s", joined.Self.State)
	}
}

func TestAnEmptyRoomEndsTheVisitAfterTheGracePeriod(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Grace = 50 * time.Millisecond })
	clin, pat, _ := f.admittedVisit(t)
	pat.send(Message{Type: TypeLeave})
	pat.closedWith(CloseNormal)
	clin.expectUntil(TypeLeft, "left")
	clin.drop()
	waitFor(t, "the appointment to be fulfilled", func() bool {
		return f.read(t, "Appointment", "a1")["status"] == "fulfilled"
	})
	enc := findEncounter(t, f, "a1")
	if enc["status"] != "finished" {
		t.Fatalf("encounter %s", mustJSON(t, enc))
	}
}

func TestARemovedParticipantNeedsANewTokenAndWaitsAgain(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.appointment(t, "a1", "booked", "p1", "c1")
	ptok := mustIssue(t, f, patientActor("p1"), "a1")
	clin, _ := f.join(t, mustIssue(t, f, clinicianActor("c1"), "a1"), false)
	pat, _ := f.join(t, ptok, false)
	if err := f.v.Admit(ctx, clinicianActor("c1"), "a1", "Patient/p1"); err != nil {
		t.Fatal(err)
	}
	pat.expectUntil(TypeAdmitted, "")
	if err := f.v.Remove(ctx, patientActor("p1"), "a1", "Patient/p1"); !errors.Is(err, ErrNotPractitioner) {
		t.Fatalf("a patient removes: %v", err)
	}
	if err := f.v.Remove(ctx, clinicianActor("c1"), "a1", "Patient/p1"); err != nil {
		t.Fatal(err)
	}
	pat.expectUntil(TypeRemoved, "")
	pat.closedWith(CloseRemoved)
	clin.expectUntil(TypeLeft, "removed")

	again, _ := f.connectAndJoin(t, ptok)
	if e := again.expect(TypeError); e.Code != "forbidden" {
		t.Fatalf("rejoin with the old token: %+v", e)
	}
	again.closedWith(CloseForbidden)
	// Tokens carry whole seconds: one issued in the removal's second
	// counts as issued before it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	_, joined := f.join(t, mustIssue(t, f, patientActor("p1"), "a1"), false)
	if joined.Self.State != "waiting" {
		t.Fatalf("with a new token joined as %s", joined.Self.State)
	}
	if err := f.v.Remove(ctx, clinicianActor("c1"), "a1", "Patient/nobody"); !errors.Is(err, ErrNoSuchParticipant) {
		t.Fatalf("remove nobody: %v", err)
	}
}

func TestJoinTokensAreCheckedOnTheWebsocket(t *testing.T) {
	f := newFixture(t, nil)
	f.appointment(t, "a1", "booked", "p1", "c1")
	good := mustIssue(t, f, patientActor("p1"), "a1")
	expired, _, err := f.v.tokens.issue(joinClaims{Appointment: "a1", Participant: "Patient/p1", Kind: KindPatient, Subject: "x"},
		time.Now().Add(-f.v.cfg.TokenTTL-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newTokens(nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, _ := other.issue(joinClaims{Appointment: "a1", Participant: "Patient/p1", Kind: KindPatient}, time.Now())
	tests := []struct{ name, token string }{
		{"an expired token", expired},
		{"a token signed with another key", forged},
		{"a token with a changed payload", strings.Replace(good, good[4:10], "AAAAAA", 1)},
		{"an access token", "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			c, _ := f.connectAndJoin(t, tc.token)
			if e := c.expect(TypeError); e.Code != "token" || strings.Contains(e.Error, tc.token) {
				t.Fatalf("error %+v", e)
			}
			c.closedWith(CloseInvalidToken)
		})
	}
	t.Run("a message before the join is refused", func(t *testing.T) {
		c := f.connect(t)
		c.send(Message{Type: TypeChat, Text: "hi"})
		if e := c.expect(TypeError); e.Code != "not-joined" {
			t.Fatalf("error %+v", e)
		}
	})
}

func TestTheConnectionIsPoliced(t *testing.T) {
	t.Run("a client that sends too fast is disconnected", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.RatePerSecond, c.RateBurst = 0.001, 3 })
		c := f.connect(t)
		for range 20 {
			select {
			case c.conn.in <- []byte(`{"v":1,"type":"ping"}`):
			case <-c.conn.closed:
			}
		}
		c.expectUntil(TypeError, "")
		c.closedWith(ClosePolicy)
	})
	t.Run("a client that does not join is disconnected", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.JoinTimeout = 10 * time.Millisecond })
		c := f.connect(t)
		if e := c.expect(TypeError); e.Code != "timeout" {
			t.Fatalf("error %+v", e)
		}
		c.closedWith(CloseTimeout)
	})
	t.Run("a silent client is disconnected after three pings", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.PingInterval = 10 * time.Millisecond })
		f.appointment(t, "a1", "booked", "p1", "c1")
		c, _ := f.join(t, mustIssue(t, f, clinicianActor("c1"), "a1"), false)
		c.expectUntil(TypeError, "")
		c.closedWith(CloseTimeout)
	})
	t.Run("a message over the size limit closes the connection", func(t *testing.T) {
		f := newFixture(t, nil)
		c := f.connect(t)
		c.raw([]byte(`{"v":1,"type":"chat","text":"` + strings.Repeat("x", 70<<10) + `"}`))
		if e := c.expect(TypeError); e.Code != "too-large" {
			t.Fatalf("error %+v", e)
		}
		c.closedWith(CloseTooBig)
	})
}

func TestAnOpenEncounterIsContinuedAfterARestart(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.appointment(t, "a1", "booked", "p1", "c1")
	f.put(t, "Encounter", "e1", `{"resourceType":"Encounter","id":"e1","status":"in-progress",`+
		`"class":{"system":"`+systemActCode+`","code":"VR"},"subject":{"reference":"Patient/p1"},`+
		`"appointment":[{"reference":"Appointment/a1"}],"period":{"start":"2026-11-23T10:00:00Z"}}`)
	clin, joined := f.join(t, mustIssue(t, f, clinicianActor("c1"), "a1"), false)
	if joined.Visit.Status != "in-progress" || joined.Visit.Encounter != "e1" {
		t.Fatalf("visit %+v", joined.Visit)
	}
	if err := f.v.End(ctx, clinicianActor("c1"), "a1"); err != nil {
		t.Fatal(err)
	}
	clin.expectUntil(TypeEnded, "")
	enc := f.read(t, "Encounter", "e1")
	if enc["status"] != "finished" || !strings.Contains(mustJSON(t, enc["participant"]), "Practitioner/c1") {
		t.Fatalf("encounter %s", mustJSON(t, enc))
	}
	if f.read(t, "Appointment", "a1")["status"] != "fulfilled" {
		t.Fatal("appointment not fulfilled")
	}
}

func mustIssue(tb testing.TB, f *fixture, who Actor, appt string) string {
	tb.Helper()
	g, err := f.v.Issue(context.Background(), who, appt)
	if err != nil {
		tb.Fatalf("issue: %v", err)
	}
	return g.Token
}

// connectAndJoin sends a join whose answer the test reads itself.
func (f *fixture) connectAndJoin(t *testing.T, tok string) (*client, error) {
	t.Helper()
	c := f.connect(t)
	c.send(Message{Type: TypeJoin, Token: tok})
	return c, nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ref(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

func findEncounter(t *testing.T, f *fixture, appt string) map[string]any {
	t.Helper()
	q, err := f.v.params.Parse("Encounter", url.Values{"appointment": {"Appointment/" + appt}}, true)
	if err != nil {
		t.Fatal(err)
	}
	page, err := f.st.Search(context.Background(), q, store.Access{})
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("encounters of %s: %v %v", appt, page, err)
	}
	return f.read(t, "Encounter", page.Entries[0].ID)
}

// waitFor polls cond until it holds; the deadline only detects a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAudit waits until the audit trail holds a video event of each
// subtype about the appointment, and checks that none holds a token.
func (f *fixture) waitAudit(t *testing.T, appt string, subtypes ...string) {
	t.Helper()
	for _, sub := range subtypes {
		waitFor(t, "a "+sub+" audit event", func() bool {
			q, err := f.v.params.Parse("AuditEvent", url.Values{
				"entity": {"Appointment/" + appt}, "subtype": {"urn:vidda:audit-event|" + sub},
			}, true)
			if err != nil {
				t.Fatal(err)
			}
			page, err := f.st.Search(context.Background(), q, store.Access{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Entries {
				if strings.Contains(string(e.Content), tokenPrefix) || strings.Contains(string(e.Content), "turn-secret") {
					t.Fatalf("an audit event holds a secret: %s", e.Content)
				}
			}
			return len(page.Entries) > 0
		})
	}
}
