package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/care"
	"github.com/vidda/vidda/internal/db"
	"github.com/vidda/vidda/internal/db/dbtest"
)

// careRig is vidda serve with the demo clinic and one device of
// demo-patient-1 connected over MQTT, whose care rules check missed
// measurements every second.
type careRig struct {
	*rig
	dbURL string
}

// startServe runs another vidda serve on env with fresh addresses.
func startServe(t *testing.T, env map[string]string) (base string, stop func()) {
	t.Helper()
	env = maps(env)
	httpAddr := freeAddr(t)
	env["VIDDA_HTTP_ADDR"], env["VIDDA_MQTT_LISTEN"] = httpAddr, freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), io.Discard, io.Discard) }()
	waitReady(t, "http://"+httpAddr, done)
	stopped := false
	return "http://" + httpAddr, func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newCareRig(t *testing.T, serial string) *careRig {
	t.Helper()
	ctx := context.Background()
	rules, err := os.ReadFile("../../internal/care/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := t.TempDir() + "/rules.json"
	if err := os.WriteFile(rulesFile, []byte(strings.Replace(string(rules), `"check_every": "1m"`, `"check_every": "1s"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rig{env: map[string]string{
		"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_LOG_LEVEL": "warn", "VIDDA_CARE_RULES": rulesFile,
	}, replies: make(chan mqtt.Message, 64)}
	envFile := t.TempDir() + "/tokens.env"
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
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	r.env["VIDDA_HTTP_ADDR"], r.env["VIDDA_MQTT_LISTEN"] = httpAddr, mqttAddr
	r.base = "http://" + httpAddr
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
	return &careRig{rig: r, dbURL: r.env["VIDDA_DATABASE_URL"]}
}

// read publishes one compact reading and returns the stored Observation
// ids (the panel first).
func (r *careRig) read(t *testing.T, typ, values string, at time.Time) []string {
	t.Helper()
	payload := fmt.Sprintf(`{"t":%q,"type":%q,%s}`, at.UTC().Format(time.RFC3339Nano), typ, values)
	topic, body := r.publish(t, "readings", payload)
	var ack struct {
		Stored []struct {
			Observation string `json:"observation"`
		} `json:"stored"`
	}
	if err := json.Unmarshal([]byte(body), &ack); topic != "acks" || err != nil || len(ack.Stored) == 0 {
		t.Fatalf("%s: reply on %s: %s", payload, topic, body)
	}
	ids := make([]string, len(ack.Stored))
	for i, s := range ack.Stored {
		ids[i] = s.Observation
	}
	return ids
}

type storedObs struct {
	Meta struct {
		Tag []struct{ System, Code string } `json:"tag"`
	} `json:"meta"`
	Interpretation []struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"interpretation"`
	Component []struct {
		Interpretation []struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"interpretation"`
	} `json:"component"`
}

// flags returns an Observation's interpretation, its components' and
// whether it is tagged late.
func (r *careRig) flags(t *testing.T, id string) (string, []string, bool) {
	t.Helper()
	var o storedObs
	getJSON(t, r.base+"/fhir/Observation/"+id, r.nurse, 200, &o)
	flag := ""
	if len(o.Interpretation) == 1 && len(o.Interpretation[0].Coding) == 1 && o.Interpretation[0].Coding[0].System == care.SystemInterpretation {
		flag = o.Interpretation[0].Coding[0].Code
	}
	var comps []string
	for _, c := range o.Component {
		if len(c.Interpretation) == 1 {
			comps = append(comps, c.Interpretation[0].Coding[0].Code)
		}
	}
	late := slices.ContainsFunc(o.Meta.Tag, func(tg struct{ System, Code string }) bool { return tg.Code == "late" })
	return flag, comps, late
}

type e2eTask struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Priority   string `json:"priority"`
	Identifier []struct{ System, Value string }
	Code       struct {
		Coding []struct{ Code string } `json:"coding"`
	} `json:"code"`
	Focus struct{ Reference string } `json:"focus"`
	Note  []struct{ Text string }    `json:"note"`
	raw   []byte
}

func (k e2eTask) problem() string {
	for _, id := range k.Identifier {
		if id.System == care.SystemProblem {
			return id.Value
		}
	}
	return ""
}

// readings are the Observations a Task is about: focus, then the others.
func (k e2eTask) readings() []string { return care.TaskReadings(k.raw) }

func (r *careRig) tasks(t *testing.T, query string) []e2eTask {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	getJSON(t, r.base+"/fhir/Task?_count=200&"+query, r.nurse, 200, &b)
	out := make([]e2eTask, len(b.Entry))
	for i, e := range b.Entry {
		if err := json.Unmarshal(e.Resource, &out[i]); err != nil {
			t.Fatal(err)
		}
		out[i].raw = e.Resource
	}
	return out
}

// problemTasks returns demo-patient-1's Tasks of one problem.
func (r *careRig) problemTasks(t *testing.T, problem string) []e2eTask {
	t.Helper()
	var out []e2eTask
	for _, k := range r.tasks(t, "patient=demo-patient-1") {
		if k.problem() == problem {
			out = append(out, k)
		}
	}
	return out
}

// waitTasks polls until ok holds for the problem's Tasks (the engine works
// after the commit, asynchronously).
func (r *careRig) waitTasks(t *testing.T, problem string, ok func([]e2eTask) bool) []e2eTask {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ks := r.problemTasks(t, problem)
		if ok(ks) {
			return ks
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Tasks %+v", problem, ks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func send(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestCareReviewsDeviceReadings(t *testing.T) {
	r := newCareRig(t, "CARE-1")
	// A Goal of her own for temperature, written before any reading (an
	// instance learns of later Goal writes by NOTIFY, a moment after).
	goal := `{"resourceType":"Goal","id":"e2e-temp","lifecycleStatus":"active","description":{"text":"below 37.5"},
		"subject":{"reference":"Patient/demo-patient-1"},
		"target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"detailRange":{"high":{"value":37.5,"unit":"Cel","system":"http://unitsofmeasure.org","code":"Cel"}}}]}`
	if status, body := send(t, http.MethodPut, r.base+"/fhir/Goal/e2e-temp", r.nurse, goal); status != 201 && status != 200 {
		t.Fatalf("PUT Goal: %d %s", status, body)
	}
	now := time.Now()
	open := func(ks []e2eTask) []e2eTask {
		var out []e2eTask
		for _, k := range ks {
			if k.Status == "requested" {
				out = append(out, k)
			}
		}
		return out
	}

	t.Run("a reading exactly at a limit is normal and opens nothing; below it opens one Task that escalates", func(t *testing.T) {
		at92 := r.read(t, "spo2", `"value":92,"unit":"%"`, now.Add(-3*time.Minute))
		if f, _, late := r.flags(t, at92[0]); f != "N" || late {
			t.Errorf("SpO2 92: %s late %v, want N", f, late)
		}
		low := r.read(t, "spo2", `"value":91,"unit":"%"`, now.Add(-2*time.Minute))
		if f, _, _ := r.flags(t, low[0]); f != "L" {
			t.Errorf("SpO2 91: %s, want L", f)
		}
		r.waitTasks(t, "reading|59408-5", func(ks []e2eTask) bool { return len(ks) == 1 && ks[0].Priority == "urgent" })
		critical := r.read(t, "spo2", `"value":87,"unit":"%"`, now.Add(-time.Minute))
		again := r.read(t, "spo2", `"value":90,"unit":"%"`, now.Add(-30*time.Second))
		ks := r.waitTasks(t, "reading|59408-5", func(ks []e2eTask) bool { return len(ks) == 1 && len(ks[0].readings()) == 3 })
		k := ks[0]
		want := []string{"Observation/" + low[0], "Observation/" + critical[0], "Observation/" + again[0]}
		if k.Priority != "stat" || k.Status != "requested" || !slices.Equal(k.readings(), want) || k.Code.Coding[0].Code != care.TaskReview {
			t.Errorf("task %+v, want stat with readings %v", k, want)
		}
	})

	t.Run("components are judged each, the worst goes on the panel, and a Goal overrides the default", func(t *testing.T) {
		// demo-patient-1's Goal: systolic 100-160 (the default flags 180).
		// Readings are judged by the Goals in force when they were
		// measured: these are measured after the Goal was written.
		ids := r.read(t, "blood-pressure", `"systolic":170,"diastolic":85,"pulse":72,"unit":"mmHg"`, time.Now())
		f, comps, _ := r.flags(t, ids[0])
		if f != "H" || !slices.Equal(comps, []string{"H", "N"}) {
			t.Errorf("BP 170/85: %s %v, want H [H N]", f, comps)
		}
		if f, _, _ := r.flags(t, ids[1]); f != "N" {
			t.Errorf("its pulse: %s, want N", f)
		}
		at160 := r.read(t, "blood-pressure", `"systolic":160,"diastolic":85,"unit":"mmHg"`, time.Now())
		if f, _, _ := r.flags(t, at160[0]); f != "N" {
			t.Errorf("BP 160/85 (the Goal's high end): %s, want N", f)
		}
		r.waitTasks(t, "reading|85354-9", func(ks []e2eTask) bool { return len(ks) == 1 && len(ks[0].readings()) == 1 })
		temp := r.read(t, "temperature", `"value":37.5,"unit":"Cel"`, time.Now())
		if f, _, _ := r.flags(t, temp[0]); f != "N" {
			t.Errorf("37.5 °C, her Goal's high end: %s, want N (a Goal's range is inclusive)", f)
		}
	})

	t.Run("a weight gain of over 2 kg in 3 days is abnormal for a heart-failure patient", func(t *testing.T) {
		// The demo clinic weighs her daily, about 71-74 kg.
		w := r.read(t, "weight", `"value":79,"unit":"kg"`, now.Add(-time.Minute))
		if f, _, _ := r.flags(t, w[0]); f != "A" {
			t.Errorf("weight 79 kg: %s, want A", f)
		}
		r.waitTasks(t, "trend|weight-gain", func(ks []e2eTask) bool { return len(ks) == 1 && ks[0].Priority == "urgent" })
	})

	t.Run("a late reading is tagged and judged by the limits in force when it was measured", func(t *testing.T) {
		late := r.read(t, "temperature", `"value":37.8,"unit":"Cel"`, time.Now().Add(-3*time.Hour))
		current := r.read(t, "temperature", `"value":37.8,"unit":"Cel"`, time.Now())
		if f, _, tagged := r.flags(t, late[0]); f != "N" || !tagged {
			t.Errorf("37.8 measured 3 h ago, before the Goal: %s late %v, want N late", f, tagged)
		}
		if f, _, tagged := r.flags(t, current[0]); f != "H" || tagged {
			t.Errorf("37.8 now, above the Goal's 37.5: %s late %v, want H", f, tagged)
		}
	})

	t.Run("an abnormal Observation posted through the API, as its sender wrote it, opens a review Task; a PUT that makes one abnormal too", func(t *testing.T) {
		// Pretty-printed, members in another order than devices writes,
		// judged by its sender (vidda keeps what was sent).
		obs := func(id, code string) string {
			return `{
  "resourceType": "Observation",
  "id": "` + id + `",
  "subject": { "reference": "Patient/demo-patient-1" },
  "interpretation": [ { "coding": [ { "code": "` + code + `", "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation" } ] } ],
  "status": "final",
  "category": [ { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs" } ] } ],
  "code": { "coding": [ { "system": "http://loinc.org", "code": "8867-4" } ] },
  "effectiveDateTime": "` + now.Add(-time.Minute).Format(time.RFC3339) + `",
  "valueQuantity": { "value": 131, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min" }
}`
		}
		if status, body := send(t, http.MethodPut, r.base+"/fhir/Observation/e2e-hr-api", r.nurse, obs("e2e-hr-api", "H")); status != 201 {
			t.Fatalf("PUT Observation: %d %s", status, body)
		}
		r.waitTasks(t, "reading|8867-4", func(ks []e2eTask) bool {
			return len(ks) == 1 && slices.Equal(ks[0].readings(), []string{"Observation/e2e-hr-api"})
		})
		if status, body := send(t, http.MethodPut, r.base+"/fhir/Observation/e2e-hr-api2", r.nurse, obs("e2e-hr-api2", "N")); status != 201 {
			t.Fatalf("PUT Observation: %d %s", status, body)
		}
		if status, body := send(t, http.MethodPut, r.base+"/fhir/Observation/e2e-hr-api2", r.nurse, obs("e2e-hr-api2", "HH")); status != 200 {
			t.Fatalf("PUT Observation again: %d %s", status, body)
		}
		r.waitTasks(t, "reading|8867-4", func(ks []e2eTask) bool {
			return len(ks) == 1 && slices.Equal(ks[0].readings(), []string{"Observation/e2e-hr-api", "Observation/e2e-hr-api2"})
		})
	})

	t.Run("the worklist sorts stat first", func(t *testing.T) {
		ks := r.tasks(t, "status=requested&_sort=-priority")
		rank := map[string]int{"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
		for i := 1; i < len(ks); i++ {
			if rank[ks[i-1].Priority] > rank[ks[i].Priority] {
				t.Fatalf("%s before %s", ks[i-1].Priority, ks[i].Priority)
			}
		}
		if len(ks) < 2 || ks[0].Priority != "stat" {
			t.Errorf("worklist %+v", ks)
		}
	})

	t.Run("a nurse acknowledges through PUT; the next bad reading opens a new Task", func(t *testing.T) {
		k := r.problemTasks(t, "reading|59408-5")[0]
		var doc map[string]any
		getJSON(t, r.base+"/fhir/Task/"+k.ID, r.nurse, 200, &doc)
		doc["status"] = "completed"
		doc["owner"] = map[string]any{"reference": "Practitioner/demo-nurse"}
		doc["note"] = []any{map[string]any{"authorReference": map[string]any{"reference": "Practitioner/demo-nurse"}, "text": "Called her; she is fine"}}
		body, _ := json.Marshal(doc)
		putJSON(t, r.base+"/fhir/Task/"+k.ID, r.nurse, string(body))
		r.read(t, "spo2", `"value":89,"unit":"%"`, time.Now())
		ks := r.waitTasks(t, "reading|59408-5", func(ks []e2eTask) bool { return len(ks) == 2 && len(open(ks)) == 1 })
		for _, k2 := range ks {
			if k2.ID == k.ID && (k2.Status != "completed" || len(k2.readings()) != 3) {
				t.Errorf("acknowledged Task changed: %+v", k2)
			}
		}
	})

	t.Run("care.Acknowledge completes a Task for the dashboard", func(t *testing.T) {
		k := open(r.problemTasks(t, "reading|59408-5"))[0]
		pool, err := db.Open(context.Background(), db.Config{URL: r.dbURL})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		types := fhir.NewRegistry()
		st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
		wl := care.NewWorklist(st, care.NewDB(pool), types)
		if err := wl.Acknowledge(context.Background(), k.ID, "Practitioner/demo-nurse", "Seen on video"); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Status string `json:"status"`
			Owner  struct{ Reference string }
			Note   []struct{ Text string }
		}
		getJSON(t, r.base+"/fhir/Task/"+k.ID, r.nurse, 200, &got)
		if got.Status != "completed" || got.Owner.Reference != "Practitioner/demo-nurse" || got.Note[len(got.Note)-1].Text != "Seen on video" {
			t.Errorf("acknowledged: %+v", got)
		}
		if err := wl.Acknowledge(context.Background(), k.ID, "Practitioner/demo-nurse", ""); err == nil {
			t.Error("acknowledging twice succeeded")
		}
	})

	t.Run("a planned measure that does not come opens a missed-measurement Task; a reading closes it", func(t *testing.T) {
		plan := fmt.Sprintf(`{"resourceType":"CarePlan","id":"e2e-hr","status":"active","intent":"plan","subject":{"reference":"Patient/demo-patient-1"},
			"period":{"start":%q},"activity":[{"detail":{"status":"in-progress","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},
			"scheduledTiming":{"repeat":{"frequency":1,"period":1,"periodUnit":"h"}}}}]}`, time.Now().Add(-3*time.Hour).UTC().Format(time.RFC3339))
		if status, body := send(t, http.MethodPut, r.base+"/fhir/CarePlan/e2e-hr", r.nurse, plan); status != 201 && status != 200 {
			t.Fatalf("PUT CarePlan: %d %s", status, body)
		}
		ks := r.waitTasks(t, "missed|9279-1", func(ks []e2eTask) bool { return len(ks) == 1 })
		if k := ks[0]; k.Priority != "routine" || k.Code.Coding[0].Code != care.TaskMissed || k.Focus.Reference != "CarePlan/e2e-hr" {
			t.Errorf("missed Task %+v", k)
		}
		r.read(t, "respiratory-rate", `"value":16,"unit":"/min"`, time.Now())
		ks = r.waitTasks(t, "missed|9279-1", func(ks []e2eTask) bool { return len(ks) == 1 && ks[0].Status == "completed" })
		if n := ks[0].Note; len(n) == 0 || n[len(n)-1].Text != "readings resumed" {
			t.Errorf("closed missed Task %+v", ks[0])
		}
	})

	t.Run("two instances on one database still give one Task per problem", func(t *testing.T) {
		_, stop := startServe(t, r.env)
		defer stop()
		var ids []string
		for i := range 5 {
			ids = append(ids, r.read(t, "glucose", `"value":60,"unit":"mg/dL"`, time.Now().Add(time.Duration(i-10)*time.Second))[0])
		}
		ks := r.waitTasks(t, "reading|2339-0", func(ks []e2eTask) bool { return len(ks) > 0 && len(ks[0].readings()) == 5 })
		if len(ks) != 1 {
			t.Errorf("%d Tasks for one problem: %+v", len(ks), ks)
		}
		got := ks[0].readings()
		slices.Sort(got)
		want := make([]string, len(ids))
		for i, id := range ids {
			want[i] = "Observation/" + id
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("readings %v, want %v", got, want)
		}
	})
}
