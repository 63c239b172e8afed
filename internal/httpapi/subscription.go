package httpapi

import (
	"context"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
	"github.com/vidda/vidda/internal/auth"
)

// subscriptionType is the resource type whose writes go through
// Deps.Subscriptions rather than straight to the store.
const subscriptionType = "Subscription"

// Subscriptions writes Subscriptions: it checks criteria and channel, sets
// the server's status, and stores the writer's grant beside the resource
// (fhir/subscription.Service).
type Subscriptions interface {
	Create(ctx context.Context, res *fhir.Resource, authorize subscription.Authorize, a store.Access) (*store.Stored, error)
	Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, authorize subscription.Authorize, a store.Access) (*store.Stored, bool, error)
}

// The Service is what Deps.Subscriptions holds in production.
var _ Subscriptions = (*subscription.Service)(nil)

// createSubscription is POST /fhir/Subscription, once the caller may
// create Subscriptions and the body is a valid one.
func (s *Server) createSubscription(c *fiber.Ctx, res *fhir.Resource, acc store.Access) error {
	if s.deps.Subscriptions == nil {
		return errNotSupported("writing Subscriptions: this server does not run them")
	}
	if c.Get("If-None-Exist") != "" {
		return errNotSupported("conditional create of a Subscription")
	}
	st, err := s.deps.Subscriptions.Create(c.UserContext(), res, s.subscriber(c), acc)
	noteStored(c.UserContext(), st, true)
	if err != nil {
		return err
	}
	return s.writeCreated(c, st)
}

// updateSubscription is PUT /fhir/Subscription/{id}.
func (s *Server) updateSubscription(c *fiber.Ctx, res *fhir.Resource, id string, ifMatch int64, acc store.Access) error {
	if s.deps.Subscriptions == nil {
		return errNotSupported("writing Subscriptions: this server does not run them")
	}
	st, created, err := s.deps.Subscriptions.Update(c.UserContext(), res, id, ifMatch, s.subscriber(c), acc)
	noteStored(c.UserContext(), st, true)
	if err != nil {
		return err
	}
	if created {
		return s.writeCreated(c, st)
	}
	return s.writeResource(c, fiber.StatusOK, st)
}

// subscriber is the policy on what a subscription may watch: the caller
// (a system client or an admin: auth.Decide allows nobody else to write a
// Subscription) may both search and read the type its criteria search.
// The grant is what those decisions restrict it to. It is called while
// the handler runs, never after.
func (s *Server) subscriber(c *fiber.Ctx) subscription.Authorize {
	p := principal(c)
	return func(typ string) (subscription.Grant, error) {
		if p == nil {
			return subscription.Grant{}, fmt.Errorf("%w: no credentials", auth.ErrUnauthenticated)
		}
		read, err := s.authorize(c, auth.InteractionRead, typ)
		if err != nil {
			return subscription.Grant{}, err
		}
		acc, err := s.authorize(c, auth.InteractionSearch, typ)
		if err != nil {
			return subscription.Grant{}, err
		}
		// Both decisions hold: the narrower restriction wins.
		if acc.PatientID == "" {
			acc.PatientID = read.PatientID
		}
		if acc.CareOf == "" {
			acc.CareOf = read.CareOf
		}
		return subscription.Grant{Access: acc, By: p.Subject}, nil
	}
}

// refuseSubscriptionEntry refuses a Subscription written inside a
// transaction or batch: it must go through the checks above, one at a
// time.
func refuseSubscriptionEntry(e *store.Entry) error {
	if e.Type == subscriptionType && (e.Op == store.OpCreate || e.Op == store.OpUpdate) {
		return &fhir.ValidationError{Semantic: true, Issues: []fhir.Issue{{
			Severity: fhir.SeverityError, Code: fhir.IssueNotSupported,
			Diagnostics: "a Subscription cannot be written in a Bundle: POST or PUT it on its own",
		}}}
	}
	return nil
}
