package store

import (
	"context"
	"fmt"
)

// Care-team access: a nurse or clinician reaches the compartments of the
// patients they care for, as the view care_access lists them (migration
// 00005: members of a patient's CareTeam, and practitioners with a role at
// the Organization managing the patient's record). Types outside the
// patient compartment are not restricted by it.

// careSQL is the condition that keeps a row of a compartment type inside
// the compartments a.CareOf reaches.
func careSQL(w *where, a Access) string {
	return "patient_id IN (SELECT patient_id FROM care_access WHERE practitioner = " + w.arg(a.CareOf) + ")"
}

// confineCare adds the care-team condition to w when a carries one and typ
// is in the patient compartment.
func (s *Store) confineCare(w *where, typ string, a Access) {
	if a.CareOf != "" && s.inPatientCompartment(typ) {
		w.add(careSQL(w, a))
	}
}

func (s *Store) inPatientCompartment(typ string) bool {
	def := s.params.Definition(typ)
	return def != nil && def.InPatientCompartment()
}

// cares reports whether a may reach a resource of typ in patientID's
// compartment (nil: in none), as far as the care team decides.
func (s *Store) cares(ctx context.Context, db querier, typ string, a Access, patientID *string) (bool, error) {
	if a.CareOf == "" || !s.inPatientCompartment(typ) {
		return true, nil
	}
	if patientID == nil {
		return false, nil
	}
	var ok bool
	err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM care_access WHERE practitioner = $1 AND patient_id = $2)", a.CareOf, *patientID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("care team of %s: %w", a.CareOf, translate(err))
	}
	return ok, nil
}

// mayWrite refuses a row that a may not write: outside its patient
// compartment or outside its care team's.
func (s *Store) mayWrite(ctx context.Context, db querier, typ string, r *row, a Access) error {
	if !r.inCompartment(a) {
		return ErrOutsideCompartment
	}
	ok, err := s.cares(ctx, db, typ, a, r.patientID)
	if err != nil {
		return err
	}
	if !ok {
		return ErrOutsideCompartment
	}
	return nil
}

// mayReach reports whether a may see a stored row of typ in patientID's
// compartment; a row it may not see is answered as not found.
func (s *Store) mayReach(ctx context.Context, db querier, typ string, a Access, patientID *string) (bool, error) {
	if a.PatientID != "" && (patientID == nil || *patientID != a.PatientID) {
		return false, nil
	}
	return s.cares(ctx, db, typ, a, patientID)
}
