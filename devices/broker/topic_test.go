package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/vidda/vidda/devices"
)

func TestPublishKind(t *testing.T) {
	tests := []struct {
		topic, device string
		want          Kind
		ok            bool
	}{
		{"vidda/v1/devices/d1/readings", "d1", KindReadings, true},
		{"vidda/v1/devices/d1/senml", "d1", KindSenML, true},
		{"vidda/v1/devices/d1/fhir", "d1", KindFHIR, true},
		{"vidda/v1/devices/d2/readings", "d1", "", false},
		{"vidda/v1/devices/d1/acks", "d1", "", false},
		{"vidda/v1/devices/d1/readings/x", "d1", "", false},
		{"vidda/v1/devices/d1", "d1", "", false},
		{"vidda/v2/devices/d1/readings", "d1", "", false},
		{"/vidda/v1/devices/d1/readings", "d1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.topic+" as "+tt.device, func(t *testing.T) {
			got, ok := publishKind(tt.topic, tt.device)
			if got != tt.want || ok != tt.ok {
				t.Errorf("publishKind = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestValidDeviceID(t *testing.T) {
	for id, want := range map[string]bool{
		"3f6c1e9a-0d2b-4c1e-9a53-1b2c3d4e5f60": true,
		"":                                     false,
		"a/b":                                  false,
		"+":                                    false,
		"#":                                    false,
		"a\x00":                                false,
		strings.Repeat("x", 129):               false,
	} {
		if got := validDeviceID(id); got != want {
			t.Errorf("validDeviceID(%q) = %v", id, got)
		}
	}
}

// A device may only ever publish under its own id.
func FuzzPublishKind(f *testing.F) {
	f.Add("vidda/v1/devices/d1/readings", "d1")
	f.Add("vidda/v1/devices/d1/readings/../../d2/readings", "d1")
	f.Fuzz(func(t *testing.T, topic, device string) {
		kind, ok := publishKind(topic, device)
		if !ok {
			return
		}
		if topic != devices.TopicPrefix+device+"/"+string(kind) {
			t.Fatalf("%q accepted for %q as %q", topic, device, kind)
		}
	})
}

func TestMochiLogsNeverCarryPackets(t *testing.T) {
	var buf bytes.Buffer
	log := newMochiLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.With("pk", "secret-with").Warn("error processing packet", "pk", "secret-payload", "client", "gw-1")
	log.Debug("publish packet rejected", "packet", "secret-debug")
	log.Info("added hook")
	out := buf.String()
	if strings.Contains(out, "secret") || !strings.Contains(out, "gw-1") || strings.Contains(out, "added hook") {
		t.Errorf("log output:\n%s", out)
	}
	_ = context.Background()
}
