package sim

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vidda/vidda/devices"
)

// start is the simulated now of the generator tests.
func start() time.Time { return time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC) }

// testDevices are the devices of the first n planned homes.
func testDevices(n int) []Device {
	var out []Device
	for _, h := range Homes(n) {
		for _, k := range h.Kinds {
			out = append(out, Device{ID: fmt.Sprintf("sim-%d-%s", h.Index, k), Kind: k, Home: h.Index, Profile: h.Profile})
		}
	}
	return out
}

// generate returns n messages from each device.
func generate(cfg Config, devs []Device, n int) []Message {
	var out []Message
	for _, d := range devs {
		g := NewGenerator(cfg, d)
		for range n {
			out = append(out, g.Next()...)
		}
	}
	return out
}

func TestTheSameSeedGivesTheSameReadings(t *testing.T) {
	devs := testDevices(8)
	a := generate(Config{Seed: 7, Start: start()}, devs, 300)
	b := generate(Config{Seed: 7, Start: start()}, devs, 300)
	if len(a) != len(b) {
		t.Fatalf("%d and %d messages from the same seed", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Payload, b[i].Payload) || a[i].Class != b[i].Class {
			t.Fatalf("message %d differs: %s vs %s", i, a[i].Payload, b[i].Payload)
		}
	}
	c := generate(Config{Seed: 8, Start: start()}, devs, 300)
	same := 0
	for i := range min(len(a), len(c)) {
		if bytes.Equal(a[i].Payload, c[i].Payload) {
			same++
		}
	}
	if same > len(a)/100 {
		t.Errorf("seeds 7 and 8 share %d of %d payloads", same, len(a))
	}
}

// TestEveryPayloadDecodesAsItsClassSays holds the generator to the code
// table: what it means as a reading is one, within ingestion's time
// limits, with the keys it announces; what it means to spoil is refused
// for the reason it was spoilt.
func TestEveryPayloadDecodesAsItsClassSays(t *testing.T) {
	msgs := generate(Config{Seed: 1, Start: start()}, testDevices(16), 1000)
	received := start().Add(time.Minute)
	seen := map[Class]int{}
	for i, m := range msgs {
		seen[m.Class]++
		readings, err := devices.DecodeCompact(m.Payload)
		rejected := devices.Rejections(err)
		if err != nil && rejected == nil {
			t.Fatalf("message %d: %v", i, err)
		}
		switch m.Class {
		case ClassReading, ClassDuplicate:
			if err != nil || len(readings) != m.Readings {
				t.Fatalf("message %d (%s) %s: %d readings, %v", i, m.Class, m.Payload, len(readings), err)
			}
		case ClassOutOfRange:
			if len(rejected) != 1 || rejected[0].Reason != devices.ReasonImpossibleValue || len(readings) != m.Readings-1 {
				t.Fatalf("message %d (%s) %s: %d readings, %v", i, m.Class, m.Payload, len(readings), err)
			}
		case ClassMalformed:
			if len(readings) != 0 || len(rejected) != 1 || m.Readings != 0 || len(m.Keys) != 0 {
				t.Fatalf("message %d (%s) %s: %d readings, %v", i, m.Class, m.Payload, len(readings), err)
			}
			if r := rejected[0].Reason; r != devices.ReasonMalformed && r != devices.ReasonUnknownType && r != devices.ReasonWrongUnit {
				t.Fatalf("message %d (%s) %s: %v", i, m.Class, m.Payload, err)
			}
			continue
		}
		if _, err := devices.DefaultLimits().Filter(readings, received); err != nil {
			t.Fatalf("message %d %s: %v", i, m.Payload, err)
		}
		var keys []string
		for _, r := range readings {
			if err := r.Validate(); err != nil {
				t.Fatalf("message %d %s: %v", i, m.Payload, err)
			}
			obs, err := r.Observations(m.DeviceID, "p1")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range obs {
				keys = append(keys, o.Key)
			}
		}
		if !slices.Equal(keys, m.Keys) {
			t.Fatalf("message %d %s: keys %v, announced %v", i, m.Payload, keys, m.Keys)
		}
	}
	for _, c := range []Class{ClassReading, ClassOutOfRange, ClassDuplicate, ClassMalformed} {
		if seen[c] == 0 {
			t.Errorf("no %s message in %d", c, len(msgs))
		}
	}
}

func TestTheMixIsRoughlyAsConfigured(t *testing.T) {
	tests := []struct {
		name string
		mix  Mix
	}{
		{"the defaults", Mix{}},
		{"ten times as many problems", Mix{OutOfRange: 0.2, Duplicate: 0.1, Malformed: 0.05}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.mix.withDefaults()
			msgs := generate(Config{Seed: 3, Start: start(), Mix: tt.mix}, testDevices(40), 1000)
			n := map[Class]int{}
			for _, m := range msgs {
				n[m.Class]++
			}
			for c, p := range map[Class]float64{ClassOutOfRange: want.OutOfRange, ClassDuplicate: want.Duplicate, ClassMalformed: want.Malformed} {
				got := float64(n[c]) / float64(len(msgs))
				// Binomial: well within five standard deviations.
				if sd := math.Sqrt(p * (1 - p) / float64(len(msgs))); math.Abs(got-p) > 5*sd {
					t.Errorf("%s: %.4f of %d messages, want %.4f", c, got, len(msgs), p)
				}
			}
		})
	}
	t.Run("negative turns a kind off", func(t *testing.T) {
		for _, m := range generate(Config{Seed: 3, Start: start(), Mix: Mix{OutOfRange: -1, Duplicate: -1, Malformed: -1, Outage: -1}}, testDevices(8), 500) {
			if m.Class != ClassReading || m.Buffered {
				t.Fatalf("a %s message (buffered %v) with every kind off", m.Class, m.Buffered)
			}
		}
	})
}

func TestAnOutageFlushesTheBacklogWithTheOriginalTimes(t *testing.T) {
	g := NewGenerator(Config{Seed: 5, Start: start(), Mix: Mix{Outage: 1, Duplicate: -1}}, testDevices(1)[0])
	quiet := 0
	var flushed []Message
	for flushed == nil {
		flushed = g.Next()
		if flushed == nil {
			quiet++
		}
	}
	if quiet < minOutage-1 || quiet > maxOutage || len(flushed) != quiet+1 {
		t.Fatalf("%d calls without messages, then %d", quiet, len(flushed))
	}
	for i, m := range flushed {
		if !m.Buffered {
			t.Errorf("flushed message %d is not marked buffered", i)
		}
		if i > 0 && !m.Measured.After(flushed[i-1].Measured) {
			t.Errorf("flushed message %d measured %s, after %s", i, m.Measured, flushed[i-1].Measured)
		}
	}
	if g.Held() != 0 || g.Outages() != 1 {
		t.Errorf("after the flush: %d held, %d outages", g.Held(), g.Outages())
	}
}

func TestMeasurementsStayInTheWindowAndStartOverAtItsEnd(t *testing.T) {
	cfg := Config{Seed: 2, Start: start(), Window: 3 * 24 * time.Hour, Mix: Mix{Outage: -1}}
	g := NewGenerator(cfg, Device{ID: "sim-1-glucometer", Kind: KindGlucometer, Home: 4, Profile: ProfileDiabetes})
	wrapped := false
	var prev time.Time
	for range 200 {
		for _, m := range g.Next() {
			if m.Measured.After(start()) || m.Measured.Before(start().Add(-cfg.Window-24*time.Hour)) {
				t.Fatalf("measured %s, outside the window ending %s", m.Measured, start())
			}
			if m.Measured.Before(prev) && m.Class != ClassDuplicate {
				wrapped = true
			}
			if m.Class != ClassDuplicate {
				prev = m.Measured
			}
		}
	}
	if !wrapped {
		t.Error("200 glucose measurements in a 3-day window never started over")
	}
}

// series collects one reading type's values of a device, by time.
func series(t *testing.T, cfg Config, d Device, n int, typ, field string) (at []time.Time, v []float64) {
	t.Helper()
	g := NewGenerator(cfg, d)
	for range n {
		for _, m := range g.Next() {
			if m.Class != ClassReading {
				continue
			}
			rs, err := devices.DecodeCompact(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Type == typ {
					at = append(at, r.At)
					v = append(v, r.Values[field].Value)
				}
			}
		}
	}
	return at, v
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestReadingsFollowThePatient(t *testing.T) {
	cfg := Config{Seed: 11, Start: start(), Mix: Mix{OutOfRange: -1, Duplicate: -1, Malformed: -1, Outage: -1}}
	t.Run("heart failure puts weight on over the window", func(t *testing.T) {
		at, kg := series(t, cfg, Device{ID: "sim-2-scale", Kind: KindScale, Home: 2, Profile: ProfileHeartFailure}, 12, "weight", devices.ValueField)
		// Least-squares slope in kg/day, before the clock starts over.
		var sx, sy, sxx, sxy float64
		for i := range at {
			x := at[i].Sub(at[0]).Hours() / 24
			sx, sy, sxx, sxy = sx+x, sy+kg[i], sxx+x*x, sxy+x*kg[i]
		}
		n := float64(len(at))
		if slope := (n*sxy - sx*sy) / (n*sxx - sx*sx); slope < 0.03 {
			t.Errorf("weight changes %.3f kg/day, want a creep up", slope)
		}
	})
	t.Run("blood pressure is higher in the morning", func(t *testing.T) {
		at, sys := series(t, cfg, Device{ID: "sim-1-bp-cuff", Kind: KindBPCuff, Home: 1, Profile: ProfileHypertension}, 2000, "blood-pressure", "systolic")
		var am, pm []float64
		for i := range at {
			if at[i].Hour() < 12 {
				am = append(am, sys[i])
			} else {
				pm = append(pm, sys[i])
			}
		}
		if mean(am) < mean(pm)+2 || mean(am) < 135 {
			t.Errorf("systolic %.1f in the morning, %.1f in the evening", mean(am), mean(pm))
		}
	})
	t.Run("COPD lowers SpO2 and dips it now and then", func(t *testing.T) {
		_, spo2 := series(t, cfg, Device{ID: "sim-3-pulse-oximeter", Kind: KindPulseOximeter, Home: 3, Profile: ProfileCOPD}, 2000, "spo2", devices.ValueField)
		dips := 0
		for _, v := range spo2 {
			if v < 89 {
				dips++
			}
		}
		if m := mean(spo2); m > 95 || dips == 0 || dips > len(spo2)/5 {
			t.Errorf("SpO2 averages %.1f with %d of %d readings below 89", m, dips, len(spo2))
		}
	})
	t.Run("glucose rises after meals", func(t *testing.T) {
		at, glu := series(t, cfg, Device{ID: "sim-4-glucometer", Kind: KindGlucometer, Home: 4, Profile: ProfileDiabetes}, 2000, "glucose", devices.ValueField)
		var fasting, after []float64
		for i := range at {
			if at[i].Hour() < 8 {
				fasting = append(fasting, glu[i])
			} else {
				after = append(after, glu[i])
			}
		}
		if mean(after) < mean(fasting)*1.2 {
			t.Errorf("glucose %.1f fasting, %.1f after meals", mean(fasting), mean(after))
		}
	})
}

func TestHomesAreTheSameWhateverHowMany(t *testing.T) {
	small, large := Homes(8), Homes(200)
	for i, h := range small {
		if h.Index != i+1 || h.Profile != large[i].Profile || !slices.Equal(h.Kinds, large[i].Kinds) {
			t.Errorf("home %d: %+v, in a larger plan %+v", i+1, h, large[i])
		}
	}
	for _, h := range large {
		if len(h.Kinds) < 1 || len(h.Kinds) > 3 {
			t.Errorf("home %d has %d devices", h.Index, len(h.Kinds))
		}
		for _, k := range h.Kinds {
			if len(k.Types()) == 0 || len(schedule(k)) == 0 {
				t.Errorf("home %d: %s measures nothing", h.Index, k)
			}
		}
	}
}

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a broker that is not a URL", Config{Broker: "127.0.0.1:1883"}},
		{"a negative rate", Config{Rate: -1}},
		{"a window beyond ingestion's maximum age", Config{Window: 40 * 24 * time.Hour}},
		{"problems that add up to more than every message", Config{Mix: Mix{OutOfRange: 0.5, Duplicate: 0.5, Malformed: 0.5}}},
		{"a negative duration", Config{Duration: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, q := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(q.q)
		if got < q.want || float64(got) > float64(q.want)*1.06 {
			t.Errorf("p%.0f = %s, want %s within 5 %%", q.q*100, got, q.want)
		}
	}
	if h.maximum() != time.Second {
		t.Errorf("max = %s", h.maximum())
	}
}
