package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/visitclient"
)

// answer is what a visit call got.
type answer struct {
	status   int
	location string
	body     []byte
}

// visitCall is a practitioner's call on a visit's HTTP routes: bearer
// token, JSON body; client follows redirects or not.
func visitCall(t *testing.T, client *http.Client, method, url, token, body string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), b}
}

// TestAVisitsRoutesOnAnInstanceThatDoesNotOwnItRedirectToTheOwner runs
// two instances on one database. The visit is held by B (both
// participants joined there); the clinician's calls (state, admit,
// remove, end) all go to A, which redirects each to the same route on B,
// where they act on the room.
func TestAVisitsRoutesOnAnInstanceThatDoesNotOwnItRedirectToTheOwner(t *testing.T) {
	f := newVisitFixture(t, "routed-visit")
	envA, envB := f.env(t, "route-a", time.Minute), f.env(t, "route-b", time.Minute)
	startVidda(t, envA)
	startVidda(t, envB)
	baseA, baseB := "http://"+envA["VIDDA_HTTP_ADDR"], "http://"+envB["VIDDA_HTTP_ADDR"]
	f.book(t, baseA)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Both join through B, which claims the visit; the patient waits.
	clinician, err := visitclient.Dial(ctx, f.grant(t, baseB, f.clinician))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clinician.Close)
	patient, err := visitclient.Dial(ctx, f.grant(t, baseB, f.patient))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(patient.Close)
	if _, err := clinician.Await(ctx, signaling.TypeWaiting); err != nil {
		t.Fatal(err)
	}

	route := "/video/visits/" + f.appointment
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, route, ""},
		{http.MethodPost, route + "/admit", `{"participant":"Patient/demo-patient-1"}`},
		{http.MethodPost, route + "/remove", `{"participant":"Patient/demo-patient-1"}`},
		{http.MethodPost, route + "/end", ""},
	} {
		a := visitCall(t, noFollow, c.method, baseA+c.path, f.clinician, c.body)
		if a.status != http.StatusTemporaryRedirect || a.location != baseB+c.path {
			t.Errorf("%s %s on A: %d Location %q, want 307 to %s: %s", c.method, c.path, a.status, a.location, baseB+c.path, a.body)
		}
	}
	// The patient's token is refused on A itself: no owner is named to
	// someone who may not call.
	if a := visitCall(t, noFollow, http.MethodGet, baseA+route, f.patient, ""); a.status != http.StatusForbidden {
		t.Errorf("the patient's GET of the visit state on A: %d, want 403", a.status)
	}

	// Followed, as a browser or Go's client does, each acts on B's room.
	a := visitCall(t, http.DefaultClient, http.MethodGet, baseA+route, f.clinician, "")
	var st signaling.VisitState
	if a.status != http.StatusOK || json.Unmarshal(a.body, &st) != nil {
		t.Fatalf("GET %s through A: %d %s", route, a.status, a.body)
	}
	if len(st.Waiting) != 1 || st.Waiting[0].ID != "Patient/demo-patient-1" || len(st.Participants) != 1 {
		t.Fatalf("the state through A shows %+v, want the clinician in the room and the patient waiting", st)
	}
	if a := visitCall(t, http.DefaultClient, http.MethodPost, baseA+route+"/admit", f.clinician, `{"participant":"Patient/demo-patient-1"}`); a.status != http.StatusNoContent {
		t.Fatalf("admit through A: %d %s", a.status, a.body)
	}
	if _, err := patient.Await(ctx, signaling.TypeAdmitted); err != nil {
		t.Fatalf("the patient was not admitted: %v", err)
	}
	if a := visitCall(t, http.DefaultClient, http.MethodPost, baseA+route+"/remove", f.clinician, `{"participant":"Patient/demo-patient-1"}`); a.status != http.StatusNoContent {
		t.Fatalf("remove through A: %d %s", a.status, a.body)
	}
	if _, err := patient.Await(ctx, signaling.TypeRemoved); err != nil {
		t.Fatalf("the patient was not removed: %v", err)
	}
	if a := visitCall(t, http.DefaultClient, http.MethodPost, baseA+route+"/end", f.clinician, ""); a.status != http.StatusNoContent {
		t.Fatalf("end through A: %d %s", a.status, a.body)
	}
	if _, err := clinician.Await(ctx, signaling.TypeEnded); err != nil {
		t.Fatalf("the clinician's room did not end: %v", err)
	}
	code, body := send(t, http.MethodGet, baseA+"/fhir/Encounter?appointment="+f.appointment, f.clinician, "")
	if code != http.StatusOK || !strings.Contains(string(body), `"status":"finished"`) {
		t.Errorf("the visit's Encounter after the end: %d %s", code, body)
	}
}
