package sim

import (
	"math"
	"math/rand/v2"
)

// patient is one simulated person. Baselines are drawn once per home from
// the seed, so every device of the home measures the same person; the
// noise of each measurement comes from the measuring device's own source.
type patient struct {
	profile Profile
	// Blood pressure baselines (mmHg) and resting pulse (/min).
	sys, dia, pulse float64
	// A slow drift of blood pressure: amplitude (mmHg), period (days) and
	// phase, e.g. medication changes, season, stress.
	drift, period, phase float64
	// Weight (kg) at the start of the window and its creep (kg/day): in
	// heart failure, fluid retention shows as a steady gain.
	weight, creep float64
	// Resting SpO2 (%).
	spo2 float64
	// Fasting glucose (mmol/L).
	glucose float64
	// Body temperature (°C).
	temp float64
	// mgdl: the glucometer reports mg/dL rather than mmol/L.
	mgdl bool
}

func newPatient(seed uint64, home int, p Profile) patient {
	rng := rand.New(rand.NewPCG(seed, mix64(uint64(home)))) //nolint:gosec // simulation, reproducible on purpose
	between := func(lo, hi float64) float64 { return lo + rng.Float64()*(hi-lo) }
	pt := patient{
		profile: p,
		sys:     between(118, 132),
		pulse:   between(58, 82),
		drift:   between(2, 8),
		period:  between(10, 30),
		phase:   between(0, 2*math.Pi),
		weight:  between(52, 105),
		creep:   between(-0.01, 0.01),
		spo2:    between(95.5, 98.5),
		glucose: between(4.6, 5.8),
		temp:    between(36.4, 36.9),
		mgdl:    rng.IntN(5) == 0,
	}
	switch p {
	case ProfileHypertension:
		pt.sys = between(138, 165)
	case ProfileHeartFailure:
		pt.sys = between(105, 140)
		pt.pulse = between(68, 92)
		pt.creep = between(0.05, 0.2)
	case ProfileCOPD:
		pt.spo2 = between(89.5, 94)
		pt.pulse = between(75, 98)
	case ProfileDiabetes:
		pt.sys = between(128, 150)
		pt.glucose = between(6.2, 9.5)
		pt.weight = between(75, 120)
	}
	pt.dia = pt.sys*between(0.56, 0.66) + between(-3, 3)
	return pt
}

// bloodPressure is systolic, diastolic and pulse on a day of the window,
// with the morning surge.
func (p patient) bloodPressure(rng *rand.Rand, day float64, morning bool) (sys, dia, pulse float64) {
	drift := p.drift * math.Sin(2*math.Pi*day/p.period+p.phase)
	surge := 0.0
	if morning {
		surge = 5
	}
	sys = clamp(math.Round(p.sys+drift+surge+rng.NormFloat64()*6), 85, 230)
	dia = clamp(math.Round(p.dia+drift/2+surge/2+rng.NormFloat64()*4), 45, 130)
	if sys-dia < 20 {
		dia = sys - 20
	}
	pulse = clamp(math.Round(p.pulse+surge/2+rng.NormFloat64()*4), 40, 150)
	return sys, dia, pulse
}

// bodyWeight is the weight on a day of the window, to 0.1 kg.
func (p patient) bodyWeight(rng *rand.Rand, day float64) float64 {
	return round1(clamp(p.weight+p.creep*day+rng.NormFloat64()*0.25, 30, 250))
}

// oximetry is SpO2 and pulse; with COPD, one reading in fifteen is a dip.
func (p patient) oximetry(rng *rand.Rand) (spo2, pulse float64) {
	spo2 = p.spo2 + rng.NormFloat64()
	pulse = p.pulse + rng.NormFloat64()*5
	if p.profile == ProfileCOPD && rng.IntN(15) == 0 {
		spo2 = 84 + rng.Float64()*4
		pulse += 12
	}
	return clamp(math.Round(spo2), 70, 100), clamp(math.Round(pulse), 40, 160)
}

// bloodGlucose is fasting or post-meal glucose in mmol/L, to 0.1.
func (p patient) bloodGlucose(rng *rand.Rand, fasting bool) float64 {
	g := p.glucose + rng.NormFloat64()*0.6
	if !fasting {
		rise := 1.5 + rng.Float64()*2.5
		if p.profile == ProfileDiabetes {
			rise *= 1.8
		}
		g += rise + rng.NormFloat64()
	}
	return round1(clamp(g, 2.8, 30))
}

// bodyTemperature is in °C, to 0.1; with COPD, now and then a fever.
func (p patient) bodyTemperature(rng *rand.Rand) float64 {
	t := p.temp + rng.NormFloat64()*0.2
	if p.profile == ProfileCOPD && rng.IntN(30) == 0 {
		t = 37.8 + rng.Float64()*1.2
	}
	return round1(clamp(t, 35, 41))
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// mix64 spreads a small number over 64 bits (SplitMix64's finaliser), so
// that neighbouring homes get unrelated random streams.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
