package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// TestDevsimStoresExactlyWhatItsGatewaysSawAcknowledged runs vidda serve
// with its embedded broker and devsim against it, then holds the database
// to the gateways' view: the Observations of the simulated devices are
// exactly the acknowledged readings that were in range (duplicates once),
// and every malformed or out-of-range message is a dead letter.
func TestDevsimStoresExactlyWhatItsGatewaysSawAcknowledged(t *testing.T) {
	ctx := context.Background()
	httpAddr := freeAddr(t)
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{
		"VIDDA_DATABASE_URL": dbURL, "VIDDA_HTTP_ADDR": httpAddr, "VIDDA_MQTT_LISTEN": freeAddr(t),
		"VIDDA_LOG_LEVEL": "warn",
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(sctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	waitReady(t, "http://"+httpAddr, done)

	ackFile := filepath.Join(t.TempDir(), "acked.jsonl")
	out, errOut, err := runCmd(t, ctx, env, "devsim", "--homes", "5", "--rate", "200", "--duration", "3s",
		"--progress", "1s", "--acked", ackFile)
	if err != nil {
		t.Fatalf("devsim: %v\n%s", err, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{"5 homes", "acknowledged", "p50", "malformed"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if !strings.Contains(errOut, "devsim 1s: sent") {
		t.Errorf("no progress line on stderr:\n%s", errOut)
	}
	stop() // everything acknowledged is committed; stopping makes sure nothing else is

	want := map[string]bool{}
	classes := map[string]int{}
	f, err := os.Open(ackFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l ackLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("acked line %q: %v", sc.Text(), err)
		}
		classes[l.Class]++
		for _, k := range l.Keys {
			want[k] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged messages by class: %v", classes)
	// How many go out in 3 s depends on the machine's load; what is
	// checked below is that every one acknowledged is stored.
	if classes["reading"] == 0 || classes["malformed"]+classes["out-of-range"]+classes["duplicate"] == 0 {
		t.Fatalf("acknowledged %v in 3 s at 200/s", classes)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT ingest_key FROM observation WHERE ingest_key LIKE 'sim-%' AND patient_id LIKE 'sim-patient-%'`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, k := range got {
		stored[k] = true
	}
	if missing, extra := difference(want, stored), difference(stored, want); len(missing) > 0 || len(extra) > 0 || len(got) != len(stored) {
		t.Errorf("%d observations stored (%d keys) for %d acknowledged readings; missing %d %v; not acknowledged %d %v",
			len(got), len(stored), len(want), len(missing), head(missing), len(extra), head(extra))
	}

	letters := map[string]int{}
	rows, err = conn.Query(ctx, `SELECT reason, count(*) FROM dead_letter WHERE device_id LIKE 'sim-%' GROUP BY reason`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var reason string
		var n int
		if err := rows.Scan(&reason, &n); err != nil {
			t.Fatal(err)
		}
		letters[reason] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("dead letters by reason: %v", letters)
	if n := letters["malformed"] + letters["unknown-type"] + letters["wrong-unit"]; n != classes["malformed"] {
		t.Errorf("%d dead letters for %d malformed messages", n, classes["malformed"])
	}
	if letters["impossible-value"] != classes["out-of-range"] {
		t.Errorf("%d impossible-value dead letters for %d out-of-range messages", letters["impossible-value"], classes["out-of-range"])
	}
}

func TestDevsimHelpExplainsItAndNeedsADatabase(t *testing.T) {
	_, errOut, err := runCmd(t, context.Background(), nil, "devsim", "--help")
	if err != nil || !strings.Contains(errOut, "--homes") || !strings.Contains(errOut, "VIDDA_DATABASE_URL") || !strings.Contains(errOut, "PUBACK") {
		t.Errorf("devsim --help: %v\n%s", err, errOut)
	}
	_, _, err = runCmd(t, context.Background(), map[string]string{}, "devsim", "--homes", "1")
	if err == nil || !strings.Contains(err.Error(), "VIDDA_DATABASE_URL") {
		t.Errorf("without a database: %v", err)
	}
}

func TestDevsimDefaultsToTheBrokerViddaUses(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"the embedded broker's default address", map[string]string{}, "tcp://127.0.0.1:1883"},
		{"the embedded broker's configured address", map[string]string{"VIDDA_MQTT_LISTEN": "127.0.0.1:2883"}, "tcp://127.0.0.1:2883"},
		{"an external broker, without vidda's own credentials", map[string]string{
			"VIDDA_MQTT_URL": "ssl://vidda:secret@mqtt.example:8883", "VIDDA_MQTT_LISTEN": "127.0.0.1:2883",
		}, "ssl://mqtt.example:8883"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultSimBroker(envOf(tt.env)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// difference lists the keys of a that are not in b, sorted.
func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// head is the first few of a list, for a message.
func head(s []string) []string { return s[:min(len(s), 5)] }
