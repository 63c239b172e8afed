package web

import (
	"cmp"
	"context"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// The patient page (GET /app/patients/{id}?days=7|30|90): the newest value
// of each measure, a trend chart per measure over the chosen days with the
// patient's limits as a band, the open Tasks with an acknowledge form, a
// button that starts a video visit, and a form per measure to set the
// patient's limits (their Goal for that LOINC code).

// chartRanges are the periods a nurse may chart, in days.
func chartRanges() []int { return []int{7, 30, 90} }

// patientData fills templates/patient.html.
type patientData struct {
	page
	PatientID, Name, BirthDate string
	Days                       int
	Ranges                     []int
	Latest                     []latestView
	Charts                     []chartView
	Tasks                      []taskView
	Goals                      []goalView
	// Notice is a message after a form was saved (?saved=...).
	Notice string
}

// latestView is the newest reading of one measure.
type latestView struct {
	Measure, Value, Interp, InterpText string
	At                                 time.Time
}

// chartView is one measure's chart.
type chartView struct {
	Measure string
	Legend  []string
	SVG     template.HTML
	Limits  string
	Count   int
}

// taskView is one open Task on the patient page.
type taskView struct {
	ID, Problem, Priority, Value, Interp, InterpText string
	Since                                            time.Time
}

// goalView is the limit form of one measure (or panel part): the
// patient's own limits, or the clinic's default as the placeholder.
type goalView struct {
	Code, Label, Unit, Low, High, DefLow, DefHigh string
}

func (p *Pages) patientPage(c *fiber.Ctx, sess *auth.Session) error {
	id := strings.Clone(c.Params("id"))
	d := patientData{page: p.base(c, sess, "patient.title"), PatientID: id, Days: 30, Ranges: chartRanges()}
	if n, err := strconv.Atoi(c.Query("days")); err == nil && slices.Contains(d.Ranges, n) {
		d.Days = n
	}
	switch c.Query("saved") {
	case "ack":
		d.Notice = d.L.T("patient.saved.ack")
	case "goal":
		d.Notice = d.L.T("patient.saved.goal")
	}
	err := p.loadPatient(c.UserContext(), sess.Principal, &d)
	e := p.auditEvent(c, sess, audit.KindRead, statusOf(err))
	e.ResourceType, e.ResourceID, e.Patients, e.Detail = "Patient", id, []string{id}, "dashboard patient page"
	p.recordAudit(c.UserContext(), e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	d.Title = d.Name + " · " + d.Title
	return p.render(c, fiber.StatusOK, "patient", d)
}

// loadPatient fills d with what pr may see of the patient.
func (p *Pages) loadPatient(ctx context.Context, pr *auth.Principal, d *patientData) error {
	if !fhir.ValidID(d.PatientID) {
		return fhir.ErrNotFound
	}
	pt, err := p.readPatient(ctx, pr, d.PatientID)
	if err != nil {
		return err
	}
	d.Name, d.BirthDate = pt.displayName(), pt.BirthDate
	l := d.L
	lims, err := p.patientLimits(ctx, pr, d.PatientID)
	if err != nil {
		return err
	}
	latest, err := p.latestReadings(ctx, pr, d.PatientID)
	if err != nil {
		return err
	}
	for i := range p.measures.list {
		m := &p.measures.list[i]
		if r, ok := latest[m.Key]; ok {
			d.Latest = append(d.Latest, latestView{
				Measure: l.T("measure." + m.Key), Value: formatValue(l, m, r.V) + " " + m.Shown,
				Interp: r.Interp, InterpText: interpText(l, r.Interp), At: r.At,
			})
		}
	}
	to := p.now()
	from := to.Add(-time.Duration(d.Days) * 24 * time.Hour)
	series, err := p.readingsSince(ctx, pr, d.PatientID, from)
	if err != nil {
		return err
	}
	for i := range p.measures.list {
		m := &p.measures.list[i]
		rs := series[m.Key]
		if len(rs) == 0 {
			if _, ok := latest[m.Key]; !ok {
				continue // a measure this patient does not take
			}
		}
		lim := lims.of(m)
		cv := chartView{Measure: l.T("measure." + m.Key), Count: len(rs)}
		var limText []string
		for j, pt := range m.Parts {
			cv.Legend = append(cv.Legend, l.T("measure."+pt.Key))
			if lim[j].set() {
				limText = append(limText, l.T("measure."+pt.Key)+": "+limitText(l, m, lim[j]))
			}
		}
		if len(m.Parts) == 0 && lim[0].set() {
			limText = append(limText, limitText(l, m, lim[0]))
		}
		cv.Limits = strings.Join(limText, "; ")
		cv.SVG = drawChart(l, chartSpec{
			ID: "chart-" + m.Key, Title: l.T("chart.title", cv.Measure, d.Days),
			Desc: l.T("chart.desc", len(rs), cmp.Or(cv.Limits, l.T("limit.none"))),
			M:    m, Readings: rs, Limits: lim, From: from, To: to,
		})
		d.Charts = append(d.Charts, cv)
	}
	tasks, err := p.searchAll(ctx, pr, "Task", url.Values{"patient": {d.PatientID}, "status": {openTaskStatuses()}})
	if err != nil {
		return err
	}
	if d.Tasks, err = p.taskViews(ctx, pr, l, tasks); err != nil {
		return err
	}
	for _, g := range p.measures.goalTargets() {
		gv := goalView{Code: g.Code, Label: l.T("measure." + g.Key), Unit: g.M.Shown}
		lim := lims[g.Code]
		// The fields hold the patient's own Goal; an end it leaves open
		// shows the clinic's default, which still applies there.
		num := func(v *float64) string {
			if v == nil {
				return ""
			}
			return l.Num(*v, g.M.Decimals)
		}
		if lim.Goal != nil {
			gv.Low, gv.High = num(lim.Goal.Low), num(lim.Goal.High)
		}
		dlo, dhi := lim.Defaults.Normal()
		if dlo.Set {
			gv.DefLow = num(&dlo.Value)
		}
		if dhi.Set {
			gv.DefHigh = num(&dhi.Value)
		}
		d.Goals = append(d.Goals, gv)
	}
	return nil
}

// taskViews shows open Tasks, most urgent first, with the reading each is
// about.
func (p *Pages) taskViews(ctx context.Context, pr *auth.Principal, l *Localizer, tasks []store.Stored) ([]taskView, error) {
	decoded := make([]taskJSON, 0, len(tasks))
	var obsIDs []string
	for _, st := range tasks {
		t, ok := decodeTask(st.Content)
		if !ok || !care.TaskOpen(t.Status) {
			continue
		}
		decoded = append(decoded, t)
		if ids := t.readings; len(ids) > 0 {
			obsIDs = append(obsIDs, ids[len(ids)-1])
		}
	}
	readings, err := p.readingsByID(ctx, pr, uniq(obsIDs))
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(decoded, func(a, b taskJSON) int {
		return cmp.Or(cmp.Compare(priorityRank(a.Priority), priorityRank(b.Priority)), strings.Compare(a.AuthoredOn, b.AuthoredOn))
	})
	out := make([]taskView, 0, len(decoded))
	for i := range decoded {
		t := &decoded[i]
		var r *shownReading
		if ids := t.readings; len(ids) > 0 {
			r = readings[ids[len(ids)-1]]
		}
		v := taskView{ID: t.ID, Problem: p.problem(l, t, r), Priority: cmp.Or(t.Priority, care.PriorityRoutine.String())}
		v.Since, _ = p.fhirTime(t.AuthoredOn)
		if r != nil {
			v.Value = formatValue(l, r.m, r.V) + " " + r.m.Shown
			v.Interp, v.InterpText = r.Interp, interpText(l, r.Interp)
		}
		out = append(out, v)
	}
	return out, nil
}

// latestReadings is the newest reading of each measure, by measure key
// (Observation/$lastn: one index probe per code).
func (p *Pages) latestReadings(ctx context.Context, pr *auth.Principal, patientID string) (map[string]reading, error) {
	a, err := p.access(pr, auth.InteractionSearch, "Observation")
	if err != nil {
		return nil, err
	}
	q, err := p.deps.Params.Parse("Observation", url.Values{"patient": {patientID}}, true)
	if err != nil {
		return nil, err
	}
	found, err := p.deps.Store.LastN(ctx, q, 1, a)
	if err != nil {
		return nil, err
	}
	out := map[string]reading{}
	for _, st := range found {
		r, m, ok := p.decodeReading(st.Content)
		if !ok {
			continue
		}
		if old, seen := out[m.Key]; !seen || r.At.After(old.At) {
			out[m.Key] = r
		}
	}
	return out, nil
}

// readingsSince are the patient's readings measured since from, oldest
// first, by measure key.
func (p *Pages) readingsSince(ctx context.Context, pr *auth.Principal, patientID string, from time.Time) (map[string][]reading, error) {
	found, err := p.searchAll(ctx, pr, "Observation", url.Values{
		"patient": {patientID}, "date": {"ge" + from.UTC().Format(time.RFC3339)}, "_sort": {"date"},
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]reading{}
	for _, st := range found {
		if r, m, ok := p.decodeReading(st.Content); ok {
			out[m.Key] = append(out[m.Key], r)
		}
	}
	for _, rs := range out {
		slices.SortStableFunc(rs, func(a, b reading) int { return a.At.Compare(b.At) })
	}
	return out, nil
}
