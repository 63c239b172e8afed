package devices

import (
	"strings"
	"testing"
	"time"
)

// judgeAll flags values above 100 H and tags readings received over an
// hour late.
type judgeAll struct{ seen []Verdict }

func (j *judgeAll) Judge(v *Verdict) {
	flag := func(x float64) string {
		if x > 100 {
			return "H"
		}
		return "N"
	}
	v.Late = v.Received.Sub(v.At) > time.Hour
	if len(v.Components) == 0 {
		v.Flag = flag(v.Value)
	} else {
		v.Flag = "N"
		for i := range v.Components {
			c := &v.Components[i]
			if c.Flag = flag(c.Value); c.Flag == "H" {
				v.Flag = "H"
			}
		}
	}
	j.seen = append(j.seen, *v)
}

func TestJudgedObservationsCarryTheInterpretation(t *testing.T) {
	at := received().Add(-3 * time.Hour)
	bp := Reading{Type: "blood-pressure", ID: "r1", At: at, Values: map[string]Quantity{
		"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
	}}
	j := &judgeAll{}
	obs, err := bp.JudgedObservations("dev-1", "pat-1", received(), j)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 2 || len(j.seen) != 2 {
		t.Fatalf("%d observations, %d verdicts", len(obs), len(j.seen))
	}
	if v := j.seen[0]; v.Code != "85354-9" || len(v.Components) != 2 || v.Components[0].Code != "8480-6" || v.PatientID != "pat-1" {
		t.Errorf("panel verdict %+v", v)
	}
	if v := j.seen[1]; v.Code != "8867-4" || v.Value != 71 {
		t.Errorf("pulse verdict %+v", v)
	}
	panel := string(obs[0].JSON)
	interp := `"interpretation":[{"coding":[{"system":"` + SystemInterpretation + `","code":"`
	// The Observation's own interpretation comes first (before its
	// components'), which the outbox trigger of migration 00012 relies on.
	if i := strings.Index(panel, interp); i < 0 || panel[i+len(interp):i+len(interp)+2] != `H"` {
		t.Errorf("panel: %s", panel)
	}
	if strings.Count(panel, interp) != 3 || !strings.Contains(panel, `"code":"late"`) {
		t.Errorf("panel: want its own and two component interpretations and the late tag: %s", panel)
	}
	if !strings.HasPrefix(string(obs[1].JSON), `{"resourceType":"Observation","meta":{"tag":[{"system":"`+SystemReadingFlag+`","code":"late"`) {
		t.Errorf("pulse: %s", obs[1].JSON)
	}
	for _, o := range obs {
		checkModel(t, o)
	}
	plain, err := bp.Observations("dev-1", "pat-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain[0].JSON), "interpretation") || strings.Contains(string(plain[0].JSON), "meta") {
		t.Errorf("without a judge: %s", plain[0].JSON)
	}
	w := Reading{Type: "weight", At: received(), Values: map[string]Quantity{"value": {70.4, "kg"}}}
	obs, err = w.JudgedObservations("dev-1", "pat-1", received(), j)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(obs[0].JSON); !strings.Contains(s, `"valueQuantity":{"value":70.4,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},`+interp+`N","display":"Normal"}]}],"device"`) || strings.Contains(s, "meta") {
		t.Errorf("weight: %s", s)
	}
	checkModel(t, obs[0])
}

// BenchmarkJudgedObservations is what interpretation adds to mapping a
// reading (a Judge that answers at once; internal/care's
// BenchmarkInterpret is the cost of the real one).
func BenchmarkJudgedObservations(b *testing.B) {
	bp := Reading{Type: "blood-pressure", ID: "r1", At: received(), Values: map[string]Quantity{
		"systolic": {142, "mm[Hg]"}, "diastolic": {91, "mm[Hg]"}, "pulse": {71, "/min"},
	}}
	spo2 := Reading{Type: "spo2", ID: "r2", At: received(), Values: map[string]Quantity{"value": {93, "%"}}}
	for _, c := range []struct {
		name string
		r    Reading
		j    Judge
	}{
		{"spo2/plain", spo2, nil},
		{"spo2/judged", spo2, nopJudge{}},
		{"blood-pressure/plain", bp, nil},
		{"blood-pressure/judged", bp, nopJudge{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.r.JudgedObservations("dev-1", "pat-1", received(), c.j); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopJudge struct{}

func (nopJudge) Judge(v *Verdict) {
	v.Flag = "N"
	for i := range v.Components {
		v.Components[i].Flag = "N"
	}
}
