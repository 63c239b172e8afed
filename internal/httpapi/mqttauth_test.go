package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
)

// An external broker asks vidda who may connect and which topics each
// client may use; devices get only their own topics.
func TestTheExternalBrokerAuthEndpoint(t *testing.T) {
	s := newServer(t)
	secret, hash, err := auth.NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.PutDeviceCredential(context.Background(), "dev-a", "dev-a", hash); err != nil {
		t.Fatal(err)
	}
	system := s.token(t, auth.RoleSystem, "")
	nurse := s.token(t, auth.RoleNurse, "")
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	json := []string{"Content-Type", "application/json"}
	tests := []struct {
		name, path, token, body string
		headers                 []string
		status                  int
	}{
		{"a device with its password may connect", "/mqtt/auth/user", system, "username=dev-a&password=" + secret, form, 200},
		{"a wrong password may not", "/mqtt/auth/user", system, "username=dev-a&password=nope", form, 403},
		{"an unknown device may not", "/mqtt/auth/user", system, `{"username":"dev-x","password":"p"}`, json, 403},
		{"vidda's own account may connect", "/mqtt/auth/user", system, `{"username":"vidda-svc","password":"svc-secret"}`, json, 200},
		{"a device publishes its own readings (EMQX)", "/mqtt/auth/acl", system, `{"username":"dev-a","topic":"vidda/v1/devices/dev-a/readings","action":"publish"}`, json, 200},
		{"a device may not publish as another (mosquitto-go-auth)", "/mqtt/auth/acl", system, "username=dev-a&topic=vidda/v1/devices/dev-b/readings&acc=2", form, 403},
		{"a device may not publish its own acks", "/mqtt/auth/acl", system, "username=dev-a&topic=vidda/v1/devices/dev-a/acks&acc=2", form, 403},
		{"a device subscribes to its own acks", "/mqtt/auth/acl", system, "username=dev-a&topic=vidda/v1/devices/dev-a/acks&acc=4", form, 200},
		{"a device may not subscribe to a wildcard", "/mqtt/auth/acl", system, "username=dev-a&topic=vidda/v1/devices/%2B/acks&acc=4", form, 403},
		{"vidda reads the shared subscription", "/mqtt/auth/acl", system, "username=vidda-svc&topic=$share/vidda/vidda/v1/devices/%2B/readings&acc=4", form, 200},
		{"vidda publishes a device's acks", "/mqtt/auth/acl", system, "username=vidda-svc&topic=vidda/v1/devices/dev-a/acks&acc=2", form, 200},
		{"only vidda is a superuser", "/mqtt/auth/superuser", system, "username=dev-a", form, 403},
		{"without a token the broker is refused", "/mqtt/auth/user", "", "username=dev-a&password=" + secret, form, 401},
		{"a nurse's token is not the broker's", "/mqtt/auth/user", nurse, "username=dev-a&password=" + secret, form, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, "POST", tt.path, tt.token, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
		})
	}
}

func TestDeadLettersAreForAdminsOnly(t *testing.T) {
	s := newServer(t)
	_, err := s.st.Ingest(context.Background(), nil, []store.DeadLetter{{
		ReceivedAt: time.Now(), DeviceID: "dev-a", Topic: "vidda/v1/devices/dev-a/readings", Payload: []byte("{oops"), Reason: "malformed", Detail: "bad JSON",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/admin/deadletters?device=dev-a", s.token(t, auth.RoleNurse, ""), ""); r.status != 403 {
		t.Fatalf("nurse: %d", r.status)
	}
	r := s.do(t, "GET", "/admin/deadletters?device=dev-a", s.token(t, auth.RoleAdmin, ""), "")
	if r.status != 200 || !strings.Contains(string(r.body), `"reason":"malformed"`) || !strings.Contains(string(r.body), "{oops") {
		t.Fatalf("admin: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/admin/deadletters?limit=0", s.token(t, auth.RoleAdmin, ""), ""); r.status != 400 {
		t.Fatalf("bad limit: %d", r.status)
	}
}
