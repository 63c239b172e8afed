package care

import (
	"encoding/json"
	"fmt"
)

// obsJSON is what the engine reads of a stored Observation.
type obsJSON struct {
	Code           concept   `json:"code"`
	Interpretation []concept `json:"interpretation"`
	Component      []struct {
		Code           concept   `json:"code"`
		Interpretation []concept `json:"interpretation"`
	} `json:"component"`
}

// flagOf is the v3 interpretation code among concepts, "" when none.
func flagOf(cs []concept) Flag {
	for _, c := range cs {
		for _, cd := range c.Coding {
			if cd.System == SystemInterpretation {
				return Flag(cd.Code)
			}
		}
	}
	return FlagNone
}

// loincOf is the first LOINC code of c.
func loincOf(c concept) string {
	for _, cd := range c.Coding {
		if cd.System == SystemLOINC {
			return cd.Code
		}
	}
	return ""
}

// reviewProblem is the problem a stored, flagged Observation raises (nil
// when it raises none: normal, or not interpreted): the measure's limits,
// or the trend rule that flagged it A. Its priority comes from the rules
// by the flags (a Goal's range keeps the default bands' priorities, so the
// flags say it all).
func (r *Rules) reviewProblem(obsID, patient string, content []byte) (*problem, error) {
	var o obsJSON
	if err := json.Unmarshal(content, &o); err != nil {
		return nil, fmt.Errorf("observation %s: %w", obsID, err)
	}
	flag := flagOf(o.Interpretation)
	code := loincOf(o.Code)
	if !flag.Abnormal() || code == "" || patient == "" {
		return nil, nil
	}
	p := &problem{kind: TaskReview, code: code, name: code, flag: flag, focus: "Observation/" + obsID, patient: patient}
	if m, ok := r.Measure(code); ok {
		p.code, p.name = m.Code, m.Name
	}
	if flag == FlagAbnormal {
		if ts := r.trendsFor(p.code); len(ts) > 0 {
			p.rule, p.prio = ts[0].Name, ts[0].Priority
			p.key = "trend|" + p.rule
			return p, nil
		}
	}
	p.key = "reading|" + p.code
	if len(o.Component) == 0 {
		p.prio = r.priorityOf(p.code, flag)
		return p, nil
	}
	for _, c := range o.Component {
		if f := flagOf(c.Interpretation); f.Abnormal() {
			p.prio = max(p.prio, r.priorityOf(loincOf(c.Code), f))
		}
	}
	if p.prio == PriorityNone {
		p.prio = PriorityUrgent // flagged, but by nothing the rules know
	}
	return p, nil
}

// priorityOf is the priority of a value of code flagged f: the band's,
// urgent when the rules have no such band (a flag given otherwise).
func (r *Rules) priorityOf(code string, f Flag) Priority {
	m, ok := r.Measure(code)
	if !ok {
		return PriorityUrgent
	}
	return orUrgent(m.Limits.Priority(f))
}
