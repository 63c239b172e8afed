package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/auth"
)

func TestADeeplyNestedBodyIsRefusedWith400(t *testing.T) {
	s := newServer(t)
	admin := s.token(t, auth.RoleAdmin, "")
	depth := fhir.MaxDepth + 1
	body := `{"resourceType":"Patient","extension":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	r := s.do(t, "POST", "/fhir/Patient", admin, body)
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", r.status, r.body)
	}
	if code := r.outcome(t); code != fhir.IssueStructure || !strings.Contains(string(r.body), "too deeply nested") {
		t.Errorf("outcome %s: %s", code, r.body)
	}
}
