package devices

import (
	"slices"
	"testing"
)

// TestMeasuresAreTheTableByLOINCCode spells out, by hand, the measures
// the care rules and the pages rely on: each LOINC code finds its
// measure, key, unit and name.
func TestMeasuresAreTheTableByLOINCCode(t *testing.T) {
	tests := []struct {
		code, key, unit, text string
		also                  []string
		parts                 []string // required parts
	}{
		{"85354-9", "blood-pressure", "mm[Hg]", "Blood pressure", nil, []string{"8480-6", "8462-4"}},
		{"8480-6", "systolic", "mm[Hg]", "Systolic blood pressure", nil, nil},
		{"8462-4", "diastolic", "mm[Hg]", "Diastolic blood pressure", nil, nil},
		{"59408-5", "spo2", "%", "Oxygen saturation", []string{"2708-6"}, nil},
		{"2708-6", "spo2", "%", "Oxygen saturation", nil, nil},
		{"8867-4", "heart-rate", "/min", "Heart rate", nil, nil},
		{"29463-7", "weight", "kg", "Body weight", nil, nil},
		{"8310-5", "temperature", "Cel", "Body temperature", nil, nil},
		{"9279-1", "respiratory-rate", "/min", "Respiratory rate", nil, nil},
		{"2339-0", "glucose", "mg/dL", "Blood glucose", nil, nil},
		{"15074-8", "glucose-mmol-l", "mmol/L", "Blood glucose", nil, nil},
	}
	byCode := MeasuresByCode(Measures())
	for _, tt := range tests {
		t.Run(tt.code+" is "+tt.key, func(t *testing.T) {
			m, ok := byCode[tt.code]
			if !ok {
				t.Fatal("unknown")
			}
			if m.Key != tt.key || m.Unit.UCUM != tt.unit || m.Text != tt.text {
				t.Errorf("got %s in %s (%s)", m.Key, m.Unit.UCUM, m.Text)
			}
			for _, c := range tt.also {
				if !slices.ContainsFunc(m.LOINC, func(l Coding) bool { return l.Code == c }) {
					t.Errorf("%s is not among its codes", c)
				}
			}
			var parts []string
			for _, p := range m.Parts {
				if p.Required {
					parts = append(parts, p.Code())
				}
			}
			if !slices.Equal(parts, tt.parts) {
				t.Errorf("required parts %v, want %v", parts, tt.parts)
			}
		})
	}
	if _, ok := byCode["8478-0"]; !ok {
		t.Error("the mean pressure, an optional part, is not found")
	}
	keys := map[string]bool{}
	for _, m := range Measures() {
		for _, k := range append([]string{m.Key}, func() (ks []string) {
			for _, p := range m.Parts {
				ks = append(ks, p.Key)
			}
			return ks
		}()...) {
			if keys[k] {
				t.Errorf("key %s is used twice", k)
			}
			keys[k] = true
		}
	}
}
