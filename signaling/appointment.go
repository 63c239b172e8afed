package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// The kinds of participant.
const (
	KindPractitioner = "practitioner"
	KindPatient      = "patient"
	KindOther        = "other"
)

// appointment is what a visit needs of an Appointment.
type appointment struct {
	id      string
	version int64
	status  string
	// patient is the first Patient participant ("Patient/x"), "" for none.
	patient string
	// members are the participants' references with their kind; a
	// PractitionerRole counts as its Practitioner.
	members map[string]string
}

// joinable reports whether a visit may happen in an Appointment of this
// status: booked, arrived or checked-in (R4 appointmentstatus), not
// proposed, pending, waitlist, cancelled, noshow, fulfilled or
// entered-in-error.
func joinable(status string) bool {
	switch status {
	case "booked", "arrived", "checked-in":
		return true
	}
	return false
}

// kindOf is the participant kind of a reference's type.
func kindOf(ref string) string {
	switch {
	case strings.HasPrefix(ref, "Practitioner/"):
		return KindPractitioner
	case strings.HasPrefix(ref, "Patient/"):
		return KindPatient
	}
	return KindOther
}

// loadAppointment reads Appointment/id and its participants. A
// PractitionerRole participant is resolved to its Practitioner with one
// read; one that cannot be read is left out.
func (v *Visits) loadAppointment(ctx context.Context, id string) (*appointment, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StoreTimeout)
	defer cancel()
	st, err := v.store.Read(ctx, "Appointment", id, store.Access{})
	switch {
	case errors.Is(err, fhir.ErrNotFound), errors.Is(err, fhir.ErrDeleted), errors.Is(err, fhir.ErrUnsupportedType):
		return nil, fmt.Errorf("appointment %s: %w", id, ErrAppointmentNotFound)
	case err != nil:
		return nil, fmt.Errorf("read appointment %s: %w", id, err)
	}
	var body struct {
		Status      string `json:"status"`
		Participant []struct {
			Actor *struct {
				Reference string `json:"reference"`
			} `json:"actor"`
			Status string `json:"status"`
		} `json:"participant"`
	}
	if err := json.Unmarshal(st.Content, &body); err != nil {
		return nil, fmt.Errorf("decode appointment %s: %w", id, err)
	}
	a := &appointment{id: id, version: st.VersionID, status: body.Status, members: map[string]string{}}
	for _, p := range body.Participant {
		if p.Actor == nil || p.Status == "declined" || !ValidReference(p.Actor.Reference) {
			continue
		}
		ref := p.Actor.Reference
		if strings.HasPrefix(ref, "PractitionerRole/") {
			if ref = v.practitionerOf(ctx, ref); ref == "" {
				continue
			}
		}
		a.members[ref] = kindOf(ref)
		if a.patient == "" && a.members[ref] == KindPatient {
			a.patient = ref
		}
	}
	return a, nil
}

// practitionerOf is the Practitioner a PractitionerRole names, "" when
// it names none or cannot be read.
func (v *Visits) practitionerOf(ctx context.Context, roleRef string) string {
	st, err := v.store.Read(ctx, "PractitionerRole", strings.TrimPrefix(roleRef, "PractitionerRole/"), store.Access{})
	if err != nil {
		return ""
	}
	var role struct {
		Practitioner *struct {
			Reference string `json:"reference"`
		} `json:"practitioner"`
	}
	if json.Unmarshal(st.Content, &role) != nil || role.Practitioner == nil {
		return ""
	}
	if ref := role.Practitioner.Reference; strings.HasPrefix(ref, "Practitioner/") && ValidReference(ref) {
		return ref
	}
	return ""
}

// referenceOf is the FHIR reference a principal joins visits as: its
// patient for the patient role, its Practitioner for staff; "" for none
// (a system client, an admin who acts as no Practitioner).
func referenceOf(p *auth.Principal) string {
	switch {
	case p == nil:
		return ""
	case p.Role == auth.RolePatient && p.PatientID != "":
		return "Patient/" + p.PatientID
	case p.PractitionerID != "" && (p.Role == auth.RoleClinician || p.Role == auth.RoleNurse || p.Role == auth.RoleAdmin):
		return "Practitioner/" + p.PractitionerID
	}
	return ""
}

// member returns the participant reference and kind p joins appointment
// a as, or ErrNotParticipant.
func (a *appointment) member(p *auth.Principal) (ref, kind string, err error) {
	ref = referenceOf(p)
	kind, ok := a.members[ref]
	if ref == "" || !ok {
		return "", "", fmt.Errorf("appointment %s: %w", a.id, ErrNotParticipant)
	}
	return ref, kind, nil
}

// practitioners are the appointment's Practitioner references, sorted.
func (a *appointment) practitioners() []string {
	var out []string
	for ref, kind := range a.members {
		if kind == KindPractitioner {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}
