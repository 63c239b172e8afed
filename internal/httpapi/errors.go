package httpapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// edgeError is an HTTP-level failure (bad media type, unsupported
// interaction) with its status and FHIR issue code.
type edgeError struct {
	status int
	code   string
	msg    string
}

func (e *edgeError) Error() string { return e.msg }

func errUnsupportedMedia(ct string) error {
	return &edgeError{
		fiber.StatusUnsupportedMediaType, "not-supported",
		fmt.Sprintf("content type %q is not supported: send application/fhir+json", ct),
	}
}

func errNotSupported(what string) error {
	return &edgeError{fiber.StatusNotFound, "not-supported", "not supported: " + what}
}

func errBadRequest(msg string) error {
	return &edgeError{fiber.StatusBadRequest, "invalid", msg}
}

// handleError is the one place where errors become responses: every
// failure is an OperationOutcome with the status its meaning calls for.
// Internal errors are logged with the request id and shown only as such.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	status, issues := s.classify(c, err)
	c.Status(status)
	if status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="vidda"`)
	}
	c.Set(fiber.HeaderContentType, contentTypeFHIR)
	return c.Send(fhir.OperationOutcome(issues...))
}

func (s *Server) classify(c *fiber.Ctx, err error) (int, []fhir.Issue) {
	issue := func(code, msg string) []fhir.Issue {
		return []fhir.Issue{{Severity: "error", Code: code, Diagnostics: msg}}
	}
	var (
		verr *fhir.ValidationError
		eerr *edgeError
		ferr *fiber.Error
	)
	switch {
	case errors.As(err, &verr):
		if verr.Semantic {
			return 422, verr.Issues
		}
		return 400, verr.Issues
	case errors.As(err, &eerr):
		return eerr.status, issue(eerr.code, eerr.msg)
	case errors.Is(err, auth.ErrUnauthenticated):
		return 401, issue("login", err.Error())
	case errors.Is(err, auth.ErrUnavailable):
		return 503, issue("transient", err.Error()+", retry")
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, store.ErrOutsideCompartment):
		return 403, issue("forbidden", "not allowed: "+err.Error())
	case errors.Is(err, fhir.ErrUnsupportedType):
		return 404, issue("not-supported", err.Error())
	case errors.Is(err, fhir.ErrNotFound):
		return 404, issue("not-found", err.Error())
	case errors.Is(err, fhir.ErrDeleted):
		return 410, issue("deleted", err.Error())
	case errors.Is(err, fhir.ErrVersionConflict), errors.Is(err, store.ErrStillReferenced):
		return 409, issue("conflict", err.Error())
	case errors.Is(err, fhir.ErrPreconditionFailed):
		return 412, issue("conflict", err.Error())
	case errors.Is(err, store.ErrStopped):
		return 503, issue("transient", "server is shutting down, retry")
	case errors.Is(err, context.DeadlineExceeded):
		return 503, issue("timeout", "request took too long, retry")
	case errors.As(err, &ferr):
		code := "processing"
		switch ferr.Code {
		case 413:
			code = "too-costly"
		case 404:
			code = "not-found"
		case 405:
			code = "not-supported"
		}
		return ferr.Code, issue(code, ferr.Message)
	}
	s.log.ErrorContext(c.UserContext(), "http: internal error", "request_id", c.Locals(localRequestID), "err", err)
	return 500, issue("exception", fmt.Sprintf("internal error (request id %v)", c.Locals(localRequestID)))
}
