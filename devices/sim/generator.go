package sim

import (
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vidda/vidda/devices"
)

// Class is what a message is meant to be, and so what vidda should do
// with it.
type Class uint8

// The classes of message a device sends.
const (
	// ClassReading is a fresh, valid measurement: vidda stores it.
	ClassReading Class = iota
	// ClassOutOfRange carries a value outside devices.Table's ranges (a
	// device glitch): vidda keeps it as a dead letter, and stores the
	// other readings of the message.
	ClassOutOfRange
	// ClassDuplicate re-sends the previous reading unchanged, as a gateway
	// does after a lost PUBACK: vidda stores it once.
	ClassDuplicate
	// ClassMalformed cannot be read (cut-off JSON, an unknown reading
	// type, a wrong unit): vidda keeps it as a dead letter.
	ClassMalformed
)

// String names the class as the summary and the ack log do.
func (c Class) String() string {
	switch c {
	case ClassReading:
		return "reading"
	case ClassOutOfRange:
		return "out-of-range"
	case ClassDuplicate:
		return "duplicate"
	case ClassMalformed:
		return "malformed"
	}
	return "class-" + strconv.Itoa(int(c))
}

// Message is one MQTT publish of a device.
type Message struct {
	// DeviceID is the publishing device; Topic its readings topic.
	DeviceID string
	Topic    string
	// Payload is compact JSON: one reading, or an array of the readings
	// measured together.
	Payload []byte
	// Class is what the message is meant to be.
	Class Class
	// Readings counts the readings in the payload, 0 when it is malformed.
	Readings int
	// Keys are the idempotency keys (devices.Observation.Key) of the
	// Observations vidda should store from it: none for a malformed
	// message, none for an out-of-range reading.
	Keys []string
	// Measured is when the (first) reading was measured.
	Measured time.Time
	// Buffered marks a message that was held during an outage and sent
	// when the gateway came back.
	Buffered bool
}

// slot is one measurement of a device's day.
type slot struct {
	minute, jitter int // minute of the day, ± minutes
	fasting        bool
	morning        bool
}

// schedule is a device's measuring day.
func schedule(k Kind) []slot {
	switch k {
	case KindBPCuff:
		return []slot{{minute: 7*60 + 15, jitter: 30, morning: true}, {minute: 20 * 60, jitter: 45}}
	case KindScale:
		return []slot{{minute: 7 * 60, jitter: 20, morning: true}}
	case KindPulseOximeter:
		return []slot{{minute: 8*60 + 30, jitter: 40, morning: true}, {minute: 18 * 60, jitter: 60}}
	case KindGlucometer:
		return []slot{
			{minute: 6*60 + 45, jitter: 20, fasting: true, morning: true},
			{minute: 9*60 + 30, jitter: 30, morning: true}, // two hours after breakfast
			{minute: 13*60 + 30, jitter: 45},
			{minute: 19*60 + 30, jitter: 45},
		}
	case KindThermometer:
		return []slot{{minute: 8 * 60, jitter: 60, morning: true}}
	}
	return nil
}

// Chances inside a device's day.
const (
	// skipChance: the patient forgets a measurement.
	skipChance = 0.08
	// Outage length, in measurements.
	minOutage, maxOutage = 3, 30
)

// keyPatient stands for the bound patient when keys are computed: the key
// does not depend on it.
const keyPatient = "sim"

// Generator makes one device's messages, reproducibly for a seed and a
// start time. It is not safe for concurrent use.
type Generator struct {
	dev     Device
	mix     Mix
	pat     patient
	rng     *rand.Rand
	zone    *time.Location
	from    time.Time // the window's first day, at midnight
	until   time.Time // no measurement after this
	runID   string
	slots   []slot
	day     time.Time // the current simulated day, at midnight
	slot    int
	seq     uint64
	last    *Message // the last fresh reading, for duplicates
	held    []Message
	outage  int // measurements left in the current outage
	outages int
}

// NewGenerator returns the generator of device d; cfg gives the seed, the
// mix, the window and its end (cfg.Start, which must be set).
func NewGenerator(cfg Config, d Device) *Generator {
	cfg = cfg.withDefaults()
	h := fnv.New64a()
	_, _ = h.Write([]byte(d.ID))
	// Norway in winter: readings carry the device's local offset.
	zone := time.FixedZone("+01:00", 3600)
	until := cfg.Start.In(zone)
	first := until.Add(-cfg.Window)
	g := &Generator{
		dev:   d,
		mix:   cfg.Mix,
		pat:   newPatient(cfg.Seed, d.Home, d.Profile),
		rng:   rand.New(rand.NewPCG(cfg.Seed, h.Sum64())), //nolint:gosec // simulation, reproducible on purpose
		zone:  zone,
		from:  time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, zone),
		until: until,
		// Reading ids differ between runs, so that a new run's readings
		// are not taken for re-sends of an earlier run's.
		runID: strconv.FormatInt(cfg.Start.Unix(), 36),
		slots: schedule(d.Kind),
	}
	// Devices start a few days apart, not all on the window's first day.
	g.day = g.from.AddDate(0, 0, g.rng.IntN(3))
	g.slot = -1
	return g
}

// Next returns the messages to publish for the device's next measurement:
// usually one; none while the gateway is offline; the whole backlog, in
// measurement order, when it comes back.
func (g *Generator) Next() []Message {
	if g.outage == 0 && g.mix.Outage > 0 && g.rng.Float64() < g.mix.Outage {
		g.outage = minOutage + g.rng.IntN(maxOutage-minOutage+1)
		g.outages++
	}
	var m Message
	u := g.rng.Float64()
	switch {
	case u < g.mix.Malformed:
		m = g.malformed()
	case u < g.mix.Malformed+g.mix.Duplicate && g.last != nil && g.outage == 0:
		m = *g.last
		m.Class, m.Buffered = ClassDuplicate, false
	default:
		m = g.measure(u < g.mix.Malformed+g.mix.Duplicate+g.mix.OutOfRange)
		if m.Class == ClassReading {
			last := m
			g.last = &last
		}
	}
	if g.outage == 0 {
		return []Message{m}
	}
	m.Buffered = true
	g.held = append(g.held, m)
	if g.outage--; g.outage > 0 {
		return nil
	}
	out := g.held
	g.held = nil
	return out
}

// Held is how many messages wait for the end of an outage.
func (g *Generator) Held() int { return len(g.held) }

// Outages is how many outages the device has had.
func (g *Generator) Outages() int { return g.outages }

// next advances the simulated clock to the next measurement.
func (g *Generator) next() (time.Time, slot) {
	for {
		g.slot++
		if g.slot == len(g.slots) {
			g.slot = 0
			g.day = g.day.AddDate(0, 0, 1)
		}
		s := g.slots[g.slot]
		if g.rng.Float64() < skipChance {
			continue
		}
		offset := time.Duration(s.minute+g.rng.IntN(2*s.jitter+1)-s.jitter)*time.Minute +
			time.Duration(g.rng.IntN(60))*time.Second
		at := g.day.Add(offset)
		if at.After(g.until) {
			// Caught up with now: start over at the beginning of the window.
			g.day, g.slot = g.from, -1
			continue
		}
		return at, s
	}
}

// days is how far into the window t is, in days.
func (g *Generator) days(t time.Time) float64 { return t.Sub(g.from).Hours() / 24 }

// readingID numbers the device's readings within the run.
func (g *Generator) readingID() string {
	g.seq++
	return g.runID + "-" + strconv.FormatUint(g.seq, 10)
}

// readings measures once: the readings the device takes together.
func (g *Generator) readings() []devices.Reading {
	at, s := g.next()
	one := func(typ string, v float64, unit string) devices.Reading {
		return devices.Reading{
			Type: typ, ID: g.readingID(), At: at,
			Values: map[string]devices.Quantity{devices.ValueField: {Value: v, Unit: unit}},
		}
	}
	p := g.pat
	switch g.dev.Kind {
	case KindBPCuff:
		sys, dia, pulse := p.bloodPressure(g.rng, g.days(at), s.morning)
		return []devices.Reading{{
			Type: "blood-pressure", ID: g.readingID(), At: at,
			Values: map[string]devices.Quantity{
				"systolic": {Value: sys, Unit: "mm[Hg]"}, "diastolic": {Value: dia, Unit: "mm[Hg]"},
				"pulse": {Value: pulse, Unit: "/min"},
			},
		}}
	case KindScale:
		return []devices.Reading{one("weight", p.bodyWeight(g.rng, g.days(at)), "kg")}
	case KindPulseOximeter:
		spo2, pulse := p.oximetry(g.rng)
		return []devices.Reading{one("spo2", spo2, "%"), one("heart-rate", pulse, "/min")}
	case KindGlucometer:
		mmol := p.bloodGlucose(g.rng, s.fasting)
		if p.mgdl {
			return []devices.Reading{one("glucose", float64(int(mmol*18.016+0.5)), "mg/dL")}
		}
		return []devices.Reading{one("glucose", mmol, "mmol/L")}
	case KindThermometer:
		return []devices.Reading{one("temperature", p.bodyTemperature(g.rng), "Cel")}
	}
	return []devices.Reading{one("heart-rate", p.pulse, "/min")}
}

// measure makes a measurement's message; outOfRange spoils one value.
func (g *Generator) measure(outOfRange bool) Message {
	rs := g.readings()
	m := Message{DeviceID: g.dev.ID, Topic: g.dev.topic(), Class: ClassReading, Readings: len(rs), Measured: rs[0].At}
	if outOfRange {
		g.spoil(&rs[g.rng.IntN(len(rs))])
		m.Class = ClassOutOfRange
	}
	if len(rs) == 1 {
		m.Payload = appendReading(nil, rs[0], "", "")
	} else {
		m.Payload = append(m.Payload, '[')
		for i, r := range rs {
			if i > 0 {
				m.Payload = append(m.Payload, ',')
			}
			m.Payload = appendReading(m.Payload, r, "", "")
		}
		m.Payload = append(m.Payload, ']')
	}
	for _, r := range rs {
		obs, err := r.Observations(g.dev.ID, keyPatient)
		if err != nil {
			continue // the spoilt one: a dead letter
		}
		for _, o := range obs {
			m.Keys = append(m.Keys, o.Key)
		}
	}
	return m
}

// spoil puts an impossible value in r, as a glitching device would.
func (g *Generator) spoil(r *devices.Reading) {
	set := func(field string, v float64) {
		q := r.Values[field]
		q.Value = v
		r.Values[field] = q
	}
	between := func(lo, hi int) float64 { return float64(lo + g.rng.IntN(hi-lo+1)) }
	switch r.Type {
	case "blood-pressure":
		if g.rng.IntN(2) == 0 {
			set("systolic", r.Values["diastolic"].Value-between(0, 10)) // cuff mixed up the phases
		} else {
			set("systolic", between(301, 340))
		}
	case "spo2":
		set(devices.ValueField, between(101, 127)) // finger moved
	case "heart-rate":
		set(devices.ValueField, between(0, 15))
	case "weight":
		set(devices.ValueField, float64(g.rng.IntN(2))/10) // stepped off
	case "temperature":
		set(devices.ValueField, between(180, 249)/10) // measured the room
	case "glucose":
		if r.Values[devices.ValueField].Unit == "mg/dL" {
			set(devices.ValueField, between(0, 9))
		} else {
			set(devices.ValueField, between(0, 4)/10)
		}
	}
}

// malformed makes a measurement and sends it in a form vidda cannot read.
func (g *Generator) malformed() Message {
	r := g.readings()[0]
	m := Message{DeviceID: g.dev.ID, Topic: g.dev.topic(), Class: ClassMalformed, Measured: r.At}
	switch g.rng.IntN(3) {
	case 0: // the gateway cut the message short
		full := appendReading(nil, r, "", "")
		m.Payload = full[:1+g.rng.IntN(len(full)-1)]
	case 1: // firmware that speaks of things vidda does not know
		unknown := [...]string{"blood-sugar", "steps", "bmi", "sleep-score"}
		m.Payload = appendReading(nil, r, unknown[g.rng.IntN(len(unknown))], "")
	default: // a unit the type does not take
		unit := map[string]string{
			"blood-pressure": "kPa", "weight": "lb", "spo2": "percent", "heart-rate": "bpm",
			"temperature": "degF", "glucose": "mmol",
		}[r.Type]
		m.Payload = appendReading(nil, r, "", unit)
	}
	return m
}

// appendReading writes r as compact JSON; typ and unit, when not "",
// replace its type and unit (to make malformed messages).
func appendReading(b []byte, r devices.Reading, typ, unit string) []byte {
	if typ == "" {
		typ = r.Type
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, r.ID)
	b = append(b, `,"t":`...)
	b = strconv.AppendQuote(b, r.At.Format(time.RFC3339))
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, typ)
	num := func(name string, v float64) {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	if q, ok := r.Values[devices.ValueField]; ok {
		num(devices.ValueField, convert(q, unit))
		if unit == "" {
			unit = q.Unit
		}
	} else {
		for _, f := range [...]string{"systolic", "diastolic", "mean", "pulse"} {
			if q, ok := r.Values[f]; ok {
				if f != "pulse" {
					q.Value = convert(q, unit)
				}
				num(f, q.Value)
			}
		}
		if unit == "" {
			unit = "mmHg" // compact JSON's spelling of mm[Hg]
		}
	}
	b = append(b, `,"unit":`...)
	b = strconv.AppendQuote(b, unit)
	return append(b, '}')
}

// convert expresses q in a wrong unit as a device set to it would.
func convert(q devices.Quantity, unit string) float64 {
	switch unit {
	case "lb":
		return round1(q.Value * 2.20462)
	case "degF":
		return round1(q.Value*9/5 + 32)
	case "kPa":
		return round1(q.Value * 0.133322)
	}
	return q.Value
}
