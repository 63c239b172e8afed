package web

import (
	"fmt"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/search"
)

// TestThePagesReadFHIRTimesAsTheyStart: the times the pages read
// (effective[x], authoredOn, lastModified, Appointment.start) are
// instants with a zone, dateTimes and dates; each is the time it starts
// at, a date alone its midnight in UTC.
func TestThePagesReadFHIRTimesAsTheyStart(t *testing.T) {
	p := &Pages{dates: search.NewDateParser(time.UTC)}
	cet := time.FixedZone("", 3600)
	tests := []struct {
		name, in string
		want     time.Time
	}{
		{"an instant in UTC, to the millisecond, as the care engine writes it", "2026-11-23T09:15:02.123Z", time.Date(2026, 11, 23, 9, 15, 2, 123e6, time.UTC)},
		{"an instant in another zone is the same moment", "2026-11-23T10:15:02+01:00", time.Date(2026, 11, 23, 10, 15, 2, 0, cet)},
		{"an instant with nanoseconds keeps them", "2026-11-23T09:15:02.123456789Z", time.Date(2026, 11, 23, 9, 15, 2, 123456789, time.UTC)},
		{"a dateTime without a zone is UTC", "2026-11-23T09:15:02", time.Date(2026, 11, 23, 9, 15, 2, 0, time.UTC)},
		{"a date is its midnight in UTC", "2026-11-23", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"a month is its first midnight", "2026-11", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{"a year is its first midnight", "2026", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.fhirTime(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("%s reads as %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "yesterday", "2026-02-30", "2026-11-23 09:15:02", "2026-11-23T25:00:00Z"} {
		t.Run(fmt.Sprintf("%q is not a time", bad), func(t *testing.T) {
			if got, err := p.fhirTime(bad); err == nil || !got.IsZero() {
				t.Errorf("reads as %v, %v; want an error", got, err)
			}
		})
	}
}
