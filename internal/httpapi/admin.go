package httpapi

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// DeadLetters lists device input that could not be stored.
type DeadLetters interface {
	DeadLetters(ctx context.Context, deviceID string, limit int) ([]store.DeadLetter, error)
}

// adminRoutes mounts /admin, for admins only, with the routes whose
// dependencies are there.
func (s *Server) adminRoutes() {
	g := s.app.Group("/admin", s.auditAdmin, s.authenticate, requireRole(auth.RoleAdmin))
	if s.deps.DeadLetters != nil {
		g.Get("/deadletters", s.deadLetters)
	}
	if s.deps.Users != nil {
		s.userRoutes(g)
	}
}

// deadLetters is GET /admin/deadletters?device=&limit= (admins only).
func (s *Server) deadLetters(c *fiber.Ctx) error {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errBadRequest("limit must be a whole number from 1 to 1000")
		}
		limit = n
	}
	letters, err := s.deps.DeadLetters.DeadLetters(c.UserContext(), strings.Clone(c.Query("device")), limit)
	if err != nil {
		return err
	}
	out := make([]fiber.Map, len(letters))
	for i, d := range letters {
		out[i] = fiber.Map{
			"id": d.ID, "received": d.ReceivedAt.UTC().Format(time.RFC3339Nano), "device": d.DeviceID, "topic": d.Topic,
			"reason": d.Reason, "detail": d.Detail, "payload": string(d.Payload), "replayed": d.ReplayedAt,
		}
	}
	return c.JSON(out)
}
