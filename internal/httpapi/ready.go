package httpapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// ReadyCheck is one dependency /readyz asks about.
type ReadyCheck struct {
	// Name labels the dependency in the answer: "database", "broker".
	Name string
	// Check answers nil while the dependency works.
	Check Pinger
}

// ReadyChecks are the dependencies an instance needs to take traffic, in
// the order /readyz asks them. Give them as Deps.Ready; any other Pinger
// there is taken as the database alone.
type ReadyChecks []ReadyCheck

// Ping asks every check and joins the failures, each prefixed with the
// name of its dependency.
func (rc ReadyChecks) Ping(ctx context.Context) error {
	var errs []error
	for _, c := range rc {
		if err := c.Check.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// readyTimeout bounds one /readyz answer: a probe that hangs is as bad as
// one that fails.
const readyTimeout = 2 * time.Second

// readyz answers 200 while every dependency works and 503 naming each one
// that does not ({"status":"unavailable","database":"ok","broker":"unreachable"}),
// so that a load balancer or Kubernetes stops sending this instance traffic.
// ?exclude=broker (comma-separated names, as Kubernetes' own /readyz takes)
// leaves dependencies out: an operator who would rather keep the FHIR API
// served while the device broker is away probes that.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	checks, ok := s.deps.Ready.(ReadyChecks)
	if !ok {
		checks = ReadyChecks{{Name: "database", Check: s.deps.Ready}}
	}
	excluded := strings.Split(c.Query("exclude"), ",")
	body := fiber.Map{"status": "ready"}
	status := fiber.StatusOK
	for _, rc := range checks {
		if slices.Contains(excluded, rc.Name) {
			continue
		}
		if err := rc.Check.Ping(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", "dependency", rc.Name, "err", err)
			body[rc.Name] = "unreachable"
			body["status"] = "unavailable"
			status = fiber.StatusServiceUnavailable
			continue
		}
		body[rc.Name] = "ok"
	}
	return c.Status(status).JSON(body)
}
