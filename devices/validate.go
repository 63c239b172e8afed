package devices

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Default time limits.
const (
	// DefaultMaxFuture tolerates device clocks a little ahead of ours.
	DefaultMaxFuture = 5 * time.Minute
	// DefaultMaxAge accepts a gateway's backlog after a long outage.
	DefaultMaxAge = 30 * 24 * time.Hour
)

// maxOffset is the largest UTC offset FHIR's dateTime allows (±14:00).
const maxOffset = 14 * 60 * 60

// Limits bound the measurement time of a reading relative to when it was
// received. A zero field takes its default.
type Limits struct {
	// MaxFuture is how far ahead of the receive time a measurement may
	// be (device clock skew); default DefaultMaxFuture.
	MaxFuture time.Duration
	// MaxAge is how long before the receive time a measurement may be;
	// default DefaultMaxAge.
	MaxAge time.Duration
}

// DefaultLimits returns the defaults: 5 minutes ahead, 30 days back.
func DefaultLimits() Limits {
	return Limits{MaxFuture: DefaultMaxFuture, MaxAge: DefaultMaxAge}
}

// Validate reports limits that cannot be meant.
func (l Limits) Validate() error {
	if l.MaxFuture < 0 || l.MaxAge < 0 {
		return errors.New("devices limits: MaxFuture and MaxAge must not be negative")
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxFuture <= 0 {
		l.MaxFuture = DefaultMaxFuture
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultMaxAge
	}
	return l
}

// Check refuses a reading measured after now+MaxFuture (future-time) or
// before now-MaxAge (too-old); now is when the payload was received.
func (l Limits) Check(r Reading, now time.Time) error {
	l = l.withDefaults()
	switch {
	case r.At.IsZero():
		return reject(ReasonMissingTime, r.Index, r.ID, "the reading has no measurement time")
	case r.At.After(now.Add(l.MaxFuture)):
		return reject(ReasonFutureTime, r.Index, r.ID,
			"measured more than %s after it was received (check the device clock)", l.MaxFuture)
	case r.At.Before(now.Add(-l.MaxAge)):
		return reject(ReasonTooOld, r.Index, r.ID, "measured more than %s before it was received", l.MaxAge)
	}
	return nil
}

// Filter returns the readings that pass Check, and a RejectErrors for the
// others (nil when all pass).
func (l Limits) Filter(readings []Reading, now time.Time) ([]Reading, error) {
	first := 0
	for first < len(readings) && l.Check(readings[first], now) == nil {
		first++
	}
	if first == len(readings) {
		return readings, nil // the common case: no copy
	}
	kept := append(make([]Reading, 0, len(readings)), readings[:first]...)
	var rejected RejectErrors
	for _, r := range readings[first:] {
		if err := l.Check(r, now); err != nil {
			rejected = append(rejected, asReject(err, r.Index, r.ID))
			continue
		}
		kept = append(kept, r)
	}
	return result(kept, rejected)
}

// Validate checks a reading against the code table, everything but the
// time window (see Limits.Check): a known type, a valid id, a measurement
// time FHIR can carry, the required fields and no others, accepted units,
// plausible values, and for blood pressure systolic above diastolic with
// the mean between them. Decoders return only readings that pass it. The
// error is a *RejectError.
func (r Reading) Validate() error {
	t, _ := r.row()
	if err := r.validate(t); err != nil {
		return err
	}
	return nil
}

// validate is Validate against a row already looked up (nil: unknown).
// It remembers the row in the reading for Observations.
func (r *Reading) validate(t *ReadingType) *RejectError {
	fail := func(reason Reason, format string, args ...any) *RejectError {
		return reject(reason, r.Index, r.ID, format, args...)
	}
	if t == nil {
		return fail(ReasonUnknownType, "reading type %q is not one Vidda knows", clip(r.Type))
	}
	if r.ID != "" && !validReadingID(r.ID) {
		return fail(ReasonMalformed, "reading id must be 1 to %d visible ASCII characters without '/'", maxReadingID)
	}
	if r.At.IsZero() {
		return fail(ReasonMissingTime, "the reading has no measurement time")
	}
	if _, off := r.At.Zone(); r.At.Year() < 1 || r.At.Year() > 9999 || off < -maxOffset || off > maxOffset {
		return fail(ReasonMalformed, "measurement time must be within years 0001–9999 with an offset within ±14:00")
	}
	if r.MDC != "" && !hasCode(t.MDC, r.MDC) {
		return fail(ReasonUnknownType, "MDC code %s is not a %s code", r.MDC, t.Name)
	}
	// In table order, so that a reading with several faults always gets
	// the same rejection.
	unknown, anyUnknown := "", false
	for name := range r.Values {
		if _, ok := t.Field(name); !ok && (!anyUnknown || name < unknown) {
			unknown, anyUnknown = name, true
		}
	}
	if anyUnknown {
		return fail(ReasonMalformed, "%s has no field %q", t.Name, unknown)
	}
	for i := range t.Fields {
		f := &t.Fields[i]
		if q, ok := r.Values[f.Name]; ok {
			if err := r.checkValue(t, f, q); err != nil {
				return err
			}
		}
	}
	for i := range t.Fields {
		f := &t.Fields[i]
		if _, ok := r.Values[f.Name]; f.Required && !ok {
			return fail(ReasonMissingValue, "%s needs %s", t.Name, f.Name)
		}
	}
	sys, hasSys := r.Values["systolic"]
	dia, hasDia := r.Values["diastolic"]
	if hasSys && hasDia && sys.Value <= dia.Value {
		return fail(ReasonImpossibleValue, "systolic must be above diastolic")
	}
	if mean, ok := r.Values["mean"]; ok && hasSys && hasDia && (mean.Value < dia.Value || mean.Value > sys.Value) {
		return fail(ReasonImpossibleValue, "mean pressure must lie between diastolic and systolic")
	}
	r.spec = t
	return nil
}

// checkValue checks one field's unit and range.
func (r Reading) checkValue(t *ReadingType, f *Field, q Quantity) *RejectError {
	u, ok := f.Unit(q.Unit)
	if !ok {
		if q.Unit == "" {
			return reject(ReasonWrongUnit, r.Index, r.ID, "%s %s needs a unit: %s", t.Name, f.Name, f.unitNames())
		}
		return reject(ReasonWrongUnit, r.Index, r.ID, "%s %s is in %s, not %q", t.Name, f.Name, f.unitNames(), q.Unit)
	}
	if math.IsNaN(q.Value) || q.Value < u.Min || q.Value > u.Max {
		return reject(ReasonImpossibleValue, r.Index, r.ID, "%s %s is outside %s–%s %s",
			t.Name, f.Name, formatNumber(u.Min), formatNumber(u.Max), u.UCUM)
	}
	return nil
}

// hasCode reports whether codings hold code.
func hasCode(codings []Coding, code string) bool {
	for _, c := range codings {
		if c.Code == code {
			return true
		}
	}
	return false
}

// clip shortens a device-supplied string quoted in a message, at a rune
// boundary.
func clip(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// formatNumber writes a range bound without trailing zeros.
func formatNumber(v float64) string { return fmt.Sprint(v) }
