package broker

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"the zero config means the defaults", Config{}, true},
		{"a TLS listener needs both files", Config{TLSCertFile: "cert.pem"}, false},
		{"a key alone is not enough either", Config{TLSKeyFile: "key.pem"}, false},
		{"the in-flight window fits MQTT's Receive Maximum", Config{MaxInFlight: 65535}, true},
		{"a larger window does not", Config{MaxInFlight: 65536}, false},
		{"a negative window is refused", Config{MaxInFlight: -1}, false},
		{"a negative timeout is refused", Config{WriteTimeout: -time.Second}, false},
		{"a negative auth cache TTL turns the cache off", Config{AuthCacheTTL: -1}, true},
		{"the listen address needs a port", Config{Listen: "localhost"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	if _, err := New(Config{MaxInFlight: -1}, &registry{}, make(held), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
	if _, err := New(Config{}, nil, make(held), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no credentials: %v", err)
	}
	if _, err := New(Config{TLSCertFile: "missing.pem", TLSKeyFile: "missing.key"}, &registry{}, make(held), nil); err == nil {
		t.Error("missing TLS files accepted")
	}
}
