package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	s := New("serve", env(map[string]string{"VIDDA_HTTP_ADDR": "127.0.0.1:9000", "VIDDA_T": "3s"}))
	var addr string
	var d time.Duration
	s.String(&addr, "http-addr", "VIDDA_HTTP_ADDR", "127.0.0.1:8080", "listen address")
	s.Duration(&d, "t", "VIDDA_T", time.Second, "a timeout")
	if err := s.Parse([]string{"-http-addr", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1:7000" || d != 3*time.Second {
		t.Fatalf("got %q %v", addr, d)
	}
}

func TestABadEnvironmentValueNamesTheVariable(t *testing.T) {
	s := New("serve", env(map[string]string{"VIDDA_N": "ten"}))
	var n int
	s.Int(&n, "n", "VIDDA_N", 1, "a number")
	err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "VIDDA_N") {
		t.Fatalf("err = %v, want one naming VIDDA_N", err)
	}
}

func TestSecretsAreMaskedInTheLogLine(t *testing.T) {
	s := New("serve", env(map[string]string{"VIDDA_DATABASE_URL": "postgres://u:hunter2@db:5432/vidda"}))
	var u string
	s.Secret(&u, "database-url", "VIDDA_DATABASE_URL", "", "database")
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	line := strings.Join(strings.Fields(strings.Trim(strings.ReplaceAll(fmtAll(s.Masked()), "\n", " "), " ")), " ")
	if strings.Contains(line, "hunter2") || !strings.Contains(line, "db:5432") {
		t.Fatalf("masked config %q", line)
	}
}

func fmtAll(kv []any) string {
	var b strings.Builder
	for _, v := range kv {
		b.WriteString(v.(string) + " ")
	}
	return b.String()
}

func TestMaskKeepsWhereAndHidesSecrets(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:hunter2@db:5432/vidda", "postgres://u:xxxxx@db:5432/vidda"},
		{"postgres://u@db/vidda?sslmode=require&password=hunter2", "postgres://u@db/vidda?password=xxxxx&sslmode=require"},
		{"postgres://db/vidda?sslpassword=hunter2", "postgres://db/vidda?sslpassword=xxxxx"},
		{"tcp://vidda:hunter2@broker:1883", "tcp://vidda:xxxxx@broker:1883"},
		{"host=db user=u password=hunter2", "xxxxx"},
		{"postgres://u:hunter2@db/vidda?%zz", "xxxxx"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := mask(tt.in); got != tt.want || strings.Contains(got, "hunter2") {
			t.Errorf("mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
