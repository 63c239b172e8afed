package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
)

// What a nurse does from the patient page, each a form POST with the
// session's CSRF token, each written through the FHIR store as the nurse
// (so versioned, confined to their care teams, and audited like the API's
// writes): acknowledge a Task, start a video visit, set a limit.

const maxNote = 2000

// acknowledge is POST /app/tasks/{id}/acknowledge (form: note, next): the
// Task is completed, owned by the practitioner, with the note.
func (p *Pages) acknowledge(c *fiber.Ctx, sess *auth.Session) error {
	ctx := c.UserContext()
	id := strings.Clone(c.Params("id"))
	note := strings.TrimSpace(strings.Clone(c.FormValue("note")))
	patientID, err := p.closeTask(ctx, sess, id, note)
	e := p.auditEvent(c, sess, audit.KindUpdate, statusOf(err))
	e.ResourceType, e.ResourceID, e.Detail = "Task", id, "dashboard acknowledge"
	if patientID != "" {
		e.Patients = []string{patientID}
	}
	p.recordAudit(ctx, e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	next := safeNext(c.FormValue("next"))
	if next == "" {
		next = "/app/patients/" + url.PathEscape(patientID) + "?saved=ack"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// closeTask completes an open Task as sess's practitioner and returns the
// Task's patient.
func (p *Pages) closeTask(ctx context.Context, sess *auth.Session, id, note string) (string, error) {
	if !fhir.ValidID(id) {
		return "", fhir.ErrNotFound
	}
	if len(note) > maxNote {
		return "", fmt.Errorf("%w: the note is longer than %d characters", errBadForm, maxNote)
	}
	a, err := p.access(sess.Principal, auth.InteractionUpdate, "Task")
	if err != nil {
		return "", err
	}
	st, err := p.deps.Store.Read(ctx, "Task", id, a)
	if err != nil {
		return "", fmt.Errorf("acknowledge: %w", err)
	}
	if sess.Principal.PractitionerID == "" {
		return st.PatientID, fmt.Errorf("acknowledge: only a practitioner owns an acknowledgement: %w", auth.ErrForbidden)
	}
	if p.deps.Acknowledge == nil {
		return st.PatientID, errors.New("acknowledge: the pages were given no worklist")
	}
	// care.Worklist.Acknowledge completes it (or answers ErrTaskClosed),
	// as the engine's own Tasks are completed.
	if err := p.deps.Acknowledge.Acknowledge(ctx, id, "Practitioner/"+sess.Principal.PractitionerID, note); err != nil {
		return st.PatientID, fmt.Errorf("acknowledge: %w", err)
	}
	return st.PatientID, nil
}

// write validates content as typ and creates it (id "") or updates it
// at version ifMatch; it returns the id.
func (p *Pages) write(ctx context.Context, typ, id string, ifMatch int64, content map[string]any, a store.Access) error {
	_, err := p.writeID(ctx, typ, id, ifMatch, content, a)
	return err
}

func (p *Pages) writeID(ctx context.Context, typ, id string, ifMatch int64, content map[string]any, a store.Access) (string, error) {
	content["resourceType"] = typ
	if id != "" {
		content["id"] = id
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", fmt.Errorf("%s: %w", typ, err)
	}
	res, err := p.deps.Types.Parse(typ, raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", typ, err)
	}
	if id == "" {
		st, err := p.deps.Store.Create(ctx, res, a)
		if err != nil {
			return "", fmt.Errorf("create %s: %w", typ, err)
		}
		return st.ID, nil
	}
	if _, _, err := p.deps.Store.Update(ctx, res, id, ifMatch, a); err != nil {
		return "", fmt.Errorf("update %s: %w", typ, err)
	}
	return id, nil
}

// visitLength is how long a visit started from the dashboard is booked.
const visitLength = 30 * time.Minute

// startVisit is POST /app/patients/{id}/visit: an Appointment booked for
// now with the patient and the practitioner, then on to its visit page.
func (p *Pages) startVisit(c *fiber.Ctx, sess *auth.Session) error {
	ctx := c.UserContext()
	pid := strings.Clone(c.Params("id"))
	apptID, err := p.bookVisit(ctx, sess, pid)
	e := p.auditEvent(c, sess, audit.KindCreate, statusOf(err))
	e.ResourceType, e.ResourceID, e.Patients, e.Detail = "Appointment", apptID, []string{pid}, "dashboard video visit"
	p.recordAudit(ctx, e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	return c.Redirect("/visit/"+url.PathEscape(apptID), fiber.StatusSeeOther)
}

func (p *Pages) bookVisit(ctx context.Context, sess *auth.Session, patientID string) (string, error) {
	if !fhir.ValidID(patientID) {
		return "", fhir.ErrNotFound
	}
	if _, err := p.readPatient(ctx, sess.Principal, patientID); err != nil {
		return "", err
	}
	a, err := p.access(sess.Principal, auth.InteractionCreate, "Appointment")
	if err != nil {
		return "", err
	}
	now := p.now().UTC().Truncate(time.Second)
	participants := []any{map[string]any{
		"actor": map[string]any{"reference": "Patient/" + patientID}, "required": "required", "status": "accepted",
	}}
	if id := sess.Principal.PractitionerID; id != "" {
		participants = append(participants, map[string]any{
			"actor": map[string]any{"reference": "Practitioner/" + id}, "required": "required", "status": "accepted",
		})
	}
	appt := map[string]any{
		"status":      "booked",
		"description": "Video visit",
		"serviceType": []any{map[string]any{"text": "Video visit"}},
		"start":       now.Format(time.RFC3339),
		"end":         now.Add(visitLength).Format(time.RFC3339),
		"created":     now.Format("2006-01-02"),
		"participant": participants,
	}
	return p.writeID(ctx, "Appointment", "", 0, appt, a)
}

// saveGoal is POST /app/patients/{id}/goals (form: code, low, high): the
// patient's active Goal for that LOINC code gets the range, or is created;
// with both ends empty the Goal is cancelled (the clinic's defaults apply
// again).
func (p *Pages) saveGoal(c *fiber.Ctx, sess *auth.Session) error {
	ctx := c.UserContext()
	pid := strings.Clone(c.Params("id"))
	goalID, created, err := p.putGoal(ctx, sess, pid, c.FormValue("code"), c.FormValue("low"), c.FormValue("high"))
	kind := audit.KindUpdate
	if created {
		kind = audit.KindCreate
	}
	e := p.auditEvent(c, sess, kind, statusOf(err))
	e.ResourceType, e.ResourceID, e.Patients, e.Detail = "Goal", goalID, []string{pid}, "dashboard limits"
	p.recordAudit(ctx, e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	return c.Redirect("/app/patients/"+url.PathEscape(pid)+"?saved=goal#limits", fiber.StatusSeeOther)
}

func (p *Pages) putGoal(ctx context.Context, sess *auth.Session, patientID, code, lowS, highS string) (id string, created bool, err error) {
	if !fhir.ValidID(patientID) {
		return "", false, fhir.ErrNotFound
	}
	var target *goalTarget
	for _, g := range p.measures.goalTargets() {
		if g.Code == code {
			target = &g
		}
	}
	if target == nil {
		return "", false, fmt.Errorf("%w: unknown measure %q", errBadForm, truncate(code, 20))
	}
	low, errL := parseLocaleNumber(lowS)
	high, errH := parseLocaleNumber(highS)
	if errL != nil || errH != nil || (low != nil && high != nil && *low > *high) {
		return "", false, fmt.Errorf("%w: limits must be numbers, low below high", errBadForm)
	}
	if _, err := p.readPatient(ctx, sess.Principal, patientID); err != nil {
		return "", false, err
	}
	existing, err := p.searchAll(ctx, sess.Principal, "Goal", url.Values{
		"patient": {patientID}, "lifecycle-status": {"active"}, "target-measure": {loincSystem + "|" + code},
		"_sort": {"-_lastUpdated"},
	})
	if err != nil {
		return "", false, err
	}
	write := auth.InteractionUpdate
	if len(existing) == 0 {
		write = auth.InteractionCreate
	}
	a, err := p.access(sess.Principal, write, "Goal")
	if err != nil {
		return "", false, err
	}
	goal := map[string]any{}
	var version int64
	if len(existing) > 0 {
		if err := json.Unmarshal(existing[0].Content, &goal); err != nil {
			return "", false, fmt.Errorf("goal: %w", err)
		}
		id, version = existing[0].ID, existing[0].VersionID
		delete(goal, "meta")
	}
	if low == nil && high == nil {
		if id == "" {
			return "", false, nil // nothing set, nothing to clear
		}
		goal["lifecycleStatus"] = "cancelled"
		return id, false, p.write(ctx, "Goal", id, version, goal, a)
	}
	rng := map[string]any{}
	q := func(v float64) map[string]any {
		return map[string]any{"value": v, "unit": target.M.Shown, "system": "http://unitsofmeasure.org", "code": target.M.Unit}
	}
	if low != nil {
		rng["low"] = q(*low)
	}
	if high != nil {
		rng["high"] = q(*high)
	}
	goal["lifecycleStatus"] = "active"
	goal["subject"] = map[string]any{"reference": "Patient/" + patientID}
	if _, ok := goal["description"]; !ok {
		goal["description"] = map[string]any{"text": "Home monitoring limits, LOINC " + code}
	}
	goal["target"] = []any{map[string]any{
		"measure":     map[string]any{"coding": []any{map[string]any{"system": loincSystem, "code": code}}},
		"detailRange": rng,
	}}
	if who := sess.Principal.PractitionerID; who != "" {
		goal["expressedBy"] = map[string]any{"reference": "Practitioner/" + who}
	}
	newID, err := p.writeID(ctx, "Goal", id, version, goal, a)
	return newID, id == "", err
}

// parseLocaleNumber reads a number as people type it here: "92", "37,5"
// or "37.5"; "" is nil.
func parseLocaleNumber(s string) (*float64, error) {
	s = strings.TrimSpace(strings.NewReplacer(",", ".", "−", "-", " ", "").Replace(s))
	if s == "" {
		return nil, nil //nolint:nilnil // an empty field is no limit, not an error
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 10000 {
		return nil, fmt.Errorf("%w: %q is not a number", errBadForm, truncate(s, 20))
	}
	return &v, nil
}
