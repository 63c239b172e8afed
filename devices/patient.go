package devices

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CheckPatient refuses a payload that names a Patient other than the one
// the publishing Device is bound to: patientID, known by identifiers. The
// caller calls it before storing anything, and refuses the whole payload
// on an error (a *RejectError with reason patient-mismatch and the Index
// of the offending entry), since a gateway that names the wrong patient
// may have mixed up more than one reading.
//
// A Patient entry matches when one of its identifiers (system and value)
// is one of identifiers, or when it is a PUT to Patient/patientID or to
// Patient?identifier=… naming one of identifiers; an
// entry without identifiers cannot be matched and is refused. An
// Observation's subject matches when it is absent, Patient/patientID (also
// as an absolute URL), the fullUrl of a matching Patient entry, a
// conditional Patient?identifier=… or a logical reference naming one of
// identifiers.
func (p *FHIRPayload) CheckPatient(patientID string, identifiers []Identifier) error {
	matches := func(id Identifier) bool { return id.Value != "" && slices.Contains(identifiers, id) }
	entries := make(map[string]bool, len(p.Patients))
	for _, e := range p.Patients {
		ok := e.Method == http.MethodPut && (e.URL == "Patient/"+patientID ||
			strings.HasPrefix(e.URL, "Patient?") && conditionalMatches(strings.TrimPrefix(e.URL, "Patient?"), matches))
		for _, id := range e.Identifiers {
			ok = ok || matches(id)
		}
		if !ok {
			return reject(ReasonPatientMismatch, e.Index, "", "the Bundle's Patient is not the one this device is bound to")
		}
		if e.FullURL != "" {
			entries[e.FullURL] = true
		}
	}
	for _, r := range p.Readings {
		if !subjectMatches(r.Subject, patientID, entries, matches) {
			return reject(ReasonPatientMismatch, r.Index, r.ID, "the Observation's subject is not the Patient this device is bound to")
		}
	}
	return nil
}

// subjectMatches reports whether an Observation's subject is the bound
// patient.
func subjectMatches(s Ref, patientID string, entries map[string]bool, matches func(Identifier) bool) bool {
	if s.Identifier != (Identifier{}) && !matches(s.Identifier) {
		return false
	}
	ref := s.Reference
	switch {
	case ref == "":
		return true
	case strings.HasPrefix(ref, "urn:"):
		return entries[ref]
	case strings.HasPrefix(ref, "Patient?"):
		return conditionalMatches(strings.TrimPrefix(ref, "Patient?"), matches)
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	return ref == "Patient/"+patientID || strings.HasSuffix(ref, "/Patient/"+patientID) && strings.Contains(ref, "://")
}

// conditionalMatches reports whether a search "identifier=system|value"
// names one of the bound patient's identifiers. Other searches cannot be
// checked and do not match.
func conditionalMatches(query string, matches func(Identifier) bool) bool {
	q, err := url.ParseQuery(query)
	if err != nil || len(q) != 1 || len(q["identifier"]) != 1 {
		return false
	}
	system, value, ok := strings.Cut(q["identifier"][0], "|")
	if !ok {
		return false // a value without system could name anyone's identifier
	}
	return matches(Identifier{System: system, Value: value})
}
