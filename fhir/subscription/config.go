package subscription

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config tunes checking and delivery.
type Config struct {
	// BaseURL is the server's public base URL ("https://vidda.example");
	// notifications name resources by BaseURL/fhir/Type/id.
	BaseURL string
	// AllowHTTP accepts http endpoints on any host
	// (VIDDA_SUBSCRIPTION_ALLOW_HTTP); otherwise endpoints are https, or
	// http on a loopback host (tests and development).
	AllowHTTP bool
	// Timeout bounds one notification, connecting to answer.
	Timeout time.Duration
	// RetryMin and RetryMax bound the back-off between failed attempts:
	// RetryMin after the first failure, doubling up to RetryMax.
	RetryMin, RetryMax time.Duration
	// ErrorAfter is how many consecutive failed deliveries set a
	// subscription's status to error.
	ErrorAfter int
	// Poll is how often the change feed is read without a NOTIFY: the
	// fallback if one is lost, and the pace of retries.
	Poll time.Duration
	// Senders caps the subscriptions being delivered to at once; each
	// subscription's notifications go one at a time, in order.
	Senders int
	// Batch caps the change-feed statements one matching round takes.
	Batch int
}

// DefaultConfig returns the settings used unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Timeout:    10 * time.Second,
		RetryMin:   time.Second,
		RetryMax:   5 * time.Minute,
		ErrorAfter: 3,
		Poll:       time.Second,
		Senders:    8,
		Batch:      1000,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || u.Host == "" {
			return fmt.Errorf("subscriptions: base URL %q is not absolute", c.BaseURL)
		}
	}
	switch {
	case c.Timeout <= 0:
		return errors.New("VIDDA_SUBSCRIPTION_TIMEOUT: must be positive")
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return errors.New("VIDDA_SUBSCRIPTION_RETRY_MIN and _MAX: need 0 < min <= max")
	case c.ErrorAfter < 1:
		return errors.New("VIDDA_SUBSCRIPTION_ERROR_AFTER: must be at least 1")
	case c.Poll <= 0:
		return errors.New("VIDDA_SUBSCRIPTION_POLL: must be positive")
	case c.Senders < 1 || c.Batch < 1:
		return errors.New("subscriptions: Senders and Batch must be at least 1")
	}
	return nil
}

// backoff is the wait after the n-th consecutive failure (n >= 1).
func (c Config) backoff(n int) time.Duration {
	d := c.RetryMin
	for i := 1; i < n && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}
