package subscription_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/fhir/subscription"
)

func TestWhatViddaCannotServeIsRefusedWhenASubscriptionIsWritten(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	const hook = "https://ehr.example/hook"
	tests := []struct {
		name, body string
		// want is in the diagnostics of the 422.
		want string
	}{
		{"criteria on a type vidda does not serve yet", subscriptionJSON("MedicationRequest?status=active", hook, ""), "MedicationRequest, which vidda does not serve"},
		{"criteria on Subscriptions", subscriptionJSON("Subscription?status=active", hook, ""), "cannot search Subscriptions"},
		{"criteria that are an absolute URL", subscriptionJSON("https://other/Observation?code=x", hook, ""), "relative search"},
		{"criteria with an unknown parameter", subscriptionJSON("Observation?colour=red", hook, ""), "colour"},
		{"criteria with a value that does not parse", subscriptionJSON("Observation?date=yesterday", hook, ""), "date"},
		{"criteria that shape results", subscriptionJSON("Observation?code=x&_count=5", hook, ""), "_count"},
		{"a channel other than rest-hook", strings.Replace(subscriptionJSON("Observation?code=x", hook, ""), "rest-hook", "email", 1), "rest-hook"},
		{"a plain http endpoint on another host", subscriptionJSON("Observation?code=x", "http://ehr.example/hook", ""), "https"},
		{"an endpoint holding credentials", subscriptionJSON("Observation?code=x", "https://u:p@ehr.example/hook", ""), "credentials"},
		{"no endpoint", subscriptionJSON("Observation?code=x", "", ""), "endpoint"},
		{"a payload other than FHIR JSON", subscriptionJSON("Observation?code=x", hook, "text/plain"), "payload"},
		{"a header vidda sets itself", subscriptionJSON("Observation?code=x", hook, "", "X-Vidda-Event-Id: 1"), "set by vidda"},
		{"a header that is not Name: value", subscriptionJSON("Observation?code=x", hook, "", "just text"), "Name: value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.service.Create(context.Background(), r.parse(t, "Subscription", tt.body), system, store.Access{})
			var verr *fhir.ValidationError
			if !errors.As(err, &verr) || !verr.Semantic {
				t.Fatalf("err = %v, want a 422 ValidationError", err)
			}
			if !strings.Contains(verr.Error(), tt.want) {
				t.Errorf("%v does not say %q", verr, tt.want)
			}
		})
	}
}

func TestTheServerOwnsStatusAndError(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	body := strings.Replace(subscriptionJSON("Observation?code=x", "http://127.0.0.1:9/hook", ""), `"requested"`, `"active"`, 1)
	body = strings.Replace(body, `{`, `{"error":"made up",`, 1)
	st, err := r.service.Create(context.Background(), r.parse(t, "Subscription", body), system, store.Access{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(st.Content, &m); err != nil {
		t.Fatal(err)
	}
	if m["status"] != "requested" || m["error"] != nil || m["reason"] != "test" {
		t.Fatalf("stored %s", st.Content)
	}
	var page *store.Page
	q, err := r.params.Parse("Subscription", map[string][]string{"status": {"requested"}, "url": {"http://127.0.0.1:9/hook"}}, true)
	if err == nil {
		page, err = r.st.Search(context.Background(), q, store.Access{})
	}
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("search by status and url: %v %+v", err, page)
	}
}

func TestAllowHTTPAcceptsPlainHTTPEndpointsAnywhere(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.AllowHTTP = true
	r := newRig(t, cfg)
	if _, err := r.service.Create(context.Background(), r.parse(t, "Subscription",
		subscriptionJSON("Observation?code=x", "http://ehr.internal/hook", "")), system, store.Access{}); err != nil {
		t.Fatal(err)
	}
}

func TestARefusedGrantRefusesTheWrite(t *testing.T) {
	t.Parallel()
	r := newRig(t, fastConfig())
	refuse := func(typ string) (subscription.Grant, error) {
		return subscription.Grant{}, errors.New("no scope for " + typ)
	}
	_, err := r.service.Create(context.Background(), r.parse(t, "Subscription",
		subscriptionJSON("Patient?gender=female", "https://ehr.example/hook", "")), refuse, store.Access{})
	if err == nil || !strings.Contains(err.Error(), "no scope for Patient") {
		t.Fatalf("err = %v", err)
	}
}
