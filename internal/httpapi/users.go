package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// UserAdmin manages the people who sign in; *auth.Users is one.
type UserAdmin interface {
	List(ctx context.Context) ([]*auth.User, error)
	Get(ctx context.Context, id string) (*auth.User, error)
	Add(ctx context.Context, nu auth.NewUser) (*auth.User, string, error)
	SetPassword(ctx context.Context, id, password string) (int64, error)
	Disable(ctx context.Context, id string) (int64, error)
	Enable(ctx context.Context, id string) error
	RevokeSessions(ctx context.Context, id string) (int64, error)
}

// userRoutes mounts the user administration on g, the admins-only /admin
// group (JSON in and out, errors as OperationOutcome):
//
//	GET    /admin/users                 list
//	POST   /admin/users                 create {username, role, password, patient?, practitioner?, totp?}
//	GET    /admin/users/:id             one user
//	POST   /admin/users/:id/disable     disable and end their sessions
//	POST   /admin/users/:id/enable      enable and lift a lockout
//	PUT    /admin/users/:id/password    reset {password}; ends their sessions
//	DELETE /admin/users/:id/sessions    end their sessions
func (s *Server) userRoutes(g fiber.Router) {
	g.Get("/users", s.listUsers)
	g.Post("/users", s.createUser)
	g.Get("/users/:id", s.getUser)
	g.Post("/users/:id/disable", s.disableUser)
	g.Post("/users/:id/enable", s.enableUser)
	g.Put("/users/:id/password", s.resetPassword)
	g.Delete("/users/:id/sessions", s.revokeSessions)
}

// userJSON is a user as the admin API shows it.
type userJSON struct {
	ID             string     `json:"id"`
	Username       string     `json:"username"`
	Role           auth.Role  `json:"role"`
	Patient        string     `json:"patient,omitempty"`
	Practitioner   string     `json:"practitioner,omitempty"`
	TOTP           bool       `json:"totp"`
	Disabled       bool       `json:"disabled"`
	LockedUntil    *time.Time `json:"lockedUntil,omitempty"`
	Created        time.Time  `json:"created"`
	PasswordChange time.Time  `json:"passwordChanged"`
	Sessions       *int       `json:"activeSessions,omitempty"`
	TOTPURL        string     `json:"totpUrl,omitempty"`
}

func toUserJSON(u *auth.User, now time.Time) userJSON {
	j := userJSON{
		ID: u.ID, Username: u.Username, Role: u.Role, Patient: u.PatientID, Practitioner: u.PractitionerID,
		TOTP: u.TOTP, Disabled: u.Disabled, Created: u.CreatedAt.UTC(), PasswordChange: u.PasswordChangedAt.UTC(),
	}
	if u.LockedUntil.After(now) {
		t := u.LockedUntil.UTC()
		j.LockedUntil = &t
	}
	return j
}

func (s *Server) listUsers(c *fiber.Ctx) error {
	users, err := s.deps.Users.List(c.UserContext())
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]userJSON, len(users))
	for i, u := range users {
		out[i] = toUserJSON(u, now)
		n := u.ActiveSessions
		out[i].Sessions = &n
	}
	return c.JSON(out)
}

func (s *Server) getUser(c *fiber.Ctx) error {
	u, err := s.deps.Users.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return userError(err)
	}
	return c.JSON(toUserJSON(u, time.Now()))
}

// newUserRequest is the body of POST /admin/users.
type newUserRequest struct {
	Username     string `json:"username"`
	Role         string `json:"role"`
	Password     string `json:"password"`
	Patient      string `json:"patient"`
	Practitioner string `json:"practitioner"`
	TOTP         bool   `json:"totp"`
}

func (s *Server) createUser(c *fiber.Ctx) error {
	var req newUserRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := s.checkLink(ctx, "Patient", req.Patient); err != nil {
		return err
	}
	if err := s.checkLink(ctx, "Practitioner", req.Practitioner); err != nil {
		return err
	}
	u, totpURL, err := s.deps.Users.Add(ctx, auth.NewUser{
		Username: req.Username, Role: auth.Role(req.Role), Password: req.Password,
		PatientID: req.Patient, PractitionerID: req.Practitioner, TOTP: req.TOTP,
	})
	if err != nil {
		return userError(err)
	}
	out := toUserJSON(u, time.Now())
	out.TOTPURL = totpURL
	c.Location("/admin/users/" + u.ID)
	return c.Status(fiber.StatusCreated).JSON(out)
}

// checkLink makes sure a user is linked to a resource that exists.
func (s *Server) checkLink(ctx context.Context, typ, id string) error {
	if id == "" || s.deps.Store == nil {
		return nil
	}
	if _, err := s.deps.Store.Read(ctx, typ, id, store.Access{}); err != nil {
		if errors.Is(err, fhir.ErrNotFound) || errors.Is(err, fhir.ErrDeleted) {
			return errBadRequest(fmt.Sprintf("%s/%s does not exist", typ, truncateID(id)))
		}
		return err
	}
	return nil
}

func (s *Server) disableUser(c *fiber.Ctx) error {
	id := c.Params("id")
	if _, err := s.deps.Users.Disable(c.UserContext(), id); err != nil {
		return userError(err)
	}
	return s.getUser(c)
}

func (s *Server) enableUser(c *fiber.Ctx) error {
	if err := s.deps.Users.Enable(c.UserContext(), c.Params("id")); err != nil {
		return userError(err)
	}
	return s.getUser(c)
}

func (s *Server) resetPassword(c *fiber.Ctx) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	n, err := s.deps.Users.SetPassword(c.UserContext(), c.Params("id"), req.Password)
	if err != nil {
		return userError(err)
	}
	return c.JSON(fiber.Map{"revokedSessions": n})
}

func (s *Server) revokeSessions(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id := c.Params("id")
	if _, err := s.deps.Users.Get(ctx, id); err != nil {
		return userError(err)
	}
	n, err := s.deps.Users.RevokeSessions(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"revokedSessions": n})
}

// decodeJSON reads a JSON object into v, refusing unknown fields and
// trailing data.
func decodeJSON(c *fiber.Ctx, v any) error {
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("the body must be a JSON object with the documented fields: " + jsonProblem(err))
	}
	if dec.More() {
		return errBadRequest("the body must be one JSON object")
	}
	return nil
}

// jsonProblem names what was wrong without echoing the body (it may hold
// a password).
func jsonProblem(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return truncateID(strings.TrimPrefix(err.Error(), "json: ")) // the field's name, not its value
	}
	return "not a JSON object"
}

// userError maps user-management errors to responses; others pass through
// to the error handler.
func userError(err error) error {
	switch {
	case errors.Is(err, auth.ErrUserNotFound):
		return &edgeError{fiber.StatusNotFound, "not-found", err.Error()}
	case errors.Is(err, auth.ErrUserExists):
		return &edgeError{fiber.StatusConflict, "duplicate", err.Error()}
	case errors.Is(err, auth.ErrInvalidUser):
		return &edgeError{fiber.StatusBadRequest, "invalid", err.Error()}
	}
	return err
}

func truncateID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
