package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/devices/loadgen"
)

func benchHome() home {
	return home{patient: "bench-home-0007", Home: loadgen.Home{DeviceID: "bench-dev-0007", Username: "bench-dev-0007"}}
}

func TestRowsAreWhatViddaStoresForAReading(t *testing.T) {
	m, err := newRowMaker()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 7, 31, 0, 0, time.UTC)
	row, err := m.row(loadgen.AppendReading(nil, "t-", 0, at), "bench-dev-0007", "bench-home-0007", at)
	if err != nil {
		t.Fatal(err)
	}
	if len(row) != len(m.cols) || !slices.Contains(m.cols, "ingest_key") || !slices.Contains(m.cols, "date_start") {
		t.Fatalf("%d values for columns %v", len(row), m.cols)
	}
	var obs map[string]any
	if err := json.Unmarshal(row[4].([]byte), &obs); err != nil {
		t.Fatal(err)
	}
	meta, _ := obs["meta"].(map[string]any)
	if obs["id"] != row[0] || meta["versionId"] != "1" || *row[3].(*string) != "bench-home-0007" {
		t.Errorf("id %v, meta %v, patient %v", obs["id"], meta, row[3])
	}
	if row[5] != "bench-dev-0007/t-000000000" {
		t.Errorf("ingest key %q", row[5])
	}
}

func TestRowTemplateCopiesDifferOnlyInIDAndReadingID(t *testing.T) {
	m, err := newRowMaker()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := newRowTemplate(m, benchHome(), "c-", 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	row := tmpl.copyOf("c-", 123_456_789)
	content := string(row[4].([]byte))
	var obs map[string]any
	if err := json.Unmarshal(row[4].([]byte), &obs); err != nil {
		t.Fatalf("copy is not JSON: %v\n%s", err, content)
	}
	if obs["id"] != row[0] || row[0] == tmpl.row[0] {
		t.Errorf("copy has id %v in its content, %v in its row (template %v)", obs["id"], row[0], tmpl.row[0])
	}
	key := "bench-dev-0007/c-123456789"
	if row[5] != key || !strings.Contains(content, `"value":"`+key+`"`) || strings.Contains(content, "c-000000003") {
		t.Errorf("copy's key %v; content %s", row[5], content)
	}
	found := false
	for i := 6; i < len(row); i++ {
		if tokens, ok := row[i].([]string); ok && slices.Contains(tokens, "*|"+key) {
			found = true
		}
	}
	if !found {
		t.Errorf("no identifier token names the copy's key: %v", row[6:])
	}
	if len(content) != len(tmpl.content) {
		t.Errorf("copy is %d bytes, template %d", len(content), len(tmpl.content))
	}
	if string(tmpl.content) == content || tmpl.row[5] == row[5] {
		t.Error("copying changed the template")
	}
}

func TestCommitStatsAreTheDifferenceOfTwoScrapes(t *testing.T) {
	a := ingestMetrics{ok: true, commits: 10, readings: 2000, secs: 0.5}
	b := ingestMetrics{ok: true, commits: 30, readings: 7000, secs: 1.5}
	got := b.since(a)
	if got == nil || got.Commits != 20 || got.MeanReadings != 250 || got.MeanCommitMs != 50 {
		t.Fatalf("since = %+v", got)
	}
	if (ingestMetrics{}).since(a) != nil {
		t.Fatal("a failed scrape gave commit stats")
	}
}

func TestLostReadingsFailTheRunAndMissedTargetsDoNot(t *testing.T) {
	r := mqttReport{}
	r.Flood = ingestRun{Sent: 100, Confirmed: 100, Stored: 100}
	r.Flood.PerSecond = 10 // far below target
	r.judge()
	if len(r.Problems) != 0 || r.Targets[0].Met {
		t.Fatalf("problems %v, targets %+v", r.Problems, r.Targets)
	}
	r = mqttReport{}
	r.Flood = ingestRun{Sent: 100, Confirmed: 100, Stored: 99}
	r.ExternalFlood = ingestRun{Sent: 10, BrokerAcks: 10, Confirmed: 5, Stored: 9}
	r.judge()
	if len(r.Problems) != 2 || !strings.Contains(r.Problems[0], "LOST") || !strings.Contains(r.Problems[1], "mosquitto acknowledged 10") {
		t.Fatalf("problems %v", r.Problems)
	}
}

func TestMQTTFlagsNeedADatabaseAndSaneValues(t *testing.T) {
	env := func(string) string { return "" }
	if _, err := parseMQTTFlags(nil, env, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "VIDDA_BENCH_DATABASE_URL") {
		t.Fatalf("no database: %v", err)
	}
	if _, err := parseMQTTFlags([]string{"--window", "0"}, env, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "--window") {
		t.Fatalf("window 0: %v", err)
	}
}
