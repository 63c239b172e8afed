package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
)

// The Encounter of a video visit: class VR (virtual) from HL7 v3 ActCode,
// as R4 §8.1 (Encounter) and the v3 ActEncounterCode value set define it.
const (
	systemActCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	codeVirtual   = "VR"
)

// timeFormat is how instants are written into resources and messages.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func instant(t time.Time) string { return t.UTC().Format(timeFormat) }

type reference struct {
	Reference string `json:"reference"`
}

type encounterParticipant struct {
	Individual reference `json:"individual"`
}

// startEncounter records that the visit of appt began at: an Encounter
// in progress, class VR, for the appointment's patient with the
// practitioners present. It returns the Encounter's id.
func (v *Visits) startEncounter(ctx context.Context, appt *appointment, practitioners []string, at time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StoreTimeout)
	defer cancel()
	enc := map[string]any{
		"resourceType": "Encounter",
		"status":       "in-progress",
		"class":        map[string]string{"system": systemActCode, "code": codeVirtual, "display": "virtual"},
		"appointment":  []reference{{"Appointment/" + appt.id}},
		"period":       map[string]string{"start": instant(at)},
	}
	if appt.patient != "" {
		enc["subject"] = reference{appt.patient}
	}
	if ps := encounterParticipants(practitioners); len(ps) > 0 {
		enc["participant"] = ps
	}
	body, err := json.Marshal(enc)
	if err != nil {
		return "", fmt.Errorf("start encounter: %w", err)
	}
	res, err := v.types.Parse("Encounter", body)
	if err != nil {
		return "", fmt.Errorf("start encounter: %w", err)
	}
	st, err := v.store.Create(ctx, res, store.Access{})
	if err != nil {
		return "", fmt.Errorf("start encounter: %w", err)
	}
	return st.ID, nil
}

func encounterParticipants(refs []string) []encounterParticipant {
	refs = slices.Clone(refs)
	slices.Sort(refs)
	out := make([]encounterParticipant, 0, len(refs))
	for _, r := range slices.Compact(refs) {
		out = append(out, encounterParticipant{reference{r}})
	}
	return out
}

// openEncounter finds an Encounter of the appointment still in progress:
// one a previous run of this room started (the process restarted, or the
// room ended on another instance without finishing it). "" when none.
func (v *Visits) openEncounter(ctx context.Context, appointmentID string) (string, error) {
	if v.params == nil || v.search == nil {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StoreTimeout)
	defer cancel()
	q, err := v.params.Parse("Encounter", url.Values{
		"appointment": {"Appointment/" + appointmentID}, "status": {"in-progress"}, "class": {systemActCode + "|" + codeVirtual},
		"_count": {"1"},
	}, true)
	if err != nil {
		return "", fmt.Errorf("find open encounter: %w", err)
	}
	page, err := v.search.Search(ctx, q, store.Access{})
	if err != nil {
		return "", fmt.Errorf("find open encounter: %w", err)
	}
	if len(page.Entries) == 0 {
		return "", nil
	}
	return page.Entries[0].ID, nil
}

// finishEncounter sets Encounter/id finished at end, with every
// practitioner who took part, keeping whatever else it holds.
func (v *Visits) finishEncounter(ctx context.Context, id string, practitioners []string, end time.Time) error {
	return v.amend(ctx, "Encounter", id, func(doc map[string]json.RawMessage) error {
		var period map[string]string
		if raw, ok := doc["period"]; ok {
			if err := json.Unmarshal(raw, &period); err != nil {
				return fmt.Errorf("period: %w", err)
			}
		}
		if period == nil {
			period = map[string]string{}
		}
		period["end"] = instant(end)
		if period["start"] == "" || period["start"] > period["end"] {
			period["start"] = period["end"]
		}
		refs := slices.Clone(practitioners)
		if raw, ok := doc["participant"]; ok {
			var old []encounterParticipant
			if err := json.Unmarshal(raw, &old); err != nil {
				return fmt.Errorf("participant: %w", err)
			}
			for _, p := range old {
				refs = append(refs, p.Individual.Reference)
			}
		}
		if err := setMember(doc, "status", "finished"); err != nil {
			return err
		}
		if err := setMember(doc, "period", period); err != nil {
			return err
		}
		if len(refs) > 0 {
			return setMember(doc, "participant", encounterParticipants(refs))
		}
		return nil
	})
}

// fulfillAppointment sets Appointment/id fulfilled: the visit took place.
func (v *Visits) fulfillAppointment(ctx context.Context, id string) error {
	return v.amend(ctx, "Appointment", id, func(doc map[string]json.RawMessage) error {
		return setMember(doc, "status", "fulfilled")
	})
}

func setMember(doc map[string]json.RawMessage, name string, val any) error {
	b, err := json.Marshal(val)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	doc[name] = b
	return nil
}

// amend reads typ/id, lets change edit its top-level members and writes
// it back as the next version, guarded by If-Match; a concurrent write
// (an EHR editing the Appointment) makes it read and change again. The
// other members stay as they were stored, byte for byte, so nothing the
// store holds is lost through a round trip.
func (v *Visits) amend(ctx context.Context, typ, id string, change func(map[string]json.RawMessage) error) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StoreTimeout)
	defer cancel()
	const attempts = 3
	for i := 0; ; i++ {
		st, err := v.store.Read(ctx, typ, id, store.Access{})
		if err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(st.Content, &doc); err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		delete(doc, "meta") // the store sets it
		if err := change(doc); err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		body, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		res, err := v.types.Parse(typ, body)
		if err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		_, _, err = v.store.Update(ctx, res, id, st.VersionID, store.Access{})
		if errors.Is(err, fhir.ErrPreconditionFailed) && i+1 < attempts {
			continue
		}
		if err != nil {
			return fmt.Errorf("amend %s/%s: %w", typ, id, err)
		}
		return nil
	}
}
