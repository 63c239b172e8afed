package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/internal/db/dbtest"
)

// TestADeviceReadingTravelsFromMQTTToFHIR runs vidda serve with its
// embedded broker and publishes as a home gateway would, with a real paho
// client: a PUBACK means the reading is in PostgreSQL and readable as FHIR.
func TestADeviceReadingTravelsFromMQTTToFHIR(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, "E2E-1")
	env, base, nurse, cred, opts, c, replies := r.env, r.base, r.nurse, r.cred, r.opts, r.client, r.replies
	publish := func(kind, payload string) {
		t.Helper()
		tok := c.Publish(cred["topic"]+"/"+kind, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: no PUBACK: %v", tok.Error())
		}
	}
	reply := func() (string, map[string]any) {
		t.Helper()
		select {
		case m := <-replies:
			var body map[string]any
			if err := json.Unmarshal(m.Payload(), &body); err != nil {
				t.Fatalf("reply on %s is not JSON: %s", m.Topic(), m.Payload())
			}
			return m.Topic(), body
		case <-time.After(10 * time.Second):
			t.Fatal("no reply on acks or errors")
		}
		return "", nil
	}

	at := time.Now().Add(-time.Minute).Format(time.RFC3339)
	bp := fmt.Sprintf(`{"id":"r-1","t":%q,"type":"blood-pressure","systolic":142,"diastolic":91,"pulse":71,"unit":"mmHg"}`, at)
	publish("readings", bp)
	topic, ack := reply()
	stored, _ := ack["stored"].([]any)
	if !strings.HasSuffix(topic, "/acks") || len(stored) == 0 {
		t.Fatalf("reply on %s: %v", topic, ack)
	}
	first := stored[0].(map[string]any)["observation"].(string)
	var obs map[string]any
	getJSON(t, base+"/fhir/Observation/"+first, nurse, 200, &obs)
	if obs["subject"].(map[string]any)["reference"] != "Patient/demo-patient-1" {
		t.Errorf("stored observation %v", obs)
	}

	publish("readings", bp) // a gateway re-sending after a lost PUBACK
	_, again := reply()
	dup := again["stored"].([]any)[0].(map[string]any)
	if dup["observation"] != first || dup["duplicate"] != true {
		t.Errorf("re-sent reading: %v, want a duplicate of %s", dup, first)
	}
	var bundle struct {
		Total int `json:"total"`
	}
	getJSON(t, base+"/fhir/Observation?identifier=urn:vidda:reading|"+cred["device"]+"/r-1", nurse, 200, &bundle)
	if bundle.Total != 1 {
		t.Errorf("%d observations for one reading, want 1", bundle.Total)
	}

	publish("readings", `{"id":"r-2","t":"`+at+`","type":"spo2","value":130,"unit":"%"}`)
	topic, rej := reply()
	if !strings.HasSuffix(topic, "/errors") || !strings.Contains(fmt.Sprint(rej), "impossible-value") {
		t.Fatalf("impossible SpO2: reply on %s: %v", topic, rej)
	}
	// A device switched off in the registry is refused; once it is
	// active again, an operator replays what it sent meanwhile.
	setStatus := func(status string) {
		t.Helper()
		body := fmt.Sprintf(`{"resourceType":"Device","id":%q,"status":%q,"identifier":[{"system":"urn:vidda:device-serial","value":"E2E-1"}],"patient":{"reference":"Patient/demo-patient-1"}}`, cred["device"], status)
		putJSON(t, base+"/fhir/Device/"+cred["device"], nurse, body)
	}
	setStatus("inactive")
	r.stop(t)
	sctx, cancel := context.WithCancel(ctx) // a fresh process forgets cached bindings
	done := make(chan error, 1)
	go func() { done <- run(sctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	waitReady(t, base, done)
	reconnect := mqtt.NewClient(opts)
	if tok := reconnect.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnect: %v", tok.Error())
	}
	tok := reconnect.Publish(cred["topic"]+"/readings", 1, false, `{"id":"r-3","t":"`+at+`","type":"weight","value":70.4,"unit":"kg"}`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish while inactive: %v", tok.Error())
	}
	reconnect.Disconnect(50)
	setStatus("active")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	letters, _, err := runCmd(t, ctx, env, "deadletter", "list", "--device", cred["device"])
	if err != nil || !strings.Contains(letters, "impossible-value") || !strings.Contains(letters, "inactive-device") {
		t.Fatalf("dead letters: %v %s", err, letters)
	}
	var inactive struct {
		ID int64 `json:"id"`
	}
	for _, line := range strings.Split(strings.TrimSpace(letters), "\n") {
		if strings.Contains(line, "inactive-device") {
			if err := json.Unmarshal([]byte(line), &inactive); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, _, err := runCmd(t, ctx, env, "deadletter", "replay", "--id", fmt.Sprint(inactive.ID))
	if err != nil || !strings.Contains(out, "observation") {
		t.Fatalf("replay: %v %s", err, out)
	}
	if _, _, err := runCmd(t, ctx, env, "deadletter", "replay", "--id", fmt.Sprint(inactive.ID-1)); err == nil {
		t.Fatal("replaying the impossible SpO2 stored it")
	}
	// The replayed reading was judged like any other.
	conn, err := pgx.Connect(ctx, env["VIDDA_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var content string
	if err := conn.QueryRow(ctx, `SELECT content FROM observation WHERE content LIKE '%70.4%'`).Scan(&content); err != nil {
		t.Fatalf("the replayed weight: %v", err)
	}
	if !strings.Contains(content, `"interpretation"`) {
		t.Errorf("the replayed weight has no interpretation: %s", content)
	}
}

func putJSON(t *testing.T, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %d %s", url, resp.StatusCode, b)
	}
}

// rig is vidda serve with its embedded broker, the demo clinic, and one
// registered device connected with a real paho client that listens on its
// acks and errors topics.
type rig struct {
	env     map[string]string
	base    string
	nurse   string
	cred    map[string]string
	opts    *mqtt.ClientOptions
	client  mqtt.Client
	replies chan mqtt.Message
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// stop ends vidda serve and checks it exited cleanly; once.
func (r *rig) stop(t *testing.T) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

func newRig(t *testing.T, serial string) *rig {
	t.Helper()
	ctx := context.Background()
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	envFile := t.TempDir() + "/tokens.env"
	r := &rig{env: map[string]string{
		"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_HTTP_ADDR": httpAddr, "VIDDA_MQTT_LISTEN": mqttAddr,
		"VIDDA_LOG_LEVEL": "warn",
	}, base: "http://" + httpAddr, replies: make(chan mqtt.Message, 64)}
	if _, _, err := runCmd(t, ctx, r.env, "seed", "--env-file", envFile); err != nil {
		t.Fatal(err)
	}
	r.nurse = readEnvFile(t, envFile)["NURSE_TOKEN"]
	out, _, err := runCmd(t, ctx, r.env, "device", "add", "--patient", "demo-patient-1", "--serial", serial)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &r.cred); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- run(sctx, []string{"serve"}, envOf(r.env), io.Discard, io.Discard) }()
	waitReady(t, r.base, r.done)
	r.opts = mqtt.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("gw-" + r.cred["device"]).
		SetUsername(r.cred["username"]).SetPassword(r.cred["password"]).SetCleanSession(true).SetAutoReconnect(false)
	r.client = mqtt.NewClient(r.opts)
	if tok := r.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() {
		r.client.Disconnect(50)
		r.stop(t)
	})
	for _, sub := range []string{"/acks", "/errors"} {
		tok := r.client.Subscribe(r.cred["topic"]+sub, 1, func(_ mqtt.Client, m mqtt.Message) { r.replies <- m })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", sub, tok.Error())
		}
	}
	return r
}

// publish sends a payload with QoS 1 and returns the reply: its topic's
// last level (acks or errors) and body.
func (r *rig) publish(t *testing.T, kind, payload string) (string, string) {
	t.Helper()
	tok := r.client.Publish(r.cred["topic"]+"/"+kind, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: no PUBACK: %v", tok.Error())
	}
	select {
	case m := <-r.replies:
		return m.Topic()[strings.LastIndex(m.Topic(), "/")+1:], string(m.Payload())
	case <-time.After(10 * time.Second):
		t.Fatal("no reply on acks or errors")
	}
	return "", ""
}
