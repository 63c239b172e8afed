package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
)

// A clinic of three patients: pa is managed by org-north, where nurse-org
// holds a role; pb has a care team with nurse-team; pc has neither.
// nurse-gone was on pc's team until it was made inactive.
func careClinic(t *testing.T) *fixture {
	t.Helper()
	f := newStore(t)
	f.put(t, "Organization", "org-north", `{"resourceType":"Organization","name":"North"}`)
	for _, pr := range []string{"nurse-org", "nurse-team", "nurse-gone"} {
		f.put(t, "Practitioner", pr, `{"resourceType":"Practitioner"}`)
	}
	f.put(t, "Patient", "pa", `{"resourceType":"Patient","managingOrganization":{"reference":"Organization/org-north"}}`)
	f.put(t, "Patient", "pb", `{"resourceType":"Patient"}`)
	f.put(t, "Patient", "pc", `{"resourceType":"Patient"}`)
	for _, p := range []string{"pa", "pb", "pc"} {
		f.put(t, "Device", "d-"+p, fmt.Sprintf(`{"resourceType":"Device","patient":{"reference":"Patient/%s"}}`, p))
		f.put(t, "Observation", "o-"+p, obsWithID("o-"+p, p, "2026-11-20T08:00:00Z"))
	}
	f.put(t, "PractitionerRole", "role-north", `{"resourceType":"PractitionerRole","active":true,
		"practitioner":{"reference":"Practitioner/nurse-org"},"organization":{"reference":"Organization/org-north"}}`)
	f.put(t, "CareTeam", "team-b", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/pb"},
		"participant":[{"member":{"reference":"Practitioner/nurse-team"}}]}`)
	f.put(t, "CareTeam", "team-c", `{"resourceType":"CareTeam","status":"inactive","subject":{"reference":"Patient/pc"},
		"participant":[{"member":{"reference":"Practitioner/nurse-gone"}}]}`)
	return f
}

// newObs is a reading of patient without an id, for a create.
func newObs(patient string) string {
	return strings.Replace(obsWithID("x", patient, "2026-11-21T08:00:00Z"), `"id":"x",`, "", 1)
}

func TestACareTeamBoundsWhatAPractitionerReaches(t *testing.T) {
	f := careClinic(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		careOf string
		reach  []string // patients whose Observation and Patient are reachable
	}{
		{"a role at the managing organization reaches its patients", "Practitioner/nurse-org", []string{"pa"}},
		{"a care team member reaches the team's patient", "Practitioner/nurse-team", []string{"pb"}},
		{"an inactive care team reaches nobody", "Practitioner/nurse-gone", nil},
		{"a practitioner in no team reaches nobody", "Practitioner/nobody", nil},
		{"no care restriction reaches everyone", "", []string{"pa", "pb", "pc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := store.Access{CareOf: tc.careOf}
			got := f.search(t, "Observation", "_sort=_id", a)
			var want []string
			for _, p := range tc.reach {
				want = append(want, "o-"+p)
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("search found %v, want %v", ids(got), want)
			}
			for _, p := range []string{"pa", "pb", "pc"} {
				_, err := f.st.Read(ctx, "Observation", "o-"+p, a)
				if reach := slices.Contains(tc.reach, p); reach != (err == nil) {
					t.Errorf("read o-%s: %v (reachable: %v)", p, err, reach)
				} else if !reach && !errors.Is(err, fhir.ErrNotFound) {
					t.Errorf("read o-%s: %v, want not found", p, err)
				}
				_, err = f.st.Read(ctx, "Patient", p, a)
				if reach := slices.Contains(tc.reach, p); reach != (err == nil) {
					t.Errorf("read Patient/%s: %v (reachable: %v)", p, err, reach)
				}
			}
			if _, err := f.st.Read(ctx, "Practitioner", "nurse-gone", a); err != nil {
				t.Errorf("types outside the compartment stay readable: %v", err)
			}
		})
	}
}

func TestACareTeamBoundsWritesIncludesHistoryAndLastN(t *testing.T) {
	f := careClinic(t)
	ctx := context.Background()
	a := store.Access{CareOf: "Practitioner/nurse-team"}
	t.Run("a reading for a patient outside the team is refused", func(t *testing.T) {
		_, err := f.st.Create(ctx, f.parse(t, "Observation", newObs("pc")), a)
		if !errors.Is(err, store.ErrOutsideCompartment) {
			t.Errorf("create for pc: %v, want ErrOutsideCompartment", err)
		}
		if _, err := f.st.Create(ctx, f.parse(t, "Observation", newObs("pb")), a); err != nil {
			t.Errorf("create for pb: %v", err)
		}
	})
	t.Run("another patient's reading can be neither updated nor deleted", func(t *testing.T) {
		_, _, err := f.st.Update(ctx, f.parse(t, "Observation", obsWithID("o-pa", "pa", "2026-11-20T09:00:00Z")), "o-pa", 0, a)
		if !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("update o-pa: %v, want not found", err)
		}
		if _, err := f.st.Delete(ctx, "Observation", "o-pa", a); !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("delete o-pa: %v, want not found", err)
		}
		_, _, err = f.st.Update(ctx, f.parse(t, "Observation", obsWithID("o-pb", "pa", "2026-11-20T09:00:00Z")), "o-pb", 0, a)
		if !errors.Is(err, store.ErrOutsideCompartment) {
			t.Errorf("moving o-pb to pa: %v, want ErrOutsideCompartment", err)
		}
	})
	t.Run("a member cannot add themself to another patient's team", func(t *testing.T) {
		_, err := f.st.Create(ctx, f.parse(t, "CareTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/pc"},
			"participant":[{"member":{"reference":"Practitioner/nurse-team"}}]}`), a)
		if !errors.Is(err, store.ErrOutsideCompartment) {
			t.Errorf("care team for pc: %v, want ErrOutsideCompartment", err)
		}
	})
	t.Run("includes, history and $lastn stay inside the team", func(t *testing.T) {
		got := f.search(t, "Device", "_revinclude=Observation:device&_sort=_id", a)
		if !slices.Equal(ids(got), []string{"d-pb"}) {
			t.Errorf("devices %v", ids(got))
		}
		for _, e := range got.Included {
			if e.ID != "o-pb" && e.Type == "Observation" {
				// the reading created above is pb's too
				st, err := f.st.Read(ctx, "Observation", e.ID, a)
				if err != nil {
					t.Errorf("included %s/%s outside the team: %v (%v)", e.Type, e.ID, err, st)
				}
			}
		}
		got = f.search(t, "Practitioner", "_id=nurse-team&_revinclude=CareTeam:participant", a)
		if len(got.Included) != 1 || got.Included[0].ID != "team-b" {
			t.Errorf("revinclude of care teams: %v", got.Included)
		}
		h, err := f.st.History(ctx, "Observation", "", store.HistoryOptions{}, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Entries {
			if e.ID == "o-pa" || e.ID == "o-pc" {
				t.Errorf("history shows %s", e.ID)
			}
		}
		q, err := f.params.Parse("Observation", nil, true)
		if err != nil {
			t.Fatal(err)
		}
		last, err := f.st.LastN(ctx, q, 5, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range last {
			if e.ID == "o-pa" || e.ID == "o-pc" {
				t.Errorf("$lastn shows %s", e.ID)
			}
		}
		if len(last) == 0 {
			t.Error("$lastn found nothing of pb")
		}
	})
}
