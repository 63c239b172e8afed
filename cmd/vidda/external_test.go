package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// startMosquitto runs Debian's mosquitto on a loopback port as the
// external broker, anonymous (the test plays every device).
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser %s\n"+
		"max_queued_messages 0\nmax_inflight_messages 500\nlog_dest stderr\nlog_type error\n", port, me.Username)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("probe"))
		if tok := c.Connect(); tok.WaitTimeout(time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("mosquitto did not start")
	return ""
}

func countReadings(t *testing.T, dbURL, deviceID string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, distinct int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT ingest_key) FROM observation WHERE ingest_key LIKE $1`, deviceID+"/%").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != distinct {
		t.Fatalf("%d observations for %d distinct readings: duplicates stored", n, distinct)
	}
	return n
}

// TestExternalBrokerKeepsReadingsWhileViddaIsDown is the external-mode
// crash test: Mosquitto holds the messages of vidda's persistent session
// while vidda is killed; after the restart every reading is stored once.
func TestExternalBrokerKeepsReadingsWhileViddaIsDown(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	const n = 3000
	ctx := context.Background()
	brokerAddr := startMosquitto(t)
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_LOG_LEVEL": "error",
		"VIDDA_MQTT_URL": "tcp://" + brokerAddr, "VIDDA_INSTANCE_ID": "vidda-test-1",
	}
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-3", "--serial", "EXT-1")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(out), &cred); err != nil {
		t.Fatal(err)
	}
	first := startVidda(t, env)

	gw := &gateway{acked: map[int]bool{}}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	at := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	flooded := make(chan struct{})
	go func() { gw.flood(t, brokerAddr, cred, all, at); close(flooded) }()
	deadline := time.Now().Add(30 * time.Second)
	for countReadings(t, dbURL, cred["device"]) < n/4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	before := countReadings(t, dbURL, cred["device"])
	<-flooded
	if left := gw.unacked(n); len(left) > 0 {
		t.Fatalf("mosquitto did not acknowledge %d readings", len(left))
	}
	t.Logf("killed vidda with %d of %d readings stored; mosquitto holds the rest", before, n)
	if before == n {
		t.Fatal("everything was stored before the kill; nothing was tested")
	}
	startVidda(t, env)
	deadline = time.Now().Add(60 * time.Second)
	got := 0
	for time.Now().Before(deadline) {
		if got = countReadings(t, dbURL, cred["device"]); got == n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("sent %d, stored %d, missing %d", n, got, n-got)
	if got != n {
		t.Fatalf("stored %d of %d readings after the restart", got, n)
	}
}
