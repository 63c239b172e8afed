package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
)

// The video visit page (GET /visit/{appointmentId}), issue 7 item 6: the
// same page for the patient and for the practitioners of the Appointment.
// It is a shell; static/visit.js does the visit: the camera and
// microphone check, POST /video/visits/{id}/join for a join token, the
// websocket of the signaling protocol (signaling/doc.go), the
// RTCPeerConnection with the SFU, and for practitioners the waiting room.
// The page hands the script what it needs in data- attributes and one
// JSON script element (type application/json: data, never executed, so
// the CSP without inline scripts holds): the appointment, the user's
// part in it, the session's CSRF token (in the layout's meta tag), the
// names of the people in the visit and every text in the user's language.

// visitData fills templates/visit.html.
type visitData struct {
	page
	Appointment string
	// Role is "patient" or "practitioner": the user's part in the visit.
	Role string
	// Config is the JSON the script reads: texts, names, where to go back.
	Config template.JS
}

// visitConfig is what visit.js reads from the page's JSON element.
type visitConfig struct {
	Appointment string            `json:"appointment"`
	Role        string            `json:"role"`
	Self        string            `json:"self"`
	Back        string            `json:"back"`
	Names       map[string]string `json:"names"`
	Texts       map[string]string `json:"texts"`
}

// signedIn guards a page anyone signed in may open: without a session the
// browser is sent to sign in and back.
func (p *Pages) signedIn(h sessionHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sess := p.session(c)
		if sess == nil {
			return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
		}
		return p.withTimeout(c, sess, h)
	}
}

// visitPage is GET /visit/{appointmentId}: for the Appointment's patient
// and its practitioners; anyone else gets the page of a 404 (an
// Appointment they cannot read) or a 403 (one they can read but are not
// part of).
func (p *Pages) visitPage(c *fiber.Ctx, sess *auth.Session) error {
	ctx := c.UserContext()
	id := strings.Clone(c.Params("appointmentId"))
	d := visitData{page: p.base(c, sess, "visit.title"), Appointment: id}
	cfg, patientID, err := p.loadVisit(ctx, sess, id, d.L)
	e := p.auditEvent(c, sess, audit.KindRead, statusOf(err))
	e.ResourceType, e.ResourceID, e.Detail = "Appointment", id, "video visit page"
	if patientID != "" {
		e.Patients = []string{patientID}
	}
	p.recordAudit(ctx, e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	d.Role = cfg.Role
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("web: visit config: %w", err)
	}
	// html/template escapes a template.JS value for a <script> element's
	// body; json.Marshal already escapes <, > and & as \u003c etc.
	d.Config = template.JS(raw) //nolint:gosec // JSON from json.Marshal, in a non-executed application/json element
	return p.render(c, fiber.StatusOK, "visit", d)
}

// visitAppointmentJSON is what the visit page reads of an Appointment.
type visitAppointmentJSON struct {
	Status      string `json:"status"`
	Participant []struct {
		Actor  *reference `json:"actor"`
		Status string     `json:"status"`
	} `json:"participant"`
}

// loadVisit reads the Appointment as the user and works out their part in
// it: the patient participant, or a Practitioner participant (directly or
// through a PractitionerRole) they act as. It returns the script's
// configuration and the Appointment's patient id.
func (p *Pages) loadVisit(ctx context.Context, sess *auth.Session, id string, l *Localizer) (*visitConfig, string, error) {
	if !fhir.ValidID(id) {
		return nil, "", fhir.ErrNotFound
	}
	pr := sess.Principal
	a, err := p.access(pr, auth.InteractionRead, "Appointment")
	if err != nil {
		return nil, "", err
	}
	st, err := p.deps.Store.Read(ctx, "Appointment", id, a)
	if err != nil {
		return nil, "", fmt.Errorf("read appointment: %w", err)
	}
	var appt visitAppointmentJSON
	if err := json.Unmarshal(st.Content, &appt); err != nil {
		return nil, "", fmt.Errorf("read appointment %s: %w", id, err)
	}
	self := ""
	switch {
	case pr.Role == auth.RolePatient && pr.PatientID != "":
		self = "Patient/" + pr.PatientID
	case pr.PractitionerID != "":
		self = "Practitioner/" + pr.PractitionerID
	}
	cfg := &visitConfig{Appointment: id, Self: self, Back: "/app", Names: map[string]string{}, Texts: visitTexts(l)}
	patientID, member := "", false
	for _, part := range appt.Participant {
		if part.Actor == nil || part.Status == "declined" {
			continue
		}
		ref := part.Actor.Reference
		if rid := part.Actor.id("PractitionerRole"); rid != "" {
			ref = p.practitionerOfRole(ctx, pr, rid)
		}
		if pid := part.Actor.id("Patient"); pid != "" && patientID == "" {
			patientID = pid
		}
		if ref != "" && ref == self {
			member = true
		}
	}
	if !member {
		return nil, patientID, fmt.Errorf("appointment %s: not a participant: %w", id, auth.ErrForbidden)
	}
	cfg.Role = "practitioner"
	if pr.Role == auth.RolePatient {
		cfg.Role, cfg.Back = "patient", "/me"
	}
	if patientID != "" {
		if pt, err := p.readPatient(ctx, pr, patientID); err == nil {
			cfg.Names["Patient/"+patientID] = pt.displayName()
		}
	}
	return cfg, patientID, nil
}

// practitionerOfRole is the Practitioner reference of PractitionerRole/id
// as pr may read it, "" when it cannot be read or names none.
func (p *Pages) practitionerOfRole(ctx context.Context, pr *auth.Principal, id string) string {
	a, err := p.access(pr, auth.InteractionRead, "PractitionerRole")
	if err != nil {
		return ""
	}
	st, err := p.deps.Store.Read(ctx, "PractitionerRole", id, a)
	if err != nil {
		return ""
	}
	var role struct {
		Practitioner *reference `json:"practitioner"`
	}
	if json.Unmarshal(st.Content, &role) != nil {
		return ""
	}
	if pid := role.Practitioner.id("Practitioner"); pid != "" {
		return "Practitioner/" + pid
	}
	return ""
}

// visitTexts are the script's texts in the user's language, keyed by
// what visit.js calls them.
func visitTexts(l *Localizer) map[string]string {
	return map[string]string{
		"checking":          l.T("visit.check.checking"),
		"checkOK":           l.T("visit.check.ok"),
		"hearYou":           l.T("visit.check.hear"),
		"noMic":             l.T("visit.check.nomic"),
		"noCamera":          l.T("visit.check.nocamera"),
		"blocked":           l.T("visit.check.blocked"),
		"joining":           l.T("visit.joining"),
		"waiting":           l.T("visit.waiting"),
		"inVisit":           l.T("visit.in"),
		"reconnecting":      l.T("visit.reconnecting"),
		"reconnected":       l.T("visit.reconnected"),
		"lost":              l.T("visit.lost"),
		"left":              l.T("visit.left"),
		"ended":             l.T("visit.ended"),
		"removed":           l.T("visit.removed"),
		"failed":            l.T("visit.failed"),
		"mute":              l.T("visit.mute"),
		"unmute":            l.T("visit.unmute"),
		"cameraOff":         l.T("visit.camera.off"),
		"cameraOn":          l.T("visit.camera.on"),
		"audioOnlyOn":       l.T("visit.audioonly.on"),
		"audioOnlyOff":      l.T("visit.audioonly.off"),
		"weak":              l.T("visit.weak"),
		"videoBack":         l.T("visit.videoback"),
		"quality.good":      l.T("visit.quality.good"),
		"quality.fair":      l.T("visit.quality.fair"),
		"quality.poor":      l.T("visit.quality.poor"),
		"quality.lost":      l.T("visit.quality.lost"),
		"kind.patient":      l.T("visit.kind.patient"),
		"kind.practitioner": l.T("visit.kind.practitioner"),
		"kind.other":        l.T("visit.kind.other"),
		"you":               l.T("visit.you"),
		"muted":             l.T("visit.muted"),
		"videoPaused":       l.T("visit.videopaused"),
		"admit":             l.T("visit.admit"),
		"remove":            l.T("visit.remove"),
		"nobodyWaiting":     l.T("visit.nobodywaiting"),
		"joinedVisit":       l.T("visit.joinedvisit"),
		"leftVisit":         l.T("visit.leftvisit"),
	}
}
