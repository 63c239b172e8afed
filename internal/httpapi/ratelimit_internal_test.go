package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// TestRateLimiterCountsVerifiedCredentialsApartAndTheRestByAddress: a
// request marked verified (as authenticate would) counts by its token or
// session cookie; unverified ones, made-up credentials or not, count by
// address.
func TestRateLimiterCountsVerifiedCredentialsApartAndTheRestByAddress(t *testing.T) {
	app := fiber.New()
	app.Get("/x", func(c *fiber.Ctx) error {
		if c.Get("X-Test-Verified") != "" {
			c.Locals(localPrincipal, &auth.Principal{Subject: "s"})
		}
		return c.Next()
	}, RateLimiter(RateLimit{Max: 2, Window: time.Minute, SessionCookie: "vidda_session"}),
		func(c *fiber.Ctx) error { return c.SendString("ok") })
	send := func(verified bool, header, value string) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set(header, value)
		if verified {
			req.Header.Set("X-Test-Verified", "1")
		}
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			var oo map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&oo); err != nil || oo["resourceType"] != "OperationOutcome" {
				t.Errorf("429 body is not an OperationOutcome: %v", err)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
		return resp.StatusCode
	}
	steps := []struct {
		name          string
		verified      bool
		header, value string
		want          int
	}{
		{"alice's session, 1st", true, "Cookie", "vidda_session=alice", 200},
		{"alice's session, 2nd", true, "Cookie", "vidda_session=alice", 200},
		{"alice's session, 3rd is one too many", true, "Cookie", "vidda_session=alice", 429},
		{"bob's session has its own count", true, "Cookie", "vidda_session=bob", 200},
		{"a verified token has its own count", true, "Authorization", "Bearer tok-1", 200},
		{"an unverified made-up token counts by address, 1st", false, "Authorization", "Bearer made-up-1", 200},
		{"a second made-up token shares the address's count", false, "Authorization", "Bearer made-up-2", 200},
		{"a made-up cookie buys no fresh count either", false, "Cookie", "vidda_session=made-up-" + strconv.Itoa(3), 429},
	}
	for _, st := range steps {
		if got := send(st.verified, st.header, st.value); got != st.want {
			t.Errorf("%s: %d, want %d", st.name, got, st.want)
		}
	}
}
