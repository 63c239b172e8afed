package visitclient

import (
	"context"
	"fmt"
	"slices"

	"github.com/vidda/vidda/signaling"
)

// Admit plays the start of a visit between two dialled clients, the
// clinician having joined before the patient (as at a clinic: the
// clinician is then told the patient waits). It waits until the
// clinician's waiting room lists the patient and both media peers
// connected, has the clinician admit the patient, and returns once the
// patient is admitted and media from the others reaches each of them,
// or at the first error: a server error message, a failed negotiation,
// a closed websocket, the end of ctx.
//
// The admission waits for both peers to connect because it makes the
// server offer the others' tracks, and an offer crossing a client's own
// would be lost (see AwaitConnected).
//
// waiting, unless nil, is called with the clinician's waiting message
// that lists the patient, once both peers connected and before the
// admission: a test checks the waiting room there (nobody's media
// reaches a waiting patient). An error from it ends Admit.
func Admit(ctx context.Context, clinician, patient *Client, waiting func(signaling.Message) error) error {
	var w signaling.Message
	for {
		m, err := clinician.Await(ctx, signaling.TypeWaiting)
		if err != nil {
			return fmt.Errorf("%s: %w", clinician.Participant, err)
		}
		if slices.ContainsFunc(m.Waiting, func(p signaling.ParticipantInfo) bool { return p.ID == patient.Participant }) {
			w = m
			break
		}
	}
	for _, c := range []*Client{clinician, patient} {
		if err := c.AwaitConnected(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Participant, err)
		}
	}
	if waiting != nil {
		if err := waiting(w); err != nil {
			return err
		}
	}
	if err := clinician.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: patient.Participant}); err != nil {
		return fmt.Errorf("%s admits %s: %w", clinician.Participant, patient.Participant, err)
	}
	if _, err := patient.Await(ctx, signaling.TypeAdmitted); err != nil {
		return fmt.Errorf("%s: %w", patient.Participant, err)
	}
	for _, c := range []*Client{clinician, patient} {
		if err := c.AwaitMedia(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Participant, err)
		}
	}
	return nil
}
