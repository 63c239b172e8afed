package web

import (
	"cmp"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/errgroup"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// The worklist (GET /app): the open Tasks of the patients the signed-in
// practitioner may see (their care teams, as the store's care-team access
// decides), most urgent first (stat, asap, urgent, routine: the order of
// R4 request-priority, not the alphabet), then the longest waiting. Each
// row names the patient, the problem, the newest reading the Task is
// about with its interpretation, and how long the Task has waited.
//
// Three queries, whatever the length: the open Tasks, then at once their
// Patients (_id=...) and their readings (_id=...).

// worklistRow is one open Task as the worklist shows it.
type worklistRow struct {
	TaskID, PatientID, Patient string
	Priority                   string
	// Problem says what the Task is about, in the reader's language.
	Problem string
	// Value is the newest reading the Task is about ("152/95 mmHg"), Interp
	// its interpretation code and InterpText the code in words; empty when
	// the Task has none (a missed measurement).
	Value, Interp, InterpText string
	// ValueAt is when the reading was measured.
	ValueAt time.Time
	// Since is when the Task was opened.
	Since time.Time
	rank  int
	// The texts of the row, written once here rather than through
	// template method calls (reflection, per cell, per row).
	PriorityText, ValueAtISO, ValueAtText, SinceISO, SinceText, SinceAgo string
}

// worklistData fills templates/worklist.html.
type worklistData struct {
	page
	Rows []worklistRow
	// UpdatedAt is when the list was read.
	UpdatedAt time.Time
}

func (p *Pages) worklistPage(c *fiber.Ctx, sess *auth.Session) error {
	return p.serveWorklist(c, sess, "layout")
}

// worklistFragment is GET /app/worklist: the list alone, which the page's
// script fetches when the live stream says the worklist changed.
func (p *Pages) worklistFragment(c *fiber.Ctx, sess *auth.Session) error {
	return p.serveWorklist(c, sess, "worklist-list")
}

func (p *Pages) serveWorklist(c *fiber.Ctx, sess *auth.Session, tmpl string) error {
	d := worklistData{page: p.base(c, sess, "worklist.title")}
	d.Script = true
	rows, patients, err := p.worklist(c.UserContext(), sess.Principal, d.L)
	e := p.auditEvent(c, sess, audit.KindSearch, statusOf(err))
	e.ResourceType, e.Patients, e.Detail = "Task", patients, "dashboard worklist"
	p.recordAudit(c.UserContext(), e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	d.Rows, d.UpdatedAt = rows, p.now()
	return p.renderTemplate(c, fiber.StatusOK, "worklist", tmpl, d)
}

// worklist reads and orders the open Tasks pr may see; patients are the
// distinct patients listed, for the audit trail.
func (p *Pages) worklist(ctx context.Context, pr *auth.Principal, l *Localizer) ([]worklistRow, []string, error) {
	tasks, err := p.searchAll(ctx, pr, "Task", url.Values{"status": {openTaskStatuses()}})
	if err != nil {
		return nil, nil, err
	}
	decoded := make([]taskJSON, 0, len(tasks))
	var patientIDs, obsIDs []string
	for _, st := range tasks {
		t, ok := decodeTask(st.Content)
		if !ok || !care.TaskOpen(t.Status) {
			continue
		}
		pid := t.For.id("Patient")
		if pid == "" {
			pid = st.PatientID
		}
		t.For = &reference{Reference: "Patient/" + pid}
		decoded = append(decoded, t)
		patientIDs = append(patientIDs, pid)
		if ids := t.readings; len(ids) > 0 {
			obsIDs = append(obsIDs, ids[len(ids)-1])
		}
	}
	patientIDs = uniq(patientIDs)
	// The names and the readings are two independent queries: at once.
	var (
		names    map[string]string
		readings map[string]*shownReading
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		names, err = p.patientNames(gctx, pr, patientIDs)
		return err
	})
	g.Go(func() (err error) {
		readings, err = p.readingsByID(gctx, pr, uniq(obsIDs))
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	rows := make([]worklistRow, 0, len(decoded))
	for i := range decoded {
		t := &decoded[i]
		pid := t.For.id("Patient")
		row := worklistRow{
			TaskID: t.ID, PatientID: pid, Patient: cmp.Or(names[pid], pid), Priority: cmp.Or(t.Priority, care.PriorityRoutine.String()),
			rank: priorityRank(t.Priority),
		}
		row.Since, _ = p.fhirTime(t.AuthoredOn)
		var r *shownReading
		if ids := t.readings; len(ids) > 0 {
			r = readings[ids[len(ids)-1]]
		}
		row.Problem = p.problem(l, t, r)
		if r != nil {
			row.Value = formatValue(l, r.m, r.V) + " " + r.m.Shown
			row.Interp, row.ValueAt = r.Interp, r.At
			row.InterpText = interpText(l, r.Interp)
		}
		rows = append(rows, row)
	}
	for i := range rows {
		r := &rows[i]
		r.PriorityText = l.T("priority." + r.Priority)
		r.SinceISO, r.SinceText, r.SinceAgo = l.ISO(r.Since), l.DateTime(r.Since), l.Ago(r.Since)
		if !r.ValueAt.IsZero() {
			r.ValueAtISO, r.ValueAtText = l.ISO(r.ValueAt), l.DateTime(r.ValueAt)
		}
	}
	slices.SortStableFunc(rows, func(a, b worklistRow) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), a.Since.Compare(b.Since), cmp.Compare(a.TaskID, b.TaskID))
	})
	return rows, patientIDs, nil
}

// problem names what a Task is about: the measure out of range, or the
// measure that stopped coming; else the Task's own description.
func (p *Pages) problem(l *Localizer, t *taskJSON, r *shownReading) string {
	code := t.Code.code()
	m := (*measure)(nil)
	if r != nil {
		m = r.m
	} else if c := t.measureCode(); c != "" {
		m = p.measures.of(c)
	}
	switch {
	case code == care.TaskMissed && m != nil:
		return l.T("problem.missed", l.T("measure."+m.Key))
	case code == care.TaskMissed:
		return l.T("problem.missed.any")
	case m != nil:
		return l.T("measure." + m.Key)
	case t.Description != "":
		return t.Description
	}
	return l.T("problem.review")
}

// shownReading is a reading with its measure.
type shownReading struct {
	reading
	m *measure
}

// readingsByID reads Observations by id, as pr, in one search.
func (p *Pages) readingsByID(ctx context.Context, pr *auth.Principal, ids []string) (map[string]*shownReading, error) {
	out := make(map[string]*shownReading, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		found, err := p.searchAll(ctx, pr, "Observation", url.Values{"_id": {strings.Join(chunk, ",")}})
		if err != nil {
			return nil, err
		}
		for _, st := range found {
			if r, m, ok := p.decodeReading(st.Content); ok {
				out[st.ID] = &shownReading{reading: r, m: m}
			}
		}
	}
	return out, nil
}

// patientNames reads the names of patients, as pr, in one search.
func (p *Pages) patientNames(ctx context.Context, pr *auth.Principal, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		found, err := p.searchAll(ctx, pr, "Patient", url.Values{"_id": {strings.Join(chunk, ",")}})
		if err != nil {
			return nil, err
		}
		for _, st := range found {
			out[st.ID] = nameOf(st)
		}
	}
	return out, nil
}

func nameOf(st store.Stored) string {
	var pt patientJSON
	if err := json.Unmarshal(st.Content, &pt); err != nil {
		return st.ID
	}
	pt.ID = st.ID
	return pt.displayName()
}

// formatValue writes a reading's values: "72,5", "152/95".
func formatValue(l *Localizer, m *measure, v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = l.Num(x, m.Decimals)
	}
	return strings.Join(parts, "/")
}

// interpText says an interpretation code in words.
func interpText(l *Localizer, code string) string {
	switch code {
	case "N", "H", "L", "HH", "LL", "A":
		return l.T("interp." + code)
	case "":
		return ""
	}
	return code
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
