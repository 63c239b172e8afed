package main

import (
	"log/slog"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/httpapi"
)

// subscriptionSettings are the settings of R4 Subscriptions.
type subscriptionSettings struct {
	cfg subscription.Config
}

func bindSubscriptions(cs *config.Set, s *subscriptionSettings) {
	s.cfg = subscription.DefaultConfig()
	c := &s.cfg
	cs.Bool(&c.AllowHTTP, "subscription-allow-http", "VIDDA_SUBSCRIPTION_ALLOW_HTTP", false, "accept http:// Subscription endpoints on any host (default: https, or http on loopback)")
	cs.Duration(&c.Timeout, "subscription-timeout", "VIDDA_SUBSCRIPTION_TIMEOUT", c.Timeout, "how long one notification may take")
	cs.Duration(&c.RetryMin, "subscription-retry-min", "VIDDA_SUBSCRIPTION_RETRY_MIN", c.RetryMin, "back-off after a failed notification, doubling each time")
	cs.Duration(&c.RetryMax, "subscription-retry-max", "VIDDA_SUBSCRIPTION_RETRY_MAX", c.RetryMax, "longest back-off between attempts")
	cs.Int(&c.ErrorAfter, "subscription-error-after", "VIDDA_SUBSCRIPTION_ERROR_AFTER", c.ErrorAfter, "failed notifications in a row that set a Subscription's status to error")
	cs.Duration(&c.Poll, "subscription-poll", "VIDDA_SUBSCRIPTION_POLL", c.Poll, "how often changes are looked for without a NOTIFY (and retries are due)")
}

// build returns the Service the HTTP API writes Subscriptions with and the
// Runner that delivers them; base is the server's public base URL.
func (s *subscriptionSettings) build(st *store.Store, types *fhir.Registry, params *search.Registry, base string, log *slog.Logger) (httpapi.Subscriptions, *subscription.Runner, error) {
	s.cfg.BaseURL = base
	if err := s.cfg.Validate(); err != nil {
		return nil, nil, err
	}
	runner := subscription.NewRunner(st, types, params, s.cfg, log)
	return subscription.NewService(types, runner.Checker(), st), runner, nil
}

// publicBase is the base URL clients reach this server at.
func publicBase(c httpapi.Config) string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	return c.Scheme() + "://" + c.Addr
}
