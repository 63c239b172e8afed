package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// TestReadyzFollowsTheExternalBroker stops Mosquitto under a running vidda:
// /readyz turns 503 naming the broker, and 200 again once vidda has
// reconnected by itself.
func TestReadyzFollowsTheExternalBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto and vidda")
	}
	mq := newMosquitto(t, false)
	addr := freeAddr(t)
	startVidda(t, map[string]string{
		"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": addr, "VIDDA_LOG_LEVEL": "error",
		"VIDDA_MQTT_URL": "tcp://" + mq.addr, "VIDDA_INSTANCE_ID": "vidda-ready-1",
	})
	if _, body := waitReadyz(t, addr, 200, 10*time.Second); body["broker"] != "ok" || body["database"] != "ok" {
		t.Fatalf("ready with %v, want database and broker ok", body)
	}

	mq.stop(syscall.SIGTERM)
	down, body := waitReadyz(t, addr, 503, 10*time.Second)
	if body["broker"] != "unreachable" || body["database"] != "ok" {
		t.Errorf("without the broker /readyz says %v, want the broker named", body)
	}
	mq.start()
	up, body := waitReadyz(t, addr, 200, 30*time.Second)
	if body["broker"] != "ok" {
		t.Errorf("after the broker came back /readyz says %v", body)
	}
	t.Logf("broker stopped: 503 after %v; started again: 200 after %v", down.Round(time.Millisecond), up.Round(time.Millisecond))
}
