package care

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
)

// ErrTaskClosed means a Task is no longer open (someone completed or
// cancelled it first).
var ErrTaskClosed = errors.New("task is not open")

// Store is what the worklist needs of the FHIR store: Tasks are plain FHIR
// resources, read and written like any other (update as create with an id
// the engine chooses, so that a retried write cannot make a second Task).
type Store interface {
	Read(ctx context.Context, typ, id string, a store.Access) (*store.Stored, error)
	Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, a store.Access) (*store.Stored, bool, error)
}

// Worklist opens, extends, closes and acknowledges worklist Tasks.
type Worklist struct {
	st    Store
	db    *DB
	types *fhir.Registry
	now   func() time.Time
	m     *metrics // nil: not counted
}

// NewWorklist returns a Worklist writing Tasks to st.
func NewWorklist(st Store, db *DB, types *fhir.Registry) *Worklist {
	return &Worklist{st: st, db: db, types: types, now: time.Now}
}

// taskNamespace is the UUID namespace of Task ids derived from others.
var taskNamespace = uuid.MustParse("0c4f7a53-2a55-4f7e-8f4e-6d1f0f3b9c21") //nolint:gochecknoglobals // a constant UUID

// maxConflicts bounds the retries of a Task write that lost a race with
// another writer (a nurse updating the same Task).
const maxConflicts = 5

// raise opens the Task of p, or adds p's reading to the open one. A Task
// of the problem that is closed (acknowledged) is left alone and a new
// one opened. Raising the same reading twice changes nothing.
func (w *Worklist) raise(ctx context.Context, p *problem) error {
	id, err := w.db.problemTask(ctx, p.patient, p.key)
	if err != nil {
		return err
	}
	if id == "" {
		if id, err = w.db.claimProblem(ctx, p.patient, p.key, uuid.NewString()); err != nil {
			return err
		}
	}
	for range maxConflicts {
		cur, err := w.st.Read(ctx, "Task", id, store.Access{})
		switch {
		case errors.Is(err, fhir.ErrNotFound):
			// Claimed but not written yet (a crash in between): write it.
			return w.write(ctx, id, 0, p, nil)
		case errors.Is(err, fhir.ErrDeleted):
			return w.reopen(ctx, p, id)
		case err != nil:
			return fmt.Errorf("raise %s of %s: %w", p.key, p.patient, err)
		}
		doc, err := parseTask(cur.Content)
		if err != nil {
			return err
		}
		if !TaskOpen(doc.str("status")) {
			if doc.refers(p.focus) {
				return nil // this reading was handled: its Task is closed since
			}
			return w.reopen(ctx, p, id)
		}
		was, _ := ParsePriority(doc.str("priority"))
		changed, err := doc.addReading(p, w.now())
		if err != nil || !changed {
			return err
		}
		err = w.write(ctx, id, cur.VersionID, p, doc)
		if err == nil && p.prio > was {
			w.m.escalate()
		}
		if !errors.Is(err, fhir.ErrPreconditionFailed) {
			return err
		}
	}
	return fmt.Errorf("raise %s of %s: Task %s kept changing", p.key, p.patient, id)
}

// reopen records a new Task for p in place of the closed Task old. Its
// id derives from old's, so that a retry after a crash between the two
// writes makes the same Task again, not a second one.
func (w *Worklist) reopen(ctx context.Context, p *problem, old string) error {
	id := uuid.NewSHA1(taskNamespace, []byte(old)).String()
	if err := w.write(ctx, id, 0, p, nil); err != nil {
		return err
	}
	return w.db.replaceProblem(ctx, p.patient, p.key, old, id)
}

// write stores doc (nil: a new Task for p) as Task id, expecting version
// ifMatch (0: none).
func (w *Worklist) write(ctx context.Context, id string, ifMatch int64, p *problem, doc taskDoc) error {
	var body []byte
	var err error
	if doc == nil {
		body, err = newTask(p, w.now())
	} else {
		body, err = doc.bytes()
	}
	if err != nil {
		return err
	}
	if err := w.put(ctx, id, ifMatch, body, store.Access{}); err != nil {
		return err
	}
	if doc == nil {
		w.m.open(p.kind)
	}
	return nil
}

func (w *Worklist) put(ctx context.Context, id string, ifMatch int64, body []byte, a store.Access) error {
	res, err := w.types.Parse("Task", body)
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	if _, _, err := w.st.Update(ctx, res, id, ifMatch, a); err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	return nil
}

// resolve completes the open Task of (patient, problem key) with note and
// forgets the problem.
func (w *Worklist) resolve(ctx context.Context, patient, key, note string) error {
	id, err := w.db.problemTask(ctx, patient, key)
	if err != nil || id == "" {
		return err
	}
	err = w.complete(ctx, id, "", note, store.Access{})
	if err != nil && !errors.Is(err, ErrTaskClosed) && !errors.Is(err, fhir.ErrNotFound) && !errors.Is(err, fhir.ErrDeleted) {
		return err
	}
	return w.db.dropProblem(ctx, patient, key, id)
}

// complete sets Task id completed with a note by author ("" for the
// engine), retrying when another write came between.
func (w *Worklist) complete(ctx context.Context, id, author, note string, a store.Access) error {
	for range maxConflicts {
		cur, err := w.st.Read(ctx, "Task", id, a)
		if err != nil {
			return fmt.Errorf("complete task %s: %w", id, err)
		}
		doc, err := parseTask(cur.Content)
		if err != nil {
			return err
		}
		if !TaskOpen(doc.str("status")) {
			return fmt.Errorf("complete task %s: %w", id, ErrTaskClosed)
		}
		if err := doc.close(author, note, w.now()); err != nil {
			return err
		}
		body, err := doc.bytes()
		if err != nil {
			return err
		}
		err = w.put(ctx, id, cur.VersionID, body, a)
		if err == nil {
			if author == "" {
				w.m.close(closedByEngine)
			} else {
				w.m.close(closedByPractitioner)
			}
		}
		if !errors.Is(err, fhir.ErrPreconditionFailed) {
			return err
		}
	}
	return fmt.Errorf("complete task %s: it kept changing", id)
}

// Acknowledge completes worklist Task taskID on behalf of practitionerRef
// ("Practitioner/<id>"): status completed, owner the practitioner, and a
// note by them (note may be empty: "Acknowledged"). The practitioner must
// care for the Task's patient (as the store's CareOf access rules), or the
// Task is not found. A Task already closed gives ErrTaskClosed. Nurses can
// do the same through the FHIR API (PUT of the Task with status completed);
// this is the dashboard's shortcut.
func (w *Worklist) Acknowledge(ctx context.Context, taskID, practitionerRef, note string) error {
	if !strings.HasPrefix(practitionerRef, "Practitioner/") || !fhir.ValidID(strings.TrimPrefix(practitionerRef, "Practitioner/")) {
		return fmt.Errorf("acknowledge task %s: %q is not a Practitioner reference", taskID, practitionerRef)
	}
	if !fhir.ValidID(taskID) {
		return fmt.Errorf("acknowledge task %q: %w", taskID, fhir.ErrNotFound)
	}
	if strings.TrimSpace(note) == "" {
		note = "Acknowledged"
	}
	return w.complete(ctx, taskID, practitionerRef, note, store.Access{CareOf: practitionerRef})
}
