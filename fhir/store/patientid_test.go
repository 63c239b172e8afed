package store_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/vidda/vidda/fhir/store"
)

// TestEveryReadSaysWhosePatientDataItReturned: the audit trail records the
// patients of what the store returns, so every way of reading fills
// Stored.PatientID.
func TestEveryReadSaysWhosePatientDataItReturned(t *testing.T) {
	f := newStore(t)
	ctx := context.Background()
	pat := f.create(t, "Patient", `{"resourceType":"Patient","name":[{"family":"Berg"}]}`)
	obs := f.create(t, "Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/`+pat.ID+`"},"effectiveDateTime":"2026-11-20T08:00:00Z","valueQuantity":{"value":70,"unit":"kg"}}`)
	prac := f.create(t, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Holm"}]}`)
	check := func(what string, got []store.Stored, want string) {
		t.Helper()
		if len(got) == 0 {
			t.Fatalf("%s: nothing returned", what)
		}
		for _, st := range got {
			if st.PatientID != want {
				t.Errorf("%s: %s/%s has PatientID %q, want %q", what, st.Type, st.ID, st.PatientID, want)
			}
		}
	}
	check("create", []store.Stored{*obs}, pat.ID)
	check("create of a Patient", []store.Stored{*pat}, pat.ID)
	check("create outside the compartment", []store.Stored{*prac}, "")
	read, err := f.st.Read(ctx, "Observation", obs.ID, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	check("read", []store.Stored{*read}, pat.ID)
	vread, err := f.st.VRead(ctx, "Observation", obs.ID, 1, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	check("vread", []store.Stored{*vread}, pat.ID)
	hist, err := f.st.History(ctx, "Observation", obs.ID, store.HistoryOptions{}, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	check("history", hist.Entries, pat.ID)
	page := f.search(t, "Observation", "patient="+pat.ID+"&_include=Observation:subject", store.Access{})
	check("search", page.Entries, pat.ID)
	check("_include", page.Included, pat.ID)
	q, err := f.params.Parse("Observation", url.Values{"patient": {pat.ID}}, true)
	if err != nil {
		t.Fatal(err)
	}
	last, err := f.st.LastN(ctx, q, 1, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	check("$lastn", last, pat.ID)
	res, err := f.st.Transaction(ctx, []store.Entry{{Op: store.OpRead, Type: "Observation", ID: obs.ID, Method: "GET", URL: "Observation/" + obs.ID}})
	if err != nil {
		t.Fatal(err)
	}
	check("read in a transaction", []store.Stored{*res[0].Stored}, pat.ID)
	del, err := f.st.Delete(ctx, "Observation", obs.ID, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	check("delete", []store.Stored{*del}, pat.ID)
}
