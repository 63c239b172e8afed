package web

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/care"
)

// TestThePagesAndTheEngineJudgeByTheLimitsWrittenOutHere holds the
// patient page and /me, and the care engine, each to limits written out
// by hand from rules.json and the Goals below, for Goals that are easy to
// read wrong (an updated Goal, a Goal by another code of the measure, one
// in another unit, one that starts in two days, one end only): the ends
// the pages shade and whether each end is itself flagged, whose limits
// they are, and for values on and around the ends, whether the pages call
// them within and whether the Interpreter flags them. A change to the
// rules, the Goal reading or the pages' view of it fails here.
func TestThePagesAndTheEngineJudgeByTheLimitsWrittenOutHere(t *testing.T) {
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

	end := func(v float64) *float64 { return &v }
	tests := []struct {
		code, what      string
		low, high       *float64
		lowOut, highOut bool // the end itself is flagged
		own             bool // the patient's Goal, not the clinic's default
		within, out     []float64
	}{
		{
			code: "8480-6", what: "systolic: the newer Goal, both ends normal",
			low: end(95), high: end(150), own: true,
			within: []float64{95, 120, 150}, out: []float64{94.5, 150.5, 180},
		},
		{
			code: "8462-4", what: "diastolic: a Goal in kPa is ignored, the default flags 110 itself",
			high: end(110), highOut: true,
			within: []float64{12, 60, 109.5}, out: []float64{110, 130},
		},
		{
			code: "59408-5", what: "SpO2: a Goal by code 2708-6 with a low end only; no high end",
			low: end(94), own: true,
			within: []float64{94, 100}, out: []float64{87, 93.5},
		},
		{
			code: "8867-4", what: "heart rate: a Goal that starts in two days leaves the default",
			low: end(50), high: end(120), highOut: true,
			within: []float64{50, 52, 110, 119.5}, out: []float64{39, 49.5, 120, 140},
		},
		{
			code: "8310-5", what: "temperature: a Goal's high end replaces the default's, the default low end stays",
			low: end(35), high: end(37.5), own: true,
			within: []float64{35, 37.5}, out: []float64{34.5, 37.6, 38, 41},
		},
		{
			code: "9279-1", what: "respiratory rate: the default",
			low: end(10), high: end(25), highOut: true,
			within: []float64{10, 24.5}, out: []float64{9.5, 25},
		},
		{
			code: "2339-0", what: "glucose in mg/dL: the default",
			low: end(70), high: end(250), highOut: true,
			within: []float64{70, 249.5}, out: []float64{53, 69.5, 250, 400},
		},
		{
			code: "15074-8", what: "glucose in mmol/L: the default",
			low: end(3.9), high: end(13.9), highOut: true,
			within: []float64{3.9, 13.8}, out: []float64{3.8, 13.9},
		},
		{
			code: "29463-7", what: "weight: no limits",
			within: []float64{0, 300},
		},
	}

	ctx := context.Background()
	_, sess, err := h.sessions.SignIn(ctx, auth.Credentials{Username: "ingrid", Password: "ingrid's long password"})
	if err != nil {
		t.Fatal(err)
	}
	lims, err := h.pages.patientLimits(ctx, sess.Principal, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(lims) != len(tests) {
		t.Errorf("the pages know limits of %d codes, this test of %d", len(lims), len(tests))
	}
	in := care.NewInterpreter(h.pages.rules, care.NewDB(h.pool), care.DefaultInterpreterConfig(), slog.New(slog.DiscardHandler))
	at := time.Now()
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			lim, ok := lims[tt.code]
			if !ok {
				t.Fatalf("the pages know no limits of %s", tt.code)
			}
			if !sameEnd(lim.Low, tt.low) || !sameEnd(lim.High, tt.high) || lim.LowOut != tt.lowOut || lim.HighOut != tt.highOut {
				t.Errorf("the pages shade %s (end flagged %v) to %s (end flagged %v), want %s (%v) to %s (%v)",
					showEnd(lim.Low), lim.LowOut, showEnd(lim.High), lim.HighOut, showEnd(tt.low), tt.lowOut, showEnd(tt.high), tt.highOut)
			}
			if own := !lim.Default; own != tt.own || (lim.Goal != nil) != tt.own {
				t.Errorf("the pages show the patient's own limits %v (Goal %v), want %v", own, lim.Goal != nil, tt.own)
			}
			for _, c := range []struct {
				values []float64
				within bool
			}{{tt.within, true}, {tt.out, false}} {
				for _, v := range c.values {
					if lim.within(v) != c.within {
						t.Errorf("%g: the pages say within %v, want %v", v, lim.within(v), c.within)
					}
					r := care.Reading{Patient: "p1", Code: tt.code, At: at, Value: v}
					in.Interpret(ctx, &r)
					if r.Flag.Abnormal() == c.within {
						t.Errorf("%g: the engine flags %q, want within %v", v, r.Flag, c.within)
					}
				}
			}
		})
	}
}

func sameEnd(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func showEnd(e *float64) string {
	if e == nil {
		return "open"
	}
	return strconv.FormatFloat(*e, 'g', -1, 64)
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

// TestMeTakesThePlannedIntervalOfABloodPressureByAnyOfItsCodes: a
// CarePlan may ask for blood pressure by the panel's code or by one of
// its parts (systolic, diastolic: the codes its limits are set for); /me
// warns by that plan's interval either way (Rules.MissedAfter of a daily
// plan, 36 h), not by its 48 h fallback for measures no plan asks for.
func TestMeTakesThePlannedIntervalOfABloodPressureByAnyOfItsCodes(t *testing.T) {
	for _, code := range []string{"85354-9", "8480-6", "8462-4"} {
		t.Run("a daily plan by "+code, func(t *testing.T) {
			h := newHarness(t, DefaultConfig())
			h.clinic()
			h.put("CarePlan", "daily", map[string]any{
				"status": "active", "intent": "plan", "subject": ref("Patient/p1"),
				"activity": []any{map[string]any{"detail": map[string]any{
					"code": loinc(code), "status": "scheduled",
					"scheduledTiming": map[string]any{"repeat": map[string]any{"frequency": 1, "period": 1, "periodUnit": "d"}},
				}}},
			})
			due := h.pages.rules.MissedAfter(24 * time.Hour)
			if due >= overdueFallback-2*time.Hour {
				t.Fatalf("a daily plan is due after %v, too close to the fallback %v to tell them apart", due, overdueFallback)
			}
			h.reading("bp1", "p1", "85354-9", time.Now().Add(-due+time.Hour), "", 130, 80)
			astrid := h.signIn("astrid", "astrid's long password")
			const warning = "We have not received your blood pressure since"
			if _, body := astrid.get("/me"); strings.Contains(body, warning) {
				t.Errorf("/me warns an hour before the plan's reading is due")
			}
			h.clock.mu.Lock()
			h.clock.off = 2 * time.Hour
			h.clock.mu.Unlock()
			if _, body := astrid.get("/me"); !strings.Contains(body, warning) {
				t.Errorf("/me does not warn an hour after the plan's reading was due")
			}
		})
	}
}
