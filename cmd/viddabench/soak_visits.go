package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vidda/vidda/signaling"
	"github.com/vidda/vidda/signaling/visitclient"
)

// The soak's video load: one visit after another, each started every
// --visit-every. A visit is what a clinic's day is made of: an Appointment
// booked between a soak patient and the soak clinician, the clinician
// joining over HTTP and the websocket, the patient joining and waiting,
// both negotiating real pion peers through vidda's SFU, the clinician
// admitting the patient, media both ways for --visit-media, the clinician
// ending the visit (an Encounter finished, the Appointment fulfilled).

// soakClinician is the Practitioner every soak visit is with.
const soakClinician = "soak-clinician"

// soakPatients is how many of the soak's patients take turns in visits.
const soakPatients = 4

// videoVisits returns the visit loop of a soak over the vidda that env
// (the database) and bin reach: it mints a clinician's and patients'
// tokens with `vidda token`.
func videoVisits(ctx context.Context, bin string, env []string, homes []home, every, hold time.Duration) (visitLoop, error) {
	clinician, err := runVidda(ctx, bin, env, "token", "--role", "clinician", "--practitioner", soakClinician, "--sub", soakClinician)
	if err != nil {
		return nil, fmt.Errorf("clinician token: %w", err)
	}
	type patient struct{ id, token string }
	var patients []patient
	for _, h := range homes[:min(soakPatients, len(homes))] {
		tok, err := runVidda(ctx, bin, env, "token", "--role", "patient", "--patient", h.patient)
		if err != nil {
			return nil, fmt.Errorf("patient token: %w", err)
		}
		patients = append(patients, patient{h.patient, strings.TrimSpace(tok)})
	}
	ct := strings.TrimSpace(clinician)
	return func(ctx context.Context, base, adminToken string) visitSummary {
		var s visitSummary
		hc := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}
		defer hc.CloseIdleConnections()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			p := patients[i%len(patients)]
			err := soakVisit(ctx, hc, base, adminToken, fmt.Sprintf("soak-visit-%d", i), p.id, p.token, ct, hold)
			switch {
			case ctx.Err() != nil:
				// The run ended mid-visit: neither done nor failed.
				return s
			case err != nil:
				s.Failed++
				if s.FirstError == "" {
					s.FirstError = err.Error()
				}
			default:
				s.Done++
			}
			select {
			case <-ctx.Done():
				return s
			case <-tick.C:
			}
		}
	}, nil
}

// soakVisit books appointment id and runs one visit through it.
func soakVisit(ctx context.Context, hc *http.Client, base, admin, id, patientID, patientToken, clinicianToken string, hold time.Duration) error {
	body := `{"resourceType":"Appointment","id":"` + id + `","status":"booked","participant":[` +
		`{"actor":{"reference":"Patient/` + patientID + `"},"status":"accepted"},` +
		`{"actor":{"reference":"Practitioner/` + soakClinician + `"},"status":"accepted"}]}`
	if err := putResource(ctx, hc, base+"/fhir/Appointment/"+id, admin, body); err != nil {
		return fmt.Errorf("book %s: %w", id, err)
	}
	vctx, cancel := context.WithTimeout(ctx, hold+60*time.Second) // detects a hang
	defer cancel()
	dial := func(token string) (*visitclient.Client, error) {
		g, err := visitclient.Join(vctx, hc, base, token, id)
		if err != nil {
			return nil, err
		}
		return visitclient.Dial(vctx, g)
	}
	clinician, err := dial(clinicianToken)
	if err != nil {
		return fmt.Errorf("clinician: %w", err)
	}
	defer clinician.Close()
	patient, err := dial(patientToken)
	if err != nil {
		return fmt.Errorf("patient: %w", err)
	}
	defer patient.Close()
	if err := visitclient.Admit(vctx, clinician, patient, nil); err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	select {
	case <-time.After(hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := clinician.Send(signaling.Message{Type: signaling.TypeEnd}); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	for _, c := range []*visitclient.Client{clinician, patient} {
		if _, err := c.Await(vctx, signaling.TypeEnded); err != nil {
			return fmt.Errorf("%s: %w", c.Participant, err)
		}
	}
	return nil
}

// putResource PUTs a FHIR resource.
func putResource(ctx context.Context, hc *http.Client, url, token, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return errors.New(resp.Status + ": " + string(bytes.TrimSpace(b)))
	}
	return nil
}
