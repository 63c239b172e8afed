package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/httpapi"
)

// unavailable is a verifier whose identity provider has not answered yet.
type unavailable struct{}

func (unavailable) Verify(context.Context, string) (*auth.Principal, error) {
	return nil, fmt.Errorf("%w: the identity provider's keys are not loaded yet", auth.ErrUnavailable)
}

func TestAnUnreachableIdentityProviderIs503NotAWrongToken(t *testing.T) {
	deps := httpapi.Deps{Types: fhir.NewRegistry(), Params: search.NewRegistry(time.UTC), Verifier: unavailable{}}
	s, err := httpapi.New(deps, httpapi.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/fhir/Patient", nil)
	req.Header.Set("Authorization", "Bearer abc.def.ghi")
	resp, err := s.Handler().Test(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
}
