package care

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Codes of the worklist Tasks.
const (
	// SystemTask is the code system of Task.code.
	SystemTask = "urn:vidda:care-task"
	// TaskReview: an out-of-range reading (or a trend) to review.
	TaskReview = "review-reading"
	// TaskMissed: a planned measurement that did not come.
	TaskMissed = "missed-measurement"
	// SystemProblem is the system of the Task.identifier naming the
	// problem the Task is about ("reading|59408-5", "trend|weight-gain",
	// "missed|29463-7"); one open Task per patient and problem.
	SystemProblem = "urn:vidda:care-problem"
	// SystemRule names trend rules in Task.reasonCode.
	SystemRule = "urn:vidda:care-rule"
)

// OpenTaskStatuses are the Task statuses (R4 task-status) of work still
// waiting for someone: the worklist's, and what a search for open Tasks
// asks for.
func OpenTaskStatuses() []string {
	return []string{"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"}
}

// TaskOpen reports whether a Task of status s still waits for someone
// (one of OpenTaskStatuses). A closed Task stays closed: the next
// flagged reading of its problem opens a new one.
func TaskOpen(s string) bool { return slices.Contains(OpenTaskStatuses(), s) }

// problem is what a Task is about.
type problem struct {
	kind    string // TaskReview or TaskMissed
	key     string // care_problem.problem
	code    string // the measure's LOINC code
	name    string // the measure's (or rule's) name, for people
	rule    string // trend rule, "" for a limit
	flag    Flag
	prio    Priority
	focus   string // "Observation/<id>" or "CarePlan/<id>"
	patient string
	since   time.Time // missed: the last reading (or the plan's start)
}

// Task JSON, as the engine writes it. Fields the engine never writes are
// kept untouched on updates (see addReading).
type taskJSON struct {
	ResourceType string       `json:"resourceType"`
	Identifier   []identifier `json:"identifier,omitempty"`
	Status       string       `json:"status"`
	Intent       string       `json:"intent"`
	Priority     string       `json:"priority,omitempty"`
	Code         *concept     `json:"code,omitempty"`
	Description  string       `json:"description,omitempty"`
	Focus        *reference   `json:"focus,omitempty"`
	For          *reference   `json:"for,omitempty"`
	AuthoredOn   string       `json:"authoredOn,omitempty"`
	LastModified string       `json:"lastModified,omitempty"`
	ReasonCode   *concept     `json:"reasonCode,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type reference struct {
	Reference string `json:"reference,omitempty"`
}

type annotation struct {
	AuthorReference *reference `json:"authorReference,omitempty"`
	Time            string     `json:"time,omitempty"`
	Text            string     `json:"text"`
}

// instant formats t as a FHIR dateTime in UTC, to the millisecond.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// newTask is the JSON of a new Task for p.
func newTask(p *problem, now time.Time) ([]byte, error) {
	t := taskJSON{
		ResourceType: "Task",
		Identifier:   []identifier{{System: SystemProblem, Value: p.key}},
		Status:       "requested", Intent: "order",
		Priority:    p.prio.String(),
		Description: p.describe(),
		Focus:       &reference{Reference: p.focus},
		For:         &reference{Reference: "Patient/" + p.patient},
		AuthoredOn:  instant(now), LastModified: instant(now),
		ReasonCode: p.reason(),
	}
	switch p.kind {
	case TaskMissed:
		t.Code = &concept{Coding: []coding{{System: SystemTask, Code: TaskMissed, Display: "Missed measurement"}}, Text: "Missed measurement"}
	default:
		t.Code = &concept{Coding: []coding{{System: SystemTask, Code: TaskReview, Display: "Review reading"}}, Text: "Review reading"}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("task: %w", err)
	}
	return b, nil
}

func (p *problem) describe() string {
	switch {
	case p.kind == TaskMissed:
		return fmt.Sprintf("%s not measured as planned since %s", p.name, p.since.UTC().Format("2006-01-02 15:04 MST"))
	case p.rule != "":
		return fmt.Sprintf("%s: trend rule %s", p.name, p.rule)
	}
	return fmt.Sprintf("%s: %s", p.name, p.flag.Display())
}

func (p *problem) reason() *concept {
	c := &concept{Coding: []coding{{System: SystemLOINC, Code: p.code, Display: p.name}}, Text: p.name}
	if p.rule != "" {
		c.Coding = append(c.Coding, coding{System: SystemRule, Code: p.rule})
	}
	return c
}

// taskDoc is a stored Task as a map of its members, so that an update
// keeps every member the engine does not set (a nurse's notes, owner).
type taskDoc map[string]json.RawMessage

func parseTask(content []byte) (taskDoc, error) {
	var d taskDoc
	if err := json.Unmarshal(content, &d); err != nil {
		return nil, fmt.Errorf("task: %w", err)
	}
	delete(d, "meta") // the store sets it
	return d, nil
}

func (d taskDoc) str(name string) string {
	var s string
	_ = json.Unmarshal(d[name], &s)
	return s
}

func (d taskDoc) set(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("task %s: %w", name, err)
	}
	d[name] = b
	return nil
}

// ExtensionReading is the extension further readings of a Task were
// recorded in before Task.input could be validated: {"url":
// ExtensionReading, "valueReference": {...}}. The engine now writes
// Task.input (type InputReading, valueReference), and TaskReadings still
// reads both, so Tasks written either way work.
const ExtensionReading = "urn:vidda:care-task:reading"

// InputReading is the Task.input type of a further reading.
const InputReading = "reading"

type taskInput struct {
	Type           concept    `json:"type"`
	ValueReference *reference `json:"valueReference"`
}

type extension struct {
	URL            string     `json:"url"`
	ValueReference *reference `json:"valueReference,omitempty"`
}

// TaskReadingRefs are the members of a worklist Task that name the
// readings it is about. A reader that decodes a Task into a struct of its
// own embeds TaskReadingRefs to read them in the same pass (Readings);
// TaskReadings decodes them alone.
type TaskReadingRefs struct {
	Focus     *reference  `json:"focus"`
	Extension []extension `json:"extension"`
	Input     []struct {
		ValueReference *reference `json:"valueReference"`
	} `json:"input"`
}

// Readings returns the references of the readings the Task is about, its
// focus first, then further readings (extension ExtensionReading, or
// Task.input valueReference), in order.
func (t *TaskReadingRefs) Readings() []string {
	var out []string
	if t.Focus != nil && t.Focus.Reference != "" {
		out = append(out, t.Focus.Reference)
	}
	for _, e := range t.Extension {
		if e.URL == ExtensionReading && e.ValueReference != nil && e.ValueReference.Reference != "" {
			out = append(out, e.ValueReference.Reference)
		}
	}
	for _, in := range t.Input {
		if in.ValueReference != nil && in.ValueReference.Reference != "" {
			out = append(out, in.ValueReference.Reference)
		}
	}
	return out
}

// TaskReadings returns the references of the readings a stored worklist
// Task is about (TaskReadingRefs.Readings); nil when it does not decode.
func TaskReadings(content []byte) []string {
	var t TaskReadingRefs
	if json.Unmarshal(content, &t) != nil {
		return nil
	}
	return t.Readings()
}

// refers reports whether the Task is about reading ref already.
func (d taskDoc) refers(ref string) bool {
	b, err := json.Marshal(map[string]json.RawMessage(d))
	if err != nil {
		return false
	}
	return slices.Contains(TaskReadings(b), ref)
}

// addReading adds p's reading to an open Task as a further reading, and
// raises its priority (and description) when p is worse. It reports
// whether anything changed: a reading already there changes nothing.
func (d taskDoc) addReading(p *problem, now time.Time) (bool, error) {
	if d.refers(p.focus) {
		return false, nil
	}
	var inputs []json.RawMessage
	_ = json.Unmarshal(d["input"], &inputs)
	in, err := json.Marshal(taskInput{
		Type:           concept{Coding: []coding{{System: SystemTask, Code: InputReading, Display: "Further reading"}}, Text: "Further reading"},
		ValueReference: &reference{Reference: p.focus},
	})
	if err != nil {
		return false, fmt.Errorf("task reading: %w", err)
	}
	if err := d.set("input", append(inputs, in)); err != nil {
		return false, err
	}
	if cur, _ := ParsePriority(d.str("priority")); p.prio > cur {
		if err := d.set("priority", p.prio.String()); err != nil {
			return false, err
		}
		if err := d.set("description", p.describe()); err != nil {
			return false, err
		}
	}
	return true, d.set("lastModified", instant(now))
}

// close completes the Task with a note; by is the author reference ("" for
// the engine).
func (d taskDoc) close(by, note string, now time.Time) error {
	if err := d.set("status", "completed"); err != nil {
		return err
	}
	a := annotation{Time: instant(now), Text: note}
	if by != "" {
		a.AuthorReference = &reference{Reference: by}
		if err := d.set("owner", reference{Reference: by}); err != nil {
			return err
		}
	}
	var notes []json.RawMessage
	_ = json.Unmarshal(d["note"], &notes)
	n, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("task note: %w", err)
	}
	if err := d.set("note", append(notes, n)); err != nil {
		return err
	}
	var period map[string]string
	_ = json.Unmarshal(d["executionPeriod"], &period)
	if period == nil {
		period = map[string]string{}
	}
	period["end"] = instant(now)
	if err := d.set("executionPeriod", period); err != nil {
		return err
	}
	return d.set("lastModified", instant(now))
}

func (d taskDoc) bytes() ([]byte, error) {
	b, err := json.Marshal(map[string]json.RawMessage(d))
	if err != nil {
		return nil, fmt.Errorf("task: %w", err)
	}
	return b, nil
}
