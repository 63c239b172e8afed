package care

import "github.com/vidda/vidda/devices"

// Flag is an Observation.interpretation code (HL7 v3
// ObservationInterpretation).
type Flag string

// The flags the engine gives.
const (
	FlagNone         Flag = ""
	FlagNormal       Flag = "N"
	FlagLow          Flag = "L"
	FlagHigh         Flag = "H"
	FlagCriticalLow  Flag = "LL"
	FlagCriticalHigh Flag = "HH"
	// FlagAbnormal is what trend rules give.
	FlagAbnormal Flag = "A"
)

// SystemInterpretation is the code system of Flag, the one devices
// writes Observation.interpretation in.
const SystemInterpretation = devices.SystemInterpretation

// Abnormal reports whether f asks for a review.
func (f Flag) Abnormal() bool { return f != FlagNone && f != FlagNormal }

// Display is the v3 display text of f.
func (f Flag) Display() string {
	switch f {
	case FlagNormal:
		return "Normal"
	case FlagLow:
		return "Low"
	case FlagHigh:
		return "High"
	case FlagCriticalLow:
		return "Critical low"
	case FlagCriticalHigh:
		return "Critical high"
	case FlagAbnormal:
		return "Abnormal"
	case FlagNone:
	}
	return ""
}

// Priority is a Task priority (R4 request-priority), ordered: a greater
// value is more urgent. The zero value is none.
type Priority int8

// The priorities, least urgent first.
const (
	PriorityNone Priority = iota
	PriorityRoutine
	PriorityUrgent
	PriorityASAP
	PriorityStat
)

// String is the request-priority code.
func (p Priority) String() string {
	switch p {
	case PriorityRoutine:
		return "routine"
	case PriorityUrgent:
		return "urgent"
	case PriorityASAP:
		return "asap"
	case PriorityStat:
		return "stat"
	case PriorityNone:
	}
	return ""
}

// ParsePriority reads a request-priority code.
func ParsePriority(s string) (Priority, bool) {
	switch s {
	case "routine":
		return PriorityRoutine, true
	case "urgent":
		return PriorityUrgent, true
	case "asap":
		return PriorityASAP, true
	case "stat":
		return PriorityStat, true
	}
	return PriorityNone, false
}

// Comparison is how a band compares a value with its limit.
type Comparison int8

// The comparisons of a band; which one a limit uses says whether the
// limit itself is normal.
const (
	Below     Comparison = iota + 1 // value < limit
	AtOrBelow                       // value <= limit
	Above                           // value > limit
	AtOrAbove                       // value >= limit
)

// Band is one side of a measure's limits: values it matches are flagged
// and reviewed with Priority.
type Band struct {
	Set      bool
	Cmp      Comparison
	Value    float64
	Priority Priority
}

// Matches reports whether v is beyond the band's limit.
func (b Band) Matches(v float64) bool {
	if !b.Set {
		return false
	}
	switch b.Cmp {
	case Below:
		return v < b.Value
	case AtOrBelow:
		return v <= b.Value
	case Above:
		return v > b.Value
	case AtOrAbove:
		return v >= b.Value
	}
	return false
}

// Limits are the limits of one measure for one patient at one time: the
// clinic's defaults, or a Goal's range over them (WithRange).
type Limits struct {
	Low, CriticalLow, High, CriticalHigh Band
}

// Judge flags v. Outside the normal range (Low, High) it is L or H, or LL
// / HH when also beyond the critical limit; inside it is N, even beyond a
// critical limit (a Goal's range can be wider than the defaults: the
// clinician's limit for this patient wins). A band that is not set does
// not flag; a measure without any band gives N.
func (l Limits) Judge(v float64) (Flag, Priority) {
	lowOut := l.Low.Matches(v)
	if l.CriticalLow.Matches(v) && (lowOut || !l.Low.Set) {
		return FlagCriticalLow, l.CriticalLow.Priority
	}
	if lowOut {
		return FlagLow, l.Low.Priority
	}
	highOut := l.High.Matches(v)
	if l.CriticalHigh.Matches(v) && (highOut || !l.High.Set) {
		return FlagCriticalHigh, l.CriticalHigh.Priority
	}
	if highOut {
		return FlagHigh, l.High.Priority
	}
	return FlagNormal, PriorityNone
}

// Priority is the priority of a reading flagged f under l.
func (l Limits) Priority(f Flag) Priority {
	switch f {
	case FlagLow:
		return l.Low.Priority
	case FlagCriticalLow:
		return l.CriticalLow.Priority
	case FlagHigh:
		return l.High.Priority
	case FlagCriticalHigh:
		return l.CriticalHigh.Priority
	case FlagNone, FlagNormal, FlagAbnormal:
	}
	return PriorityNone
}

// Range is a Goal's target range (detailRange): the normal values,
// both ends inclusive as FHIR's Range is. A nil end is open.
type Range struct {
	Low, High *float64
}

// WithRange returns l with r as its normal range: below r.Low is L, above
// r.High is H, with the priorities of the default bands (urgent where the
// default has none). The critical bands stay, but flag only values
// outside r (see Judge).
func (l Limits) WithRange(r Range) Limits {
	out := l
	if r.Low != nil {
		out.Low = Band{Set: true, Cmp: Below, Value: *r.Low, Priority: orUrgent(l.Low.Priority)}
	}
	if r.High != nil {
		out.High = Band{Set: true, Cmp: Above, Value: *r.High, Priority: orUrgent(l.High.Priority)}
	}
	return out
}

func orUrgent(p Priority) Priority {
	if p == PriorityNone {
		return PriorityUrgent
	}
	return p
}

// Normal returns the innermost band of each side: the plain band, or
// the critical one where there is no plain one. A value either matches
// is flagged (Judge); between them it is normal. A side without any band
// is open (Set false).
func (l Limits) Normal() (low, high Band) {
	low, high = l.Low, l.High
	if !low.Set {
		low = l.CriticalLow
	}
	if !high.Set {
		high = l.CriticalHigh
	}
	return low, high
}

// worse reports whether flag a (with priority pa) is worse than b (pb):
// by priority, then critical before plain, then abnormal before normal.
func worse(a Flag, pa Priority, b Flag, pb Priority) bool {
	if pa != pb {
		return pa > pb
	}
	return rank(a) > rank(b)
}

func rank(f Flag) int {
	switch f {
	case FlagCriticalLow, FlagCriticalHigh:
		return 3
	case FlagLow, FlagHigh, FlagAbnormal:
		return 2
	case FlagNormal:
		return 1
	case FlagNone:
	}
	return 0
}
