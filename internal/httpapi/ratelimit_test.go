package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/httpapi"
)

// The external broker's password checks are limited per broker token: one
// token past its limit gets 429 with Retry-After and an OperationOutcome,
// another token is still served.
func TestTheBrokersPasswordChecksAreRateLimitedPerToken(t *testing.T) {
	s := newServerWith(t, func(c *httpapi.Config) { c.MQTTAuthPerMinute = 3 })
	a, b := s.token(t, auth.RoleSystem, ""), s.token(t, auth.RoleAdmin, "")
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	check := func(tok string) *response {
		return s.do(t, "POST", "/mqtt/auth/user", tok, "username=dev-x&password=guess", form...)
	}
	for i := range 3 {
		if r := check(a); r.status != http.StatusForbidden {
			t.Fatalf("check %d: status %d, want 403 (unknown device): %s", i, r.status, r.body)
		}
	}
	r := check(a)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("4th check: status %d, want 429: %s", r.status, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After = %q, want 1..60 seconds", r.header.Get("Retry-After"))
	}
	if code := r.outcome(t); code != "throttled" {
		t.Errorf("issue code %q, want throttled", code)
	}
	if r := check(b); r.status != http.StatusForbidden {
		t.Errorf("another token: status %d, want 403: %s", r.status, r.body)
	}
	// The ACL checks a broker makes per publish are not limited.
	for range 5 {
		if r := s.do(t, "POST", "/mqtt/auth/acl", a, "username=dev-x&topic=x&acc=2", form...); r.status == http.StatusTooManyRequests {
			t.Fatal("an ACL check was rate limited")
		}
	}
}
