package devices

import (
	"encoding/json"
	"math"
	"strings"
	"time"
)

// SenML limits (RFC 8428).
const (
	// senmlVersion is the highest SenML version understood (bver, §4.4).
	senmlVersion = 10
	// senmlRelative: times below 2^28 are relative to now (§4.5.3).
	senmlRelative = 1 << 28
	// senmlMaxPast bounds a relative time, so that it fits a Duration.
	senmlMaxPast = -(1 << 33)
	// senmlMaxTime is 9999-12-31T23:59:59Z, the last time FHIR can write.
	senmlMaxTime = 253402300799
)

// senmlBase is the base state carried from record to record (§4.1).
type senmlBase struct {
	name    string
	time    float64
	unit    string
	value   float64
	version float64
	// hasValue: a bv was given, so records without v take it.
	hasValue bool
}

// senmlRecord is a record after resolution (§4.6).
type senmlRecord struct {
	prefix string // the resolved name without the type
	t      *ReadingType
	field  string
	at     time.Time
	q      Quantity
}

// senmlSlot is one reading being assembled, in order of first record.
type senmlSlot struct {
	reading Reading
	t       *ReadingType
	rej     *RejectError
}

// DecodeSenML decodes the SenML JSON pack (RFC 8428) of
// vidda/v1/devices/{id}/senml. now is when the pack was received: record
// times below 2^28 are relative to it (§4.5.3), as is a record without
// any time ("roughly now").
//
// Base fields (bn, bt, bu, bv, bver) resolve as §4.6 says. A record named
// <bn><type> (spo2, heart-rate, weight, temperature, respiratory-rate,
// glucose) is one reading of that type; blood pressure is sent as records
// named <bn>systolic, <bn>diastolic and optionally <bn>mean and <bn>pulse,
// and the records of one base name and one time make one reading. The
// name may also end in the type after a separator (":/._-") when bn is
// not used. Units: u or bu; SenML's beat/min and 1/min are taken as /min.
// Only numeric values (v) are readings; records with vs, vb, vd or s are
// refused, and so is the whole pack when it holds a must-understand
// field (name ending in "_", §4.4) or a bver above 10. SenML has no
// reading ids: keys come from code and time (see Reading.Key).
//
// Errors are as for DecodeCompact; RejectError.Index is the index of the
// (first) record.
func DecodeSenML(payload []byte, now time.Time) ([]Reading, error) {
	return decodeSenML(payload, now, Table())
}

func decodeSenML(payload []byte, now time.Time, table []ReadingType) ([]Reading, error) {
	var pack []map[string]json.RawMessage
	if err := json.Unmarshal(payload, &pack); err != nil {
		return nil, &RejectError{
			Reason: ReasonMalformed, Index: WholePayload,
			Message: "a SenML pack must be a JSON array of records: " + jsonProblem(err), Err: err,
		}
	}
	base := senmlBase{version: senmlVersion}
	var slots []*senmlSlot
	groups := make(map[string]*senmlSlot) // blood pressure by prefix and time
	for i, rec := range pack {
		if rej := base.update(rec, i); rej != nil {
			return nil, rej
		}
		r, rej := resolveRecord(table, base, rec, i, now)
		switch {
		case rej != nil:
			slots = append(slots, &senmlSlot{rej: rej})
			continue
		case r == nil:
			continue // base fields only
		}
		if _, single := r.t.Field(ValueField); single {
			slots = append(slots, &senmlSlot{t: r.t, reading: Reading{
				Type: r.t.Name, At: r.at, Index: i, Values: map[string]Quantity{ValueField: r.q},
			}})
			continue
		}
		key := r.t.Name + "\x00" + r.prefix + "\x00" + r.at.Format(time.RFC3339Nano)
		g, ok := groups[key]
		if !ok {
			g = &senmlSlot{t: r.t, reading: Reading{
				Type: r.t.Name, At: r.at, Index: i, Values: make(map[string]Quantity, 4),
			}}
			groups[key] = g
			slots = append(slots, g)
		}
		if _, dup := g.reading.Values[r.field]; dup && g.rej == nil {
			g.rej = reject(ReasonMalformed, g.reading.Index, "", "two %s records at one time", r.field)
		}
		g.reading.Values[r.field] = r.q
	}
	readings := make([]Reading, 0, len(slots))
	var rejected RejectErrors
	for _, s := range slots {
		if s.rej == nil {
			s.rej = s.reading.validate(s.t)
		}
		if s.rej != nil {
			rejected = append(rejected, s.rej)
			continue
		}
		readings = append(readings, s.reading)
	}
	return result(readings, rejected)
}

// update applies the base fields of record i. A bad base field spoils
// every record after it, so it refuses the pack.
func (b *senmlBase) update(rec map[string]json.RawMessage, i int) *RejectError {
	fail := func(format string, args ...any) *RejectError {
		return reject(ReasonMalformed, WholePayload, "", "record %d: "+format, append([]any{i}, args...)...)
	}
	for k := range rec {
		if strings.HasSuffix(k, "_") {
			return reject(ReasonUnsupported, WholePayload, "", "record %d: must-understand field %q is not supported", i, clip(k))
		}
	}
	if raw, ok := rec["bver"]; ok {
		if err := json.Unmarshal(raw, &b.version); err != nil || b.version != math.Trunc(b.version) || b.version < 1 {
			return fail("bver must be a positive integer")
		}
		if b.version > senmlVersion {
			return reject(ReasonUnsupported, WholePayload, "", "record %d: SenML version %v is newer than %d", i, b.version, senmlVersion)
		}
	}
	if _, ok := rec["bv"]; ok {
		b.hasValue = true
	}
	if bad := decodeFields(rec, []senmlField{
		{name: "bn", s: &b.name}, {name: "bu", s: &b.unit}, {name: "bt", n: &b.time}, {name: "bv", n: &b.value},
	}); bad != "" {
		return fail("%s has the wrong JSON type", bad)
	}
	return nil
}

// senmlField is a field to decode into a string or a number.
type senmlField struct {
	name string
	s    *string
	n    *float64
}

// decodeFields decodes the fields present in rec and returns the name of
// the first that has the wrong JSON type, "" when all are right.
func decodeFields(rec map[string]json.RawMessage, fields []senmlField) string {
	for _, f := range fields {
		raw, ok := rec[f.name]
		if !ok {
			continue
		}
		var err error
		if f.s != nil {
			err = json.Unmarshal(raw, f.s)
		} else {
			err = json.Unmarshal(raw, f.n)
		}
		if err != nil || string(raw) == "null" {
			return f.name
		}
	}
	return ""
}

// resolveRecord resolves record i against the base state: nil, nil for a
// record that holds base fields only.
func resolveRecord(table []ReadingType, base senmlBase, rec map[string]json.RawMessage, i int, now time.Time) (*senmlRecord, *RejectError) {
	fail := func(reason Reason, format string, args ...any) (*senmlRecord, *RejectError) {
		return nil, reject(reason, i, "", format, args...)
	}
	for _, k := range [...]string{"vs", "vb", "vd", "s"} {
		if _, ok := rec[k]; ok {
			return fail(ReasonMalformed, "only numeric values (v) are readings, not %s", k)
		}
	}
	_, hasN := rec["n"]
	_, hasV := rec["v"]
	if _, hasBV := rec["bv"]; !hasN && !hasV && !hasBV {
		return nil, nil // base fields only (§4.1): they apply to what follows
	}
	var n, u string
	var v, t float64
	if bad := decodeFields(rec, []senmlField{{name: "n", s: &n}, {name: "u", s: &u}, {name: "v", n: &v}, {name: "t", n: &t}}); bad != "" {
		return fail(ReasonMalformed, "%s has the wrong JSON type", bad)
	}
	name := base.name + n
	if !validSenMLName(name) {
		return fail(ReasonMalformed, "name must start with a letter or digit and hold only letters, digits and -:./_")
	}
	rt, field, prefix := senmlType(table, name, n)
	if rt == nil {
		return fail(ReasonUnknownType, "record name %q does not end in a reading type Vidda knows", clip(name))
	}
	if !hasV && !base.hasValue {
		return fail(ReasonMissingValue, "the record has no value")
	}
	if u == "" {
		u = base.unit
	}
	if f, ok := rt.Field(field); ok {
		if unit, ok := f.Unit(u); ok {
			u = unit.UCUM
		}
	}
	at, ok := senmlTime(base.time+t, now)
	if !ok {
		return fail(ReasonMalformed, "time is out of range")
	}
	return &senmlRecord{prefix: prefix, t: rt, field: field, at: at, q: Quantity{Value: base.value + v, Unit: u}}, nil
}

// senmlType finds the reading type a resolved name ends in: the record's
// own name is the type, or the name ends in it after a separator. It
// returns the type, the field and the name's prefix.
func senmlType(table []ReadingType, name, own string) (*ReadingType, string, string) {
	var best *ReadingType
	bestField, bestLen := "", 0
	match := func(candidate string) bool {
		if own == candidate {
			return true
		}
		rest, ok := strings.CutSuffix(name, candidate)
		return ok && (rest == "" || strings.ContainsRune(":/._-", rune(rest[len(rest)-1])))
	}
	for i := range table {
		t := &table[i]
		if _, single := t.Field(ValueField); single {
			if len(t.Name) > bestLen && match(t.Name) {
				best, bestField, bestLen = t, ValueField, len(t.Name)
			}
			continue
		}
		for _, f := range t.Fields {
			if len(f.Name) > bestLen && match(f.Name) {
				best, bestField, bestLen = t, f.Name, len(f.Name)
			}
		}
	}
	if best == nil {
		return nil, "", ""
	}
	return best, bestField, name[:len(name)-bestLen]
}

// validSenMLName checks a resolved name against RFC 8428 §4.5.1.
func validSenMLName(s string) bool {
	if s == "" || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != ':' && c != '.' && c != '/' && c != '_' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// senmlTime turns a resolved SenML time into a time.Time (§4.5.3):
// values below 2^28 are seconds relative to now, the others seconds since
// the Unix epoch. Times are kept to the microsecond, the precision a
// float64 of epoch seconds carries.
func senmlTime(x float64, now time.Time) (time.Time, bool) {
	switch {
	case math.IsNaN(x) || x < senmlMaxPast || x > senmlMaxTime:
		return time.Time{}, false
	case x < senmlRelative:
		return now.Add(time.Duration(math.Round(x*1e6)) * time.Microsecond).UTC(), true
	}
	sec, frac := math.Modf(x)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1000).UTC(), true
}
