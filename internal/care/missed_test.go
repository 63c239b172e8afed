package care

import (
	"testing"
	"time"
)

// TestAPlanBeginsWhenItsPeriodStarts: the missed-measurement check counts
// a plan from period.start, in any form a FHIR dateTime takes, and from
// when the plan was written when period.start is missing or not a date.
func TestAPlanBeginsWhenItsPeriodStarts(t *testing.T) {
	r := mustRules(t)
	written := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, period string
		want         time.Time
	}{
		{"a date is its midnight in UTC", `{"start":"2026-11-01"}`, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"an instant in UTC is itself", `{"start":"2026-11-01T08:30:00.250Z"}`, time.Date(2026, 11, 1, 8, 30, 0, 250e6, time.UTC)},
		{"an instant in another zone is the same moment", `{"start":"2026-11-01T08:30:00+02:00"}`, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)},
		{"a dateTime without a zone is UTC", `{"start":"2026-11-01T08:30:00"}`, time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC)},
		{"a month is its first midnight", `{"start":"2026-11"}`, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"no start is when the plan was written", `{}`, written},
		{"a start that is not a date is when the plan was written", `{"start":"soon"}`, written},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := PlanRow{ID: "cp", Patient: "p", LastUpdated: written, Content: []byte(`{"period":` + tt.period + `,"activity":[
				{"detail":{"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"scheduledTiming":{"repeat":{"period":1,"periodUnit":"d"}}}}]}`)}
			got := r.plannedMeasures(plan)
			if len(got) != 1 {
				t.Fatalf("planned %+v, want the weight", got)
			}
			if !got[0].Since.Equal(tt.want) {
				t.Errorf("since %v, want %v", got[0].Since, tt.want)
			}
		})
	}
}
