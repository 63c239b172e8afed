package web

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// The patient's own page (GET /me): their newest readings and the week in
// plain words, whether the nurse has looked at what was out of range,
// their upcoming video visits with a join button, and what to do when a
// device stops sending, with a warning for each measure that is overdue.
// Everything is read as the patient, confined to their own compartment by
// the same policy as the API.

// meData fills templates/me.html.
type meData struct {
	page
	Name     string
	Measures []meMeasure
	Visits   []meVisit
	Overdue  []string
}

// meMeasure is one measure on /me.
type meMeasure struct {
	Name, Value, Unit string
	At                time.Time
	// Status says the newest value against the limits, in words; Out is
	// true when it is outside.
	Status string
	Out    bool
	// Week is the week's summary sentence; "" without readings this week.
	Week string
	// Review says whether the nurse has seen an out-of-range reading.
	Review string
}

// meVisit is one upcoming video visit.
type meVisit struct {
	ID    string
	Start time.Time
	Today bool
}

// overdueFallback is how old the newest reading of a measure may get
// before /me says it has not come, when no CarePlan says how often it
// should (with one, the care engine's Rules.MissedAfter of its interval).
const overdueFallback = 48 * time.Hour

func (p *Pages) mePage(c *fiber.Ctx, sess *auth.Session) error {
	d := meData{page: p.base(c, sess, "me.title")}
	pid := sess.Principal.PatientID
	err := p.loadMe(c.UserContext(), sess.Principal, pid, &d)
	e := p.auditEvent(c, sess, audit.KindRead, statusOf(err))
	e.ResourceType, e.ResourceID, e.Patients, e.Detail = "Patient", pid, []string{pid}, "patient's own page"
	p.recordAudit(c.UserContext(), e)
	if err != nil {
		return p.failErr(c, sess, err)
	}
	return p.render(c, fiber.StatusOK, "me", d)
}

func (p *Pages) loadMe(ctx context.Context, pr *auth.Principal, pid string, d *meData) error {
	l := d.L
	pt, err := p.readPatient(ctx, pr, pid)
	if err != nil {
		return err
	}
	d.Name = pt.displayName()
	lims, err := p.patientLimits(ctx, pr, pid)
	if err != nil {
		return err
	}
	latest, err := p.latestReadings(ctx, pr, pid)
	if err != nil {
		return err
	}
	now := p.now()
	week, err := p.readingsSince(ctx, pr, pid, now.Add(-7*24*time.Hour))
	if err != nil {
		return err
	}
	reviews, err := p.reviews(ctx, pr, pid)
	if err != nil {
		return err
	}
	intervals, err := p.planIntervals(ctx, pr, pid)
	if err != nil {
		return err
	}
	for i := range p.measures.list {
		m := &p.measures.list[i]
		r, ok := latest[m.Key]
		if !ok {
			continue
		}
		lim := lims.of(m)
		mm := meMeasure{Name: l.T("measure." + m.Key), Value: formatValue(l, m, r.V), Unit: m.Shown, At: r.At}
		switch {
		case !anySet(lim) && (r.Interp == "" || r.Interp == "N"):
			mm.Status = ""
		case withinAll(r.V, lim) && (r.Interp == "" || r.Interp == "N"):
			mm.Status = l.T("me.status.within")
		default:
			mm.Status, mm.Out = l.T("me.status.outside"), true
		}
		mm.Week = weekSentence(l, m, week[m.Key], lim)
		mm.Review = reviewText(l, reviews[m.Key])
		d.Measures = append(d.Measures, mm)
		due := overdueFallback
		if iv, ok := intervals[m.Code]; ok {
			due = p.rules.MissedAfter(iv)
		}
		if now.Sub(r.At) > due {
			d.Overdue = append(d.Overdue, l.T("me.overdue", l.T("me.measure."+m.Key), l.DateTime(r.At)))
		}
	}
	d.Visits, err = p.upcomingVisits(ctx, pr, pid, l)
	return err
}

func anySet(ls []limit) bool {
	for _, l := range ls {
		if l.set() {
			return true
		}
	}
	return false
}

// weekSentence says a week of one measure in plain words: "Your blood
// pressure this week: mostly within your limits; highest 152/95 on
// Tuesday."
func weekSentence(l *Localizer, m *measure, rs []reading, lim []limit) string {
	if len(rs) == 0 {
		return ""
	}
	within := 0
	top := rs[0]
	for _, r := range rs {
		if withinAll(r.V, lim) {
			within++
		}
		if r.V[0] > top.V[0] || math.IsNaN(top.V[0]) {
			top = r
		}
	}
	highest := formatValue(l, m, top.V) + " " + m.Shown
	if !anySet(lim) {
		return l.T("me.week.nolimits", l.T("me.measure."+m.Key), len(rs), highest, l.Weekday(top.At))
	}
	verdict := "me.week.often"
	switch {
	case within == len(rs):
		verdict = "me.week.all"
	case within*3 >= len(rs)*2:
		verdict = "me.week.mostly"
	}
	return l.T("me.week", l.T("me.measure."+m.Key), l.T(verdict), highest, l.Weekday(top.At))
}

// reviews says, per measure key, whether the nurse has seen the newest
// out-of-range reading: an open review Task is waiting, a completed one
// was reviewed on a day.
func (p *Pages) reviews(ctx context.Context, pr *auth.Principal, pid string) (map[string]string, error) {
	since := p.now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	tasks, err := p.searchAll(ctx, pr, "Task", url.Values{"patient": {pid}, "_lastUpdated": {"ge" + since}, "_sort": {"_lastUpdated"}})
	if err != nil {
		return nil, err
	}
	type seen struct {
		open bool
		at   time.Time
	}
	latest := map[string]seen{} // by focus Observation id, then by measure
	var obsIDs []string
	decoded := make([]taskJSON, 0, len(tasks))
	for _, st := range tasks {
		t, ok := decodeTask(st.Content)
		if !ok || t.Code.code() == care.TaskMissed {
			continue
		}
		if ids := t.readings; len(ids) > 0 {
			obsIDs = append(obsIDs, ids[0])
			decoded = append(decoded, t)
		}
	}
	readings, err := p.readingsByID(ctx, pr, uniq(obsIDs))
	if err != nil {
		return nil, err
	}
	for _, t := range decoded {
		r := readings[t.readings[0]]
		if r == nil {
			continue
		}
		at, _ := p.fhirTime(t.LastModified)
		s := seen{open: care.TaskOpen(t.Status), at: at}
		if old, ok := latest[r.m.Key]; !ok || s.open || (!old.open && at.After(old.at)) {
			latest[r.m.Key] = s
		}
	}
	out := map[string]string{}
	for key, s := range latest {
		if s.open {
			out[key] = "open"
		} else {
			out[key] = s.at.UTC().Format(time.RFC3339)
		}
	}
	return out, nil
}

// planIntervals are the intervals between readings the patient's active
// CarePlans expect, by the care rules' primary LOINC code of what they
// ask for (a panel's part counts as its panel), as the care engine's
// missed-measurement check reads them (care.Rules.Planned).
func (p *Pages) planIntervals(ctx context.Context, pr *auth.Principal, pid string) (map[string]time.Duration, error) {
	plans, err := p.searchAll(ctx, pr, "CarePlan", url.Values{"patient": {pid}, "status": {"active"}})
	if err != nil {
		return nil, err
	}
	rows := make([]care.PlanRow, len(plans))
	for i, st := range plans {
		rows[i] = care.PlanRow{ID: st.ID, Version: st.VersionID, Patient: pid, LastUpdated: st.LastUpdated, Content: st.Content}
	}
	out := map[string]time.Duration{}
	for _, pm := range p.rules.Planned(rows) {
		out[pm.Code] = pm.Interval
	}
	return out, nil
}

// upcomingVisits are the patient's booked Appointments from today on.
func (p *Pages) upcomingVisits(ctx context.Context, pr *auth.Principal, pid string, l *Localizer) ([]meVisit, error) {
	now := l.In(p.now())
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
	appts, err := p.searchAll(ctx, pr, "Appointment", url.Values{
		"patient": {pid}, "status": {"booked"}, "date": {"ge" + today.Format(time.RFC3339)}, "_sort": {"date"},
	})
	if err != nil {
		return nil, err
	}
	var out []meVisit
	for _, st := range appts {
		var a appointmentJSON
		if json.Unmarshal(st.Content, &a) != nil || a.Status != "booked" {
			continue
		}
		start, err := p.fhirTime(a.Start)
		if err != nil {
			continue
		}
		s := l.In(start)
		out = append(out, meVisit{ID: st.ID, Start: start, Today: s.Year() == now.Year() && s.YearDay() == now.YearDay()})
	}
	return out, nil
}

// reviewText turns a reviews entry into words.
func reviewText(l *Localizer, v string) string {
	if v == "" {
		return ""
	}
	if v == "open" {
		return l.T("me.review.waiting")
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return ""
	}
	return l.T("me.review.done", strings.TrimSpace(l.DateTime(at)))
}
