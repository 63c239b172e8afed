package web

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// TestThePagesShowTheLimitsTheEngineJudgesBy holds the patient page and
// /me to the care engine: for Goals that the engine reads in ways easy to
// get wrong (an updated Goal, a Goal by another code of the measure, one
// in another unit, one that starts tomorrow, one end only), every value a
// page calls within the limits is one the Interpreter flags N, and every
// value it marks out is one the Interpreter flags.
func TestThePagesShowTheLimitsTheEngineJudgesBy(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	goal := func(id, code string, low, high map[string]any, extra map[string]any) {
		rng := map[string]any{}
		if low != nil {
			rng["low"] = low
		}
		if high != nil {
			rng["high"] = high
		}
		g := map[string]any{
			"lifecycleStatus": "active", "description": map[string]any{"text": "limits"}, "subject": ref("Patient/p1"),
			"target": []any{map[string]any{"measure": loinc(code), "detailRange": rng}},
		}
		for k, v := range extra {
			g[k] = v
		}
		h.put("Goal", id, g)
	}
	goal("sys", "8480-6", qty(100, "mm[Hg]"), qty(140, "mm[Hg]"), nil)
	goal("sys", "8480-6", qty(95, "mm[Hg]"), qty(150, "mm[Hg]"), nil) // the newer version wins
	goal("spo2", "2708-6", qty(94, "%"), nil, nil)                    // SpO2 by its other code, low end only
	goal("dia", "8462-4", nil, qty(12, "kPa"), nil)                   // another unit: not the engine's to convert
	goal("hr", "8867-4", qty(55, "/min"), qty(100, "/min"), map[string]any{
		"startDate": time.Now().AddDate(0, 0, 2).Format(time.DateOnly), // not in force yet
	})
	goal("temp", "8310-5", nil, qty(37.5, "Cel"), nil)

	ctx := context.Background()
	_, sess, err := h.sessions.SignIn(ctx, auth.Credentials{Username: "ingrid", Password: "ingrid's long password"})
	if err != nil {
		t.Fatal(err)
	}
	lims, err := h.pages.patientLimits(ctx, sess.Principal, "p1")
	if err != nil {
		t.Fatal(err)
	}
	in := care.NewInterpreter(h.pages.rules, care.NewDB(h.pool), care.DefaultInterpreterConfig(), slog.New(slog.DiscardHandler))
	at := time.Now()
	for i := range h.pages.measures.list {
		for _, code := range h.pages.measures.list[i].goalCodes() {
			lim, ok := lims[code]
			if !ok {
				t.Errorf("%s: the pages know no limits of it; the rules do", code)
				continue
			}
			for v := 0.0; v <= 300; v += 0.5 {
				r := care.Reading{Patient: "p1", Code: code, At: at, Value: v}
				in.Interpret(ctx, &r)
				if lim.within(v) == r.Flag.Abnormal() {
					t.Errorf("%s = %g: the pages say within=%v, the engine flags %q", code, v, lim.within(v), r.Flag)
					break
				}
			}
		}
	}
	// The Goals the engine ignores leave the defaults in force.
	for code, own := range map[string]bool{"8480-6": true, "59408-5": true, "8462-4": false, "8867-4": false, "8310-5": true} {
		if got := !lims[code].Default; got != own {
			t.Errorf("%s: the pages show the patient's own limits %v, want %v", code, got, own)
		}
	}
}

// TestThePagesShowEveryMeasureDevicesSend: a reading type added to the
// code table needs a presentation here (and, by TestCatalogsHaveTheSameKeys
// and the catalog checks, its names), or its readings would not show.
func TestThePagesShowEveryMeasureDevicesSend(t *testing.T) {
	pres := presentations()
	for _, m := range devices.Measures() {
		if _, ok := pres[m.Key]; !ok {
			t.Errorf("devices send %s (%s); the pages do not show it", m.Key, m.Code())
		}
	}
	if len(pres) != len(measures()) {
		t.Errorf("%d presentations for %d measures: one names no devices measure", len(pres), len(measures()))
	}
}

// TestMeSaysAMeasureIsOverdueWhenTheEngineWouldCallItMissed: /me warns
// of a planned measure by the care engine's rule (the most frequent active
// plan, Rules.MissedAfter of its interval), not by a rule of its own.
func TestMeSaysAMeasureIsOverdueWhenTheEngineWouldCallItMissed(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	plan := func(id string, perDay float64, unit string) {
		h.put("CarePlan", id, map[string]any{
			"status": "active", "intent": "plan", "subject": ref("Patient/p1"),
			"activity": []any{map[string]any{"detail": map[string]any{
				"code": loinc("29463-7"), "status": "scheduled",
				"scheduledTiming": map[string]any{"repeat": map[string]any{"frequency": 1, "period": perDay, "periodUnit": unit}},
			}}},
		})
	}
	plan("daily", 1, "d")
	plan("weekly", 1, "wk") // a second plan asks less often: the daily one counts
	due := h.pages.rules.MissedAfter(24 * time.Hour)
	h.reading("w1", "p1", "29463-7", time.Now().Add(-due+time.Hour), "", 72)
	astrid := h.signIn("astrid", "astrid's long password")
	const warning = "We have not received your weight since"
	if _, body := astrid.get("/me"); strings.Contains(body, warning) {
		t.Errorf("/me warns an hour before the engine would call the weight missed")
	}
	h.clock.mu.Lock()
	h.clock.off = 2 * time.Hour
	h.clock.mu.Unlock()
	if _, body := astrid.get("/me"); !strings.Contains(body, warning) {
		t.Errorf("/me does not warn an hour after the engine would call the weight missed")
	}
}
