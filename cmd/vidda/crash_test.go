package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// viddaProcess is vidda serve in a process of its own, to be killed.
type viddaProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
}

func startVidda(t *testing.T, env map[string]string) *viddaProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "VIDDA_TEST_AS_VIDDA=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &viddaProcess{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.exited })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+env["VIDDA_HTTP_ADDR"]+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("vidda did not become ready")
	return nil
}

// gateway publishes readings and remembers which ones got their PUBACK,
// as a home gateway deleting its buffer would.
type gateway struct {
	mu    sync.Mutex
	acked map[int]bool
}

func (g *gateway) flood(t *testing.T, addr string, cred map[string]string, ids []int, at time.Time) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("gw-" + cred["device"]).
		SetUsername(cred["username"]).SetPassword(cred["password"]).SetAutoReconnect(false).SetConnectRetry(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Logf("connect: %v", tok.Error())
		return
	}
	defer c.Disconnect(50)
	var wg sync.WaitGroup
	for _, id := range ids {
		payload := fmt.Sprintf(`{"id":"r-%d","t":%q,"type":"weight","value":%0.1f,"unit":"kg"}`,
			id, at.Add(time.Duration(id)*time.Second).Format(time.RFC3339), 70+float64(id%100)/10)
		tok := c.Publish(cred["topic"]+"/readings", 1, false, payload)
		wg.Go(func() {
			if tok.WaitTimeout(20*time.Second) && tok.Error() == nil {
				g.mu.Lock()
				g.acked[id] = true
				g.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func (g *gateway) unacked(n int) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for i := range n {
		if !g.acked[i] {
			out = append(out, i)
		}
	}
	return out
}

// TestKillingViddaMidFloodLosesNoAcknowledgedReading is the embedded-mode
// crash test: SIGKILL while a gateway floods, restart, the gateway re-sends
// what had no PUBACK; then every reading is stored exactly once.
func TestKillingViddaMidFloodLosesNoAcknowledgedReading(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	const n = 3000
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": freeAddr(t), "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "error",
	}
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-2", "--serial", "CRASH-1")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(out), &cred); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	gw := &gateway{acked: map[int]bool{}}

	first := startVidda(t, env)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	flooded := make(chan struct{})
	go func() { gw.flood(t, env["VIDDA_MQTT_LISTEN"], cred, all, at); close(flooded) }()
	for len(gw.unacked(n)) > n*2/3 {
		time.Sleep(2 * time.Millisecond)
	}
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	<-flooded
	ackedBeforeKill := n - len(gw.unacked(n))
	t.Logf("killed vidda with %d of %d readings acknowledged", ackedBeforeKill, n)
	if ackedBeforeKill == n {
		t.Fatal("the flood finished before the kill; nothing was tested")
	}

	startVidda(t, env)
	for round := 0; round < 5 && len(gw.unacked(n)) > 0; round++ {
		gw.flood(t, env["VIDDA_MQTT_LISTEN"], cred, gw.unacked(n), at)
	}
	if left := gw.unacked(n); len(left) > 0 {
		t.Fatalf("%d readings never acknowledged after restart", len(left))
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored, distinct int
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT ingest_key) FROM observation WHERE ingest_key LIKE $1`,
		cred["device"]+"/%").Scan(&stored, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d, acknowledged before the kill %d, stored %d, missing %d", n, ackedBeforeKill, stored, n-stored)
	if stored != n || distinct != n {
		t.Fatalf("stored %d observations (%d distinct) for %d readings", stored, distinct, n)
	}
	if !strings.HasPrefix(cred["topic"], "vidda/v1/devices/") {
		t.Fatal(cred["topic"])
	}
}
