package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/db"
)

// seed loads a small demo clinic with fixed ids, so running it again
// changes nothing but the newest readings, and prints demo logins.
func seed(ctx context.Context, e *env, args []string) error {
	var (
		c        common
		addr     string
		mqttAddr string
		envFile  string
		tokenTTL time.Duration
	)
	cs := config.New("seed", e.getenv)
	bindCommon(cs, &c)
	cs.String(&addr, "http-addr", "VIDDA_HTTP_ADDR", "127.0.0.1:8080", "where vidda serve will listen, for the printed URLs")
	cs.String(&mqttAddr, "mqtt-listen", "VIDDA_MQTT_LISTEN", "127.0.0.1:1883", "where the embedded broker will listen, for the printout")
	cs.String(&envFile, "env-file", "", "", "also write the demo tokens as NAME=token lines to this file")
	cs.Duration(&tokenTTL, "token-ttl", "", 12*time.Hour, "validity of the printed demo tokens")
	if err := cs.Parse(args); err != nil {
		return err
	}
	log, pool, err := c.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.Migrate(ctx, pool, log); err != nil {
		return err
	}
	n, err := loadDemo(ctx, pool, log, time.Now())
	if err != nil {
		return err
	}
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		return err
	}
	logins := []struct {
		env, who string
		req      auth.TokenRequest
	}{
		{"NURSE_TOKEN", "nurse Ingrid Berg", auth.TokenRequest{Subject: "demo-nurse", Role: auth.RoleNurse, PractitionerID: "demo-nurse"}},
		{"CLINICIAN_TOKEN", "clinician Dr Lars Holm", auth.TokenRequest{Subject: "demo-clinician", Role: auth.RoleClinician, PractitionerID: "demo-clinician"}},
		{"PATIENT_TOKEN", "patient Astrid Nilsson", auth.TokenRequest{Subject: "demo-patient-1", Role: auth.RolePatient, PatientID: "demo-patient-1"}},
		{"ADMIN_TOKEN", "admin", auth.TokenRequest{Subject: "demo-admin", Role: auth.RoleAdmin}},
	}
	base := "http://" + addr
	var out, file strings.Builder
	fmt.Fprintf(&out, "\nVidda demo clinic loaded (%d resources): 3 patients, a nurse, a clinician, 5 devices, a week of readings.\n\n", n)
	fmt.Fprintf(&out, "  FHIR base      %s/fhir   (CapabilityStatement: %s/fhir/metadata)\n", base, base)
	fmt.Fprintf(&out, "  Health         %s/healthz  %s/readyz\n", base, base)
	fmt.Fprintf(&out, "  MQTT           %s (embedded broker; a device: vidda device add --patient demo-patient-1 --serial S)\n", mqttAddr)
	fmt.Fprintf(&out, "  Dashboard      %s/app   (nurse and clinician: worklist, patients, start a video visit)\n", base)
	fmt.Fprintf(&out, "  Patient view   %s/me    (patient: own readings, upcoming video visits)\n\n", base)
	fmt.Fprintf(&out, "Demo tokens (valid %s; new ones: vidda token --role nurse):\n", tokenTTL)
	for _, l := range logins {
		l.req.TTL = tokenTTL
		tok, err := keys.Mint(ctx, l.req)
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "  %-24s export %s=%s\n", l.who, l.env, tok)
		fmt.Fprintf(&file, "%s=%s\n", l.env, tok)
	}
	if err := seedUsers(ctx, pool, &out, base); err != nil {
		return err
	}
	fmt.Fprintf(&out, "\nTry:  curl -H \"Authorization: Bearer $NURSE_TOKEN\" '%s/fhir/Patient?_pretty=true'\n", base)
	fmt.Fprintf(&out, "      curl -H \"Authorization: Bearer $NURSE_TOKEN\" '%s/fhir/Observation?patient=demo-patient-1&code=http://loinc.org|85354-9'\n\n", base)
	if envFile != "" {
		if err := os.WriteFile(envFile, []byte(file.String()), 0o600); err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
	}
	_, err = fmt.Fprint(e.stdout, out.String())
	return err
}

// loadDemo writes the demo clinic through the store (so it is validated
// and indexed like any client's data) and returns how many resources.
func loadDemo(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, now time.Time) (int, error) {
	types := fhir.NewRegistry()
	st := store.New(pool, types, search.NewRegistry(time.UTC), store.DefaultConfig(), log)
	n := 0
	put := func(typ, id string, body map[string]any) error {
		if err := putResource(ctx, st, types, typ, id, body); err != nil {
			return fmt.Errorf("demo %w", err)
		}
		n++
		return nil
	}
	for _, r := range demoClinic() {
		if err := put(r.typ, r.id, r.body); err != nil {
			return n, err
		}
	}
	for _, r := range demoReadings(now) {
		if err := put("Observation", r.id, r.body); err != nil {
			return n, err
		}
	}
	return n, nil
}

// putResource writes body as typ/id with a FHIR update (update as create),
// so fixed ids make loading again idempotent.
func putResource(ctx context.Context, st *store.Store, types *fhir.Registry, typ, id string, body map[string]any) error {
	body["resourceType"], body["id"] = typ, id
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", typ, id, err)
	}
	res, err := types.Parse(typ, raw)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", typ, id, err)
	}
	if _, _, err := st.Update(ctx, res, id, 0, store.Access{}); err != nil {
		return fmt.Errorf("%s/%s: %w", typ, id, err)
	}
	return nil
}

type demoResource struct {
	typ, id string
	body    map[string]any
}

func ident(system, value string) []any {
	return []any{map[string]any{"system": system, "value": value}}
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

func demoClinic() []demoResource {
	const nin = "urn:oid:2.16.578.1.12.4.1.4.1" // Norwegian national identity number
	person := func(family, given string) []any {
		return []any{map[string]any{"family": family, "given": []any{given}}}
	}
	patient := func(id, family, given, gender, birth, fnr string) demoResource {
		return demoResource{"Patient", id, map[string]any{
			"identifier": ident(nin, fnr), "active": true, "name": person(family, given),
			"gender": gender, "birthDate": birth,
			"managingOrganization": ref("Organization/demo-org"),
			"generalPractitioner":  []any{ref("Practitioner/demo-clinician")},
		}}
	}
	device := func(id, serial, name, patientID string) demoResource {
		return demoResource{"Device", id, map[string]any{
			"identifier": ident("urn:vidda:device-serial", serial), "status": "active",
			"deviceName": []any{map[string]any{"name": name, "type": "user-friendly-name"}},
			"patient":    ref("Patient/" + patientID), "owner": ref("Organization/demo-org"),
		}}
	}
	role := func(id, practitioner, code, display string) demoResource {
		return demoResource{"PractitionerRole", id, map[string]any{
			"active": true, "practitioner": ref("Practitioner/" + practitioner), "organization": ref("Organization/demo-org"),
			"code": []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code, "display": display}}}},
		}}
	}
	return []demoResource{
		{"Organization", "demo-org", map[string]any{
			"name": "Vidda Demo Home Care", "active": true,
			"identifier": ident("urn:vidda:org", "demo"),
		}},
		{"Practitioner", "demo-nurse", map[string]any{
			"name": person("Berg", "Ingrid"), "active": true,
			"identifier": ident("urn:vidda:staff", "ingrid.berg"),
		}},
		{"Practitioner", "demo-clinician", map[string]any{
			"name": person("Holm", "Lars"), "active": true,
			"identifier": ident("urn:vidda:staff", "lars.holm"),
		}},
		patient("demo-patient-1", "Nilsson", "Astrid", "female", "1941-03-12", "12034112345"),
		patient("demo-patient-2", "Hansen", "Olav", "male", "1948-09-30", "30094854321"),
		patient("demo-patient-3", "Lind", "Karin", "female", "1956-01-07", "07015667890"),
		// The nurse and the clinician reach the clinic's patients through
		// their roles at the organization managing the records, and
		// Astrid's care team names them too (internal/auth: care teams).
		role("demo-nurse-role", "demo-nurse", "224535009", "Registered nurse"),
		role("demo-clinician-role", "demo-clinician", "309343006", "Physician"),
		{"CareTeam", "demo-careteam-1", map[string]any{
			"status": "active", "name": "Astrid Nilsson's home monitoring team",
			"subject": ref("Patient/demo-patient-1"), "managingOrganization": []any{ref("Organization/demo-org")},
			"participant": []any{
				map[string]any{"member": ref("Practitioner/demo-nurse")},
				map[string]any{"member": ref("Practitioner/demo-clinician")},
			},
		}},
		device("demo-cuff-1", "BPM-1001", "Blood pressure cuff", "demo-patient-1"),
		device("demo-scale-1", "SCL-2001", "Bathroom scale", "demo-patient-1"),
		device("demo-oximeter-2", "OXI-3001", "Pulse oximeter", "demo-patient-2"),
		device("demo-cuff-3", "BPM-1002", "Blood pressure cuff", "demo-patient-3"),
		device("demo-glucometer-3", "GLU-4001", "Glucose meter", "demo-patient-3"),
		// Clinical review (internal/care): personal limits over the
		// clinic's defaults, and what each patient measures how often.
		demoGoal("demo-goal-p1-sbp", "demo-patient-1", "8480-6", "Systolic blood pressure 100-160 mmHg", "mm[Hg]", 100, 160),
		demoGoal("demo-goal-p2-spo2", "demo-patient-2", "59408-5", "SpO2 at least 88 % (COPD)", "%", 88, 100),
		demoPlan("demo-careplan-1", "demo-patient-1", "84114007", "Heart failure", map[string][2]int{"29463-7": {1, 1}, "85354-9": {2, 1}}),
		demoPlan("demo-careplan-2", "demo-patient-2", "13645005", "Chronic obstructive lung disease", map[string][2]int{"59408-5": {1, 1}}),
	}
}

// demoGoal is a patient's own normal range of one measure.
func demoGoal(id, patientID, loinc, text, unit string, low, high float64) demoResource {
	qty := func(v float64) map[string]any {
		return map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
	}
	return demoResource{"Goal", id, map[string]any{
		"lifecycleStatus": "active", "description": map[string]any{"text": text},
		"subject": ref("Patient/" + patientID),
		"target": []any{map[string]any{
			"measure":     map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": loinc}}},
			"detailRange": map[string]any{"low": qty(low), "high": qty(high)},
		}},
	}}
}

// demoPlan is a home-monitoring plan: LOINC code → {times, per days}.
func demoPlan(id, patientID, snomed, condition string, measures map[string][2]int) demoResource {
	var activities []any
	for _, code := range []string{"29463-7", "85354-9", "59408-5"} {
		m, ok := measures[code]
		if !ok {
			continue
		}
		activities = append(activities, map[string]any{"detail": map[string]any{
			"status": "in-progress",
			"code":   map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
			"scheduledTiming": map[string]any{"repeat": map[string]any{
				"frequency": m[0], "period": m[1], "periodUnit": "d",
			}},
		}})
	}
	return demoResource{"CarePlan", id, map[string]any{
		"status": "active", "intent": "plan", "title": "Home monitoring: " + condition,
		"subject":  ref("Patient/" + patientID),
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": snomed, "display": condition}}}},
		"activity": activities,
	}}
}

// demoReadings is a week of plausible home measurements ending today.
func demoReadings(now time.Time) []demoResource {
	rng := rand.New(rand.NewPCG(7, 11)) //nolint:gosec // fixed seed: the demo must look the same every time
	day0 := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -6)
	var out []demoResource
	obs := func(id, patientID, deviceID string, at time.Time, code, display string, extra map[string]any) {
		body := map[string]any{
			"status": "final",
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs",
			}}}},
			"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code, "display": display}}, "text": display},
			"subject":           ref("Patient/" + patientID),
			"device":            ref("Device/" + deviceID),
			"effectiveDateTime": at.Format(time.RFC3339),
			"identifier":        ident("urn:vidda:reading", id),
		}
		for k, v := range extra {
			body[k] = v
		}
		out = append(out, demoResource{"Observation", id, body})
	}
	qty := func(v float64, unit string) map[string]any {
		return map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
	}
	component := func(code, display string, v float64) map[string]any {
		return map[string]any{
			"code":          map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code, "display": display}}},
			"valueQuantity": qty(v, "mm[Hg]"),
		}
	}
	bp := func(id, patientID, deviceID string, at time.Time, sys, dia float64) {
		obs(id, patientID, deviceID, at, "85354-9", "Blood pressure panel", map[string]any{
			"component": []any{component("8480-6", "Systolic blood pressure", sys), component("8462-4", "Diastolic blood pressure", dia)},
		})
	}
	for d := range 7 {
		day := day0.AddDate(0, 0, d)
		if day.After(now) {
			break
		}
		morning, evening := day.Add(7*time.Hour+12*time.Minute), day.Add(19*time.Hour+40*time.Minute)
		tag := fmt.Sprintf("d%d", d)
		// Astrid: heart failure, weight creeping up over the week, BP twice daily.
		bp("demo-p1-bp-am-"+tag, "demo-patient-1", "demo-cuff-1", morning, float64(138+rng.IntN(12)), float64(84+rng.IntN(8)))
		bp("demo-p1-bp-pm-"+tag, "demo-patient-1", "demo-cuff-1", evening, float64(132+rng.IntN(12)), float64(80+rng.IntN(8)))
		obs("demo-p1-wt-"+tag, "demo-patient-1", "demo-scale-1", morning.Add(-5*time.Minute), "29463-7", "Body weight",
			map[string]any{"valueQuantity": qty(71.2+0.35*float64(d), "kg")})
		// Olav: COPD, SpO2 drifting low mid-week.
		spo2 := 95 - rng.IntN(3)
		if d == 4 {
			spo2 = 90
		}
		obs("demo-p2-spo2-"+tag, "demo-patient-2", "demo-oximeter-2", morning.Add(20*time.Minute), "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry",
			map[string]any{"valueQuantity": qty(float64(spo2), "%")})
		obs("demo-p2-hr-"+tag, "demo-patient-2", "demo-oximeter-2", morning.Add(20*time.Minute), "8867-4", "Heart rate",
			map[string]any{"valueQuantity": qty(float64(72+rng.IntN(14)), "/min")})
		// Karin: diabetes, fasting glucose and BP.
		obs("demo-p3-glu-"+tag, "demo-patient-3", "demo-glucometer-3", morning.Add(-30*time.Minute), "2339-0", "Glucose [Mass/volume] in Blood",
			map[string]any{"valueQuantity": qty(float64(105+rng.IntN(40)), "mg/dL")})
		bp("demo-p3-bp-"+tag, "demo-patient-3", "demo-cuff-3", morning, float64(126+rng.IntN(14)), float64(78+rng.IntN(8)))
	}
	return out
}
