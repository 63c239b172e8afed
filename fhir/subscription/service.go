package subscription

import (
	"context"
	"fmt"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
)

// Writer is what Service needs of the store.
type Writer interface {
	CreateSubscription(ctx context.Context, res *fhir.Resource, g store.SubscriptionGrant, live bool, a store.Access) (*store.Stored, error)
	UpdateSubscription(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, g store.SubscriptionGrant, live bool, a store.Access) (*store.Stored, bool, error)
}

// Grant is the authority a client gives the subscriptions it writes.
type Grant struct {
	// Access is its restriction on the searched type (as the policy
	// decides it for a search and a read of that type).
	Access store.Access
	// By is its subject, kept for the record.
	By string
}

// Authorize decides whether the writing client may subscribe to changes of
// typ, and with what Grant; the HTTP edge, which knows the caller, makes
// it. An error refuses the write.
type Authorize func(typ string) (Grant, error)

// Service writes Subscriptions that clients send: checked, with the
// server's status, and with the writer's grant.
type Service struct {
	types *fhir.Registry
	check *Checker
	w     Writer
}

// NewService returns a Service writing through w.
func NewService(types *fhir.Registry, check *Checker, w Writer) *Service {
	return &Service{types: types, check: check, w: w}
}

// Create checks res and stores it as a new Subscription, status requested
// (or off, if the client said so): the runner handshakes it.
func (s *Service) Create(ctx context.Context, res *fhir.Resource, authorize Authorize, a store.Access) (*store.Stored, error) {
	res, g, live, err := s.prepare(res, authorize)
	if err != nil {
		return nil, err
	}
	return s.w.CreateSubscription(ctx, res, g, live, a)
}

// Update checks res and stores it as the new version of Subscription id;
// the new version is handshaken again (or is off).
func (s *Service) Update(ctx context.Context, res *fhir.Resource, id string, ifMatch int64, authorize Authorize, a store.Access) (*store.Stored, bool, error) {
	res, g, live, err := s.prepare(res, authorize)
	if err != nil {
		return nil, false, err
	}
	return s.w.UpdateSubscription(ctx, res, id, ifMatch, g, live, a)
}

// prepare checks res, asks for the grant of its criteria's type and sets
// the server's elements: status requested unless off, no error.
func (s *Service) prepare(res *fhir.Resource, authorize Authorize) (*fhir.Resource, store.SubscriptionGrant, bool, error) {
	sp, err := s.check.Check(res)
	if err != nil {
		return nil, store.SubscriptionGrant{}, false, err
	}
	g, err := authorize(sp.Type)
	if err != nil {
		return nil, store.SubscriptionGrant{}, false, fmt.Errorf("subscribe to %s: %w", sp.Type, err)
	}
	status := StatusRequested
	if sp.Status == StatusOff {
		status = StatusOff
	}
	out, err := withStatus(s.types, res.Raw, status, "")
	if err != nil {
		return nil, store.SubscriptionGrant{}, false, err
	}
	return out, store.SubscriptionGrant{ResourceType: sp.Type, Access: g.Access, By: g.By}, status != StatusOff, nil
}

// withStatus is a Subscription's content with the server's status and
// error ("": none), parsed again so that its model (and so its search
// columns) agree.
func withStatus(types *fhir.Registry, raw []byte, status, errText string) (*fhir.Resource, error) {
	e := fhir.Member{Name: "error"}
	if errText != "" {
		e = fhir.StringMember("error", errText)
	}
	content, err := fhir.WithMembers(raw, fhir.StringMember("status", status), e)
	if err != nil {
		return nil, fmt.Errorf("subscription status: %w", err)
	}
	res, err := types.Parse(subscriptionType, content)
	if err != nil {
		return nil, fmt.Errorf("subscription status: %w", err)
	}
	return res, nil
}
