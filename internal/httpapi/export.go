package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/bulk"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
)

// Exports is what the FHIR Bulk Data routes need; *bulk.Exporter is one.
type Exports interface {
	Parse(kind bulk.Kind, groupID string, q url.Values, prefer string) (*bulk.Request, error)
	Plan(r *bulk.Request, authorize func(typ string) (store.Access, error)) (*bulk.Plan, error)
	Start(ctx context.Context, p *bulk.Plan, who store.Requester, requestURL string) (*store.ExportJob, error)
	Status(ctx context.Context, id string, who store.Requester) (*store.ExportJob, error)
	Cancel(ctx context.Context, id string, who store.Requester) error
	Open(ctx context.Context, id, name string, who store.Requester) (*os.File, error)
}

// FHIR Bulk Data Access v2 (https://hl7.org/fhir/uv/bulkdata/export.html):
//
//	GET  /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export   kick-off → 202, Content-Location
//	GET  /fhir/$export-status/{job}                                       202 + X-Progress, or 200 + manifest
//	DELETE /fhir/$export-status/{job}                                     cancel → 202
//	GET  /fhir/$export-file/{job}/{name}                                  one ndjson file
//
// Every step needs a token; status, cancel and files only the token of
// the same requester (subject, client and issuer): anyone else's job is
// not found. Each request is audited as an export (audit.KindExport), and
// so is the end of each run (ExportAudit).

const (
	exportStatusPath  = "/$export-status/"
	exportFilePath    = "/$export-file/"
	contentTypeNDJSON = "application/fhir+ndjson"
)

// exportRetryAfter is the poll interval a status answer suggests, in
// seconds.
const exportRetryAfter = "2"

// exportRoutes mounts the Bulk Data routes on the /fhir group, before the
// generic [type]/[id] routes that would take them otherwise.
func (s *Server) exportRoutes(f fiber.Router) {
	if s.deps.Exports == nil {
		return
	}
	f.Get("/$export", s.auditExport, s.exportSystem)
	f.Get("/Patient/$export", s.auditExport, s.exportPatients)
	f.Get("/Group/:id/$export", s.auditExport, s.exportGroup)
	f.Get(exportStatusPath+":job", s.auditExport, s.exportStatus)
	f.Delete(exportStatusPath+":job", s.auditExport, s.exportCancel)
	f.Get(exportFilePath+":job/:name", s.auditExport, s.exportFile)
}

// declareExport adds the Bulk Data export operations to the
// CapabilityStatement.
func declareExport(c *fhir.Capabilities) {
	const ig = "http://hl7.org/fhir/uv/bulkdata/"
	c.Instantiates = append(c.Instantiates, ig+"CapabilityStatement/bulk-data")
	c.Operations = append(c.Operations, fhir.OperationCapability{Name: "export", Definition: ig + "OperationDefinition/export"})
	for i := range c.Resources {
		switch r := &c.Resources[i]; r.Type {
		case "Patient":
			r.Operations = append(r.Operations, fhir.OperationCapability{Name: "export", Definition: ig + "OperationDefinition/patient-export"})
		case "Group":
			r.Operations = append(r.Operations, fhir.OperationCapability{Name: "export", Definition: ig + "OperationDefinition/group-export"})
		}
	}
}

// requester is who the principal is, as a job remembers it.
func requester(c *fiber.Ctx) (store.Requester, error) {
	p := principal(c)
	if p == nil {
		return store.Requester{}, fmt.Errorf("export: %w", auth.ErrUnauthenticated)
	}
	return store.Requester{Subject: p.Subject, ClientID: p.ClientID, Issuer: p.Issuer}, nil
}

func (s *Server) exportSystem(c *fiber.Ctx) error   { return s.kickOff(c, bulk.KindSystem) }
func (s *Server) exportPatients(c *fiber.Ctx) error { return s.kickOff(c, bulk.KindPatient) }
func (s *Server) exportGroup(c *fiber.Ctx) error    { return s.kickOff(c, bulk.KindGroup) }

// kickOff starts an export: the parameters are checked, every type the
// export covers is authorized as a search of that type (a type _type
// names that the caller may not search is a 403), and the job is queued.
func (s *Server) kickOff(c *fiber.Ctx, kind bulk.Kind) error {
	who, err := requester(c)
	if err != nil {
		return err
	}
	groupID := ""
	if kind == bulk.KindGroup {
		groupID = strings.Clone(c.Params("id"))
	}
	req, err := s.deps.Exports.Parse(kind, groupID, queryArgs(c), c.Get("Prefer"))
	if err != nil {
		return err
	}
	plan, err := s.deps.Exports.Plan(req, func(typ string) (store.Access, error) {
		return s.authorize(c, auth.InteractionSearch, typ)
	})
	if err != nil {
		return err
	}
	if kind == bulk.KindGroup {
		acc, err := s.authorize(c, auth.InteractionRead, "Group")
		if err != nil {
			return err
		}
		if _, err := s.deps.Store.Read(c.UserContext(), "Group", groupID, acc); err != nil {
			return err
		}
		plan.GroupAccess = acc
	}
	if n := noteFrom(c.UserContext()); n != nil {
		for _, a := range plan.Access {
			n.patient(a.PatientID)
		}
	}
	job, err := s.deps.Exports.Start(c.UserContext(), plan, who, s.base+strings.Clone(c.OriginalURL()))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentLocation, s.base+"/fhir"+exportStatusPath+job.ID)
	c.Status(fiber.StatusAccepted)
	if len(req.Ignored) > 0 {
		return s.send(c, fhir.OperationOutcome(fhir.Issue{
			Severity: fhir.SeverityWarning, Code: fhir.IssueNotSupported,
			Diagnostics: "ignored parameters: " + strings.Join(req.Ignored, ", "),
		}))
	}
	return nil
}

// exportStatus answers a poll: 202 with X-Progress while the job is queued
// or running, 200 with the manifest once it is complete, 500 with an
// OperationOutcome if it failed.
func (s *Server) exportStatus(c *fiber.Ctx) error {
	who, err := requester(c)
	if err != nil {
		return err
	}
	job, err := s.deps.Exports.Status(c.UserContext(), strings.Clone(c.Params("job")), who)
	if err != nil {
		return err
	}
	switch job.Status {
	case store.ExportQueued, store.ExportRunning:
		progress := job.Status
		if job.Progress != "" {
			progress = job.Progress
		}
		c.Set("X-Progress", progress)
		c.Set(fiber.HeaderRetryAfter, exportRetryAfter)
		return c.SendStatus(fiber.StatusAccepted)
	case store.ExportCompleted:
		body, err := bulk.Manifest(job, func(name string) string {
			return s.base + "/fhir" + exportFilePath + job.ID + "/" + name
		})
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderExpires, job.Expires.UTC().Format(http.TimeFormat))
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(body)
	}
	return &edgeError{fiber.StatusInternalServerError, "exception", "the export failed: " + job.Error}
}

// exportCancel deletes a job and its files (Bulk Data v2 "Delete a Bulk
// Data Request").
func (s *Server) exportCancel(c *fiber.Ctx) error {
	who, err := requester(c)
	if err != nil {
		return err
	}
	if err := s.deps.Exports.Cancel(c.UserContext(), strings.Clone(c.Params("job")), who); err != nil {
		return err
	}
	c.Status(fiber.StatusAccepted)
	return s.send(c, fhir.OperationOutcome(fhir.Issue{
		Severity: fhir.SeverityInformation, Code: fhir.IssueInformation, Diagnostics: "export cancelled; its files are deleted",
	}))
}

// exportFile streams one file of a completed job from disk.
func (s *Server) exportFile(c *fiber.Ctx) error {
	who, err := requester(c)
	if err != nil {
		return err
	}
	f, err := s.deps.Exports.Open(c.UserContext(), strings.Clone(c.Params("job")), strings.Clone(c.Params("name")), who)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("export file: %w", err)
	}
	c.Set(fiber.HeaderContentType, contentTypeNDJSON)
	// fasthttp closes f once the body is sent.
	c.Response().SetBodyStream(f, int(info.Size()))
	return nil
}

// auditExport runs the Bulk Data handler after it and records the request
// as one export event, in place of the event auditFHIR would make of the
// path.
func (s *Server) auditExport(c *fiber.Ctx) error {
	err := c.Next()
	n := noteFrom(c.UserContext())
	if n == nil {
		return err
	}
	if err != nil {
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	e := s.requestEvent(c)
	e.Kind = audit.KindExport
	e.Query = c.Method() + " " + strings.TrimPrefix(strings.Clone(c.OriginalURL()), "/fhir/")
	e.Detail = "bulk data " + c.Method() + " " + strings.Clone(c.Path())
	if id := c.Params("id"); id != "" {
		e.ResourceType, e.ResourceID = "Group", strings.Clone(id)
	}
	e.Patients, e.PatientsLeftOut = n.patients, n.leftOut
	n.entries = append(n.entries, e)
	return nil
}

// ExportAudit records the end of every export run as an AuditEvent of the
// requester's export, naming the patients whose data the files hold: give
// it to bulk.Config.Finished.
func ExportAudit(rec AuditRecorder) func(ctx context.Context, f bulk.Finished) {
	return func(ctx context.Context, f bulk.Finished) {
		j := f.Job
		e := audit.Event{
			Kind:    audit.KindExport,
			Outcome: audit.OutcomeSuccess,
			Agent:   audit.Agent{Subject: j.Requester.Subject, ClientID: j.Requester.ClientID, Issuer: j.Requester.Issuer},
			Query:   j.Request,
			Detail: "bulk data export " + j.ID + " (" + j.Kind + ") " + f.Outcome + ": " +
				strconv.FormatInt(f.Written, 10) + " resources in " + strconv.Itoa(f.Files) + " files",
			Patients:        f.Patients,
			PatientsLeftOut: f.PatientsLeftOut,
		}
		if j.GroupID != "" {
			e.ResourceType, e.ResourceID = "Group", j.GroupID
		}
		switch f.Outcome {
		case bulk.OutcomeFailed:
			e.Outcome, e.OutcomeDesc = audit.OutcomeMajorFailure, "export failed"
		case bulk.OutcomeCancelled:
			e.Outcome, e.OutcomeDesc = audit.OutcomeMinorFailure, "export cancelled"
		}
		rec.Record(ctx, e)
	}
}
