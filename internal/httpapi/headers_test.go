package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/httpapi"
)

const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' wss: ws:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	s := newServer(t)
	nurse := s.token(t, auth.RoleNurse, "")
	tests := []struct {
		name, path, token string
		status            int
		cache             string // Cache-Control; "" = none
	}{
		{"a FHIR search with patient data is not stored", "/fhir/Patient", nurse, 200, "no-store"},
		{"a refused FHIR request", "/fhir/Patient", "", 401, "no-store"},
		{"an unknown route", "/nowhere", "", 404, "no-store"},
		{"the public CapabilityStatement may be cached", "/fhir/metadata", "", 200, ""},
		{"health", "/healthz", "", 200, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, "GET", tt.path, tt.token, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			for name, want := range map[string]string{
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Content-Security-Policy": "frame-ancestors 'none'",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           tt.cache,
				// Plain HTTP with an http base URL: no HSTS.
				"Strict-Transport-Security": "",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestHTMLPagesGetTheStrictCSP(t *testing.T) {
	s, err := httpapi.New(bareDeps(), httpapi.DefaultConfig(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	app := s.Handler()
	app.Get("/page", func(c *fiber.Ctx) error {
		c.Type("html")
		return c.SendString("<!doctype html><p>hello")
	})
	app.Get("/own-policy", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		c.Type("html")
		return c.SendString("<p>static")
	})
	for _, tt := range []struct{ path, csp, cache string }{
		{"/page", pageCSP, "no-store"},
		{"/own-policy", "default-src 'none'", "public, max-age=3600"},
	} {
		resp, err := app.Test(httptest.NewRequest(http.MethodGet, tt.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Security-Policy"); got != tt.csp {
			t.Errorf("%s: CSP %q, want %q", tt.path, got, tt.csp)
		}
		if got := resp.Header.Get("Cache-Control"); got != tt.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tt.path, got, tt.cache)
		}
		if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", tt.path, got)
		}
	}
}

func TestHSTSBehindAnHTTPSProxy(t *testing.T) {
	cfg := httpapi.DefaultConfig()
	cfg.BaseURL = "https://vidda.example"
	s, err := httpapi.New(bareDeps(), cfg, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Handler().Test(httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q with an https base URL", got)
	}
}
