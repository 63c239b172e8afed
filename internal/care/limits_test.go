package care

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustRules(tb testing.TB) *Rules {
	tb.Helper()
	r, err := DefaultRules()
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func ptr(v float64) *float64 { return &v }

func TestDefaultRulesAreValid(t *testing.T) {
	r := mustRules(t)
	for _, code := range []string{"59408-5", "2708-6", "8480-6", "8462-4", "8867-4", "8310-5", "9279-1", "2339-0", "15074-8", "29463-7", "85354-9"} {
		if _, ok := r.Measure(code); !ok {
			t.Errorf("no default rule for %s", code)
		}
	}
	if r.LateAfter != time.Hour || r.MissedEvery != time.Minute || r.MissedGrace != 1.5 {
		t.Errorf("late %v, missed every %v grace %v", r.LateAfter, r.MissedEvery, r.MissedGrace)
	}
	if tr, ok := r.trend("weight-gain"); !ok || tr.RiseAbove != 2 || tr.Within != 72*time.Hour || tr.CarePlanCategory != "http://snomed.info/sct|84114007" {
		t.Errorf("weight-gain rule %+v", tr)
	}
}

// The limits of the issue, at and around each boundary. "below x" leaves x
// itself normal; "at_or_above x" flags x.
func TestDefaultLimitsAtTheirBoundaries(t *testing.T) {
	r := mustRules(t)
	for _, c := range []struct {
		name  string
		code  string
		value float64
		flag  Flag
		prio  Priority
	}{
		{"SpO2 exactly 92 % is normal (below 92 is low)", "59408-5", 92, FlagNormal, PriorityNone},
		{"SpO2 91.9 % is low, urgent", "59408-5", 91.9, FlagLow, PriorityUrgent},
		{"SpO2 exactly 88 % is low, not critical", "59408-5", 88, FlagLow, PriorityUrgent},
		{"SpO2 87 % is critically low, stat", "59408-5", 87, FlagCriticalLow, PriorityStat},
		{"systolic exactly 180 is high, urgent (at or above)", "8480-6", 180, FlagHigh, PriorityUrgent},
		{"systolic 179.9 is normal", "8480-6", 179.9, FlagNormal, PriorityNone},
		{"systolic exactly 90 is normal", "8480-6", 90, FlagNormal, PriorityNone},
		{"systolic 89 is low", "8480-6", 89, FlagLow, PriorityUrgent},
		{"diastolic exactly 110 is high", "8462-4", 110, FlagHigh, PriorityUrgent},
		{"temperature exactly 38 is high, routine", "8310-5", 38, FlagHigh, PriorityRoutine},
		{"temperature 37.9 is normal", "8310-5", 37.9, FlagNormal, PriorityNone},
		{"temperature 40 is critically high", "8310-5", 40, FlagCriticalHigh, PriorityUrgent},
		{"pulse 40 is low (critical is below 40)", "8867-4", 40, FlagLow, PriorityRoutine},
		{"pulse 39 is critically low", "8867-4", 39, FlagCriticalLow, PriorityUrgent},
		{"pulse 140 is critically high", "8867-4", 140, FlagCriticalHigh, PriorityUrgent},
		{"glucose 53 mg/dL is critically low", "2339-0", 53, FlagCriticalLow, PriorityStat},
		{"glucose 3.9 mmol/L is normal", "15074-8", 3.9, FlagNormal, PriorityNone},
		{"weight has no limits of its own", "29463-7", 250, FlagNormal, PriorityNone},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, ok := r.Measure(c.code)
			if !ok {
				t.Fatalf("no rule for %s", c.code)
			}
			f, p := m.Limits.Judge(c.value)
			if f != c.flag || p != c.prio {
				t.Errorf("%g: %s %s, want %s %s", c.value, f, p, c.flag, c.prio)
			}
		})
	}
}

// A Goal's range replaces the normal range, inclusive at both ends; the
// critical limits stay, for values outside it.
func TestAGoalRangeOverridesTheDefault(t *testing.T) {
	r := mustRules(t)
	spo2, _ := r.Measure("59408-5")
	sys, _ := r.Measure("8480-6")
	for _, c := range []struct {
		name  string
		l     Limits
		value float64
		flag  Flag
		prio  Priority
	}{
		{"a COPD patient's 89 % is normal with a goal of 88-100", spo2.Limits.WithRange(Range{Low: ptr(88), High: ptr(100)}), 89, FlagNormal, PriorityNone},
		{"the goal's low end itself is normal", spo2.Limits.WithRange(Range{Low: ptr(88)}), 88, FlagNormal, PriorityNone},
		{"86 % inside a goal of 85 is normal though below the default critical 88", spo2.Limits.WithRange(Range{Low: ptr(85)}), 86, FlagNormal, PriorityNone},
		{"84 % below a goal of 85 and the critical 88 is critically low", spo2.Limits.WithRange(Range{Low: ptr(85)}), 84, FlagCriticalLow, PriorityStat},
		{"90 % is low when the goal asks for 94", spo2.Limits.WithRange(Range{Low: ptr(94)}), 93.9, FlagLow, PriorityUrgent},
		{"systolic 160 is normal with a goal of 100-160", sys.Limits.WithRange(Range{Low: ptr(100), High: ptr(160)}), 160, FlagNormal, PriorityNone},
		{"systolic 161 is high with a goal of 100-160", sys.Limits.WithRange(Range{Low: ptr(100), High: ptr(160)}), 161, FlagHigh, PriorityUrgent},
		{"systolic 99 is low with a goal of 100-160", sys.Limits.WithRange(Range{Low: ptr(100), High: ptr(160)}), 99, FlagLow, PriorityUrgent},
		{"a goal with only a high end keeps the default low", sys.Limits.WithRange(Range{High: ptr(150)}), 89, FlagLow, PriorityUrgent},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, p := c.l.Judge(c.value)
			if f != c.flag || p != c.prio {
				t.Errorf("%g: %s %s, want %s %s", c.value, f, p, c.flag, c.prio)
			}
		})
	}
}

func TestGoalVersionsInForceAtMeasurementTime(t *testing.T) {
	r := mustRules(t)
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	goal := func(low float64, status string) []byte {
		return []byte(`{"resourceType":"Goal","lifecycleStatus":"` + status + `","subject":{"reference":"Patient/p"},
			"target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},
			"detailRange":{"low":{"value":` + strconv.FormatFloat(low, 'f', -1, 64) + `,"code":"%"}}}]}`)
	}
	rows := []GoalRow{
		{ID: "g1", Version: 2, LastUpdated: t0.Add(2 * time.Hour), Content: goal(85, "active")},
		{ID: "g1", Version: 1, LastUpdated: t0.Add(time.Hour), Content: goal(90, "active")},
		{ID: "g1", Version: 3, LastUpdated: t0.Add(3 * time.Hour), Content: goal(80, "cancelled")},
		{ID: "g1", Version: 4, LastUpdated: t0.Add(4 * time.Hour), Deleted: true},
		{ID: "g2", Version: 1, LastUpdated: t0.Add(5 * time.Hour), Content: goal(70, "active")},
	}
	vs := goalVersions(rows, r)
	for _, c := range []struct {
		name string
		at   time.Duration
		low  float64 // 0: no goal
	}{
		{"before any goal, the defaults", 30 * time.Minute, 0},
		{"the first version from its write", time.Hour, 90},
		{"the second version replaces the first", 150 * time.Minute, 85},
		{"a cancelled version sets nothing", 210 * time.Minute, 0},
		{"a deleted goal sets nothing", 270 * time.Minute, 0},
		{"another goal, later", 6 * time.Hour, 70},
	} {
		t.Run(c.name, func(t *testing.T) {
			rg, ok := goalRangeAt(vs, "59408-5", t0.Add(c.at))
			switch {
			case c.low == 0 && ok:
				t.Errorf("goal range %v, want none", *rg.Low)
			case c.low != 0 && (!ok || rg.Low == nil || *rg.Low != c.low):
				t.Errorf("goal range %+v %v, want low %g", rg, ok, c.low)
			}
		})
	}
}

func TestParseRulesSaysWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		name, file, want string
	}{
		{"not JSON", `{`, "care rules: unexpected EOF"},
		{"an unknown member", `{"measures":[],"extra":1}`, "unknown field"},
		{"two comparisons in a band", `{"measures":[{"code":"1-1","name":"x","low":{"below":1,"at_or_below":2,"priority":"urgent"}}]}`, "measures[0].low: give exactly one"},
		{"a high band comparing downwards", `{"measures":[{"code":"1-1","name":"x","high":{"below":1,"priority":"urgent"}}]}`, "a high limit compares with above"},
		{"an unknown priority", `{"measures":[{"code":"1-1","name":"x","low":{"below":1,"priority":"soon"}}]}`, `"soon" is not one of`},
		{"critical inside normal", `{"measures":[{"code":"1-1","name":"x","low":{"below":90,"priority":"urgent"},"critical_low":{"below":95,"priority":"stat"}}]}`, "critical_low (95) is above low (90)"},
		{"low above high", `{"measures":[{"code":"1-1","name":"x","low":{"below":90,"priority":"urgent"},"high":{"above":80,"priority":"stat"}}]}`, "low limits (90) are above"},
		{"a code used twice", `{"measures":[{"code":"1-1","name":"x"},{"code":"2-2","also":["1-1"],"name":"y"}]}`, `code "1-1" is given to another`},
		{"a bad duration", `{"late_after":"soon","measures":[]}`, "late_after"},
		{"a trend without a rise", `{"measures":[],"trends":[{"name":"t","code":"1-1","within":"1h","priority":"urgent"}]}`, "rise_above"},
		{"a bad category", `{"measures":[],"trends":[{"name":"t","code":"1-1","rise_above":1,"within":"1h","priority":"urgent","care_plan_category":"84114007"}]}`, "system|code"},
		{"grace below one", `{"measures":[],"missed":{"grace":0.5}}`, "grace"},
		{"a unit devices do not write", `{"measures":[{"code":"29463-7","unit":"[lb_av]"}]}`, "devices write 29463-7 in kg, not [lb_av]"},
		{"a measure devices do not send, unnamed", `{"measures":[{"code":"1-1"}]}`, "measures[0].name is missing"},
		{"two values", `{"measures":[]} {}`, "more than one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRules([]byte(c.file))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func FuzzParseRules(f *testing.F) {
	f.Add(defaultRules)
	f.Add([]byte(`{"measures":[{"code":"1-1","name":"x","low":{"below":1e308,"priority":"urgent"}}]}`))
	f.Add([]byte(`{"late_after":"-1h","trends":[{"name":"a","code":"b","rise_above":-0,"within":"0s"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRules(b)
		if err != nil {
			return
		}
		// Whatever parses judges without panicking and keeps its order.
		for _, m := range r.Measures {
			for _, v := range []float64{-1e9, 0, 50, 1e9} {
				f, _ := m.Limits.Judge(v)
				if f == FlagNone {
					t.Fatalf("%s: no flag for %g", m.Code, v)
				}
			}
		}
		if r.LateAfter <= 0 || r.MissedEvery <= 0 || r.MissedGrace < 1 {
			t.Fatalf("accepted %v %v %v", r.LateAfter, r.MissedEvery, r.MissedGrace)
		}
	})
}

// TestRulesTakeCodesNamesAndUnitsFromTheDevicesTable: the built-in rules
// give only limits; what a measure is comes from devices.Measures.
func TestRulesTakeCodesNamesAndUnitsFromTheDevicesTable(t *testing.T) {
	r := mustRules(t)
	for code, want := range map[string]Measure{
		"2708-6":  {Code: "59408-5", Name: "Oxygen saturation", Unit: "%"},
		"8480-6":  {Code: "8480-6", Name: "Systolic blood pressure", Unit: "mm[Hg]"},
		"85354-9": {Code: "85354-9", Name: "Blood pressure", Unit: "mm[Hg]"},
		"15074-8": {Code: "15074-8", Name: "Blood glucose", Unit: "mmol/L"},
		"29463-7": {Code: "29463-7", Name: "Body weight", Unit: "kg"},
	} {
		m, ok := r.Measure(code)
		if !ok || m.Code != want.Code || m.Name != want.Name || m.Unit != want.Unit {
			t.Errorf("%s: got %+v, want %s %q in %s", code, m, want.Code, want.Name, want.Unit)
		}
	}
	own, err := ParseRules([]byte(`{"measures":[{"code":"29463-7","name":"Weight at home","also":["3141-9"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := own.Measure("3141-9"); !ok || m.Name != "Weight at home" || m.Unit != "kg" {
		t.Errorf("a file's own name and codes: %+v", m)
	}
}

// TestAGoalStartsAtTheBeginningOfItsStartDate: Goal.startDate is a FHIR
// date, which may name a year or a month as well as a day; the Goal is in
// force from the first moment of that span (UTC), and a startDate that is
// not a date is ignored (the Goal holds from its write).
func TestAGoalStartsAtTheBeginningOfItsStartDate(t *testing.T) {
	r := mustRules(t)
	written := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, start string
		from        time.Time
	}{
		{"a day starts at its midnight", "2026-03-14", time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)},
		{"a month starts on its first day", "2026-03", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"a year starts on the first of January", "2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"a start that is not a date is ignored", "soon", written},
	} {
		t.Run(c.name, func(t *testing.T) {
			content := []byte(`{"resourceType":"Goal","lifecycleStatus":"active","startDate":"` + c.start + `",
				"target":[{"measure":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"detailRange":{"low":{"value":85,"code":"%"}}}]}`)
			vs := goalVersions([]GoalRow{{ID: "g", Version: 1, LastUpdated: written, Content: content}}, r)
			if _, ok := goalRangeAt(vs, "59408-5", c.from.Add(-time.Nanosecond)); ok {
				t.Errorf("the goal is in force just before %v", c.from)
			}
			if rg, ok := goalRangeAt(vs, "59408-5", c.from); !ok || rg.Low == nil || *rg.Low != 85 {
				t.Errorf("at %v the goal range is %+v %v, want low 85", c.from, rg, ok)
			}
		})
	}
}
