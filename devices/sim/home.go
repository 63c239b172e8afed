package sim

import (
	"log/slog"

	"github.com/vidda/vidda/devices"
)

// Kind is a kind of home measuring device.
type Kind string

// The devices a simulated home may have.
const (
	KindBPCuff        Kind = "bp-cuff"
	KindScale         Kind = "scale"
	KindPulseOximeter Kind = "pulse-oximeter"
	KindGlucometer    Kind = "glucometer"
	KindThermometer   Kind = "thermometer"
)

// Kinds lists every kind of device, in a fixed order.
func Kinds() []Kind {
	return []Kind{KindBPCuff, KindScale, KindPulseOximeter, KindGlucometer, KindThermometer}
}

// Types returns the reading types (devices.Table names) the device sends.
func (k Kind) Types() []string {
	switch k {
	case KindBPCuff:
		return []string{"blood-pressure"}
	case KindScale:
		return []string{"weight"}
	case KindPulseOximeter:
		return []string{"spo2", "heart-rate"}
	case KindGlucometer:
		return []string{"glucose"}
	case KindThermometer:
		return []string{"temperature"}
	}
	return nil
}

// Name is a friendly name for the Device resource.
func (k Kind) Name() string {
	switch k {
	case KindBPCuff:
		return "Blood pressure cuff"
	case KindScale:
		return "Bathroom scale"
	case KindPulseOximeter:
		return "Pulse oximeter"
	case KindGlucometer:
		return "Glucose meter"
	case KindThermometer:
		return "Thermometer"
	}
	return string(k)
}

// Profile is the condition that shapes a simulated patient's readings and
// the devices in their home.
type Profile string

// The simulated conditions.
const (
	// ProfileHypertension: blood pressure above normal, drifting slowly.
	ProfileHypertension Profile = "hypertension"
	// ProfileHeartFailure: weight creeping up over days (fluid), blood
	// pressure.
	ProfileHeartFailure Profile = "heart-failure"
	// ProfileCOPD: low SpO2 with dips, now and then a fever.
	ProfileCOPD Profile = "copd"
	// ProfileDiabetes: fasting and post-meal glucose, blood pressure.
	ProfileDiabetes Profile = "diabetes"
)

// Home is one simulated patient's home as Homes plans it.
type Home struct {
	// Index numbers the home from 1.
	Index int
	// Profile is the patient's condition.
	Profile Profile
	// Kinds are its devices, one to three.
	Kinds []Kind
}

// Homes plans n homes. Home i always gets the same profile and devices,
// whatever n and the seed, so that registering them again is idempotent.
func Homes(n int) []Home {
	out := make([]Home, 0, max(n, 0))
	for i := 1; i <= n; i++ {
		extra := (i-1)/4%2 == 1 // every other round of the four profiles has one device more
		h := Home{Index: i}
		switch (i - 1) % 4 {
		case 0:
			h.Profile, h.Kinds = ProfileHypertension, []Kind{KindBPCuff}
			if extra {
				h.Kinds = append(h.Kinds, KindScale)
			}
		case 1:
			h.Profile, h.Kinds = ProfileHeartFailure, []Kind{KindScale, KindBPCuff}
			if extra {
				h.Kinds = append(h.Kinds, KindPulseOximeter)
			}
		case 2:
			h.Profile, h.Kinds = ProfileCOPD, []Kind{KindPulseOximeter}
			if extra {
				h.Kinds = append(h.Kinds, KindThermometer)
			}
		case 3:
			h.Profile, h.Kinds = ProfileDiabetes, []Kind{KindGlucometer}
			if extra {
				h.Kinds = append(h.Kinds, KindBPCuff)
			}
		}
		out = append(out, h)
	}
	return out
}

// Device is a registered device the simulator publishes as.
type Device struct {
	// ID is the Device id: its topic level, and its client id after "sim-".
	ID string
	// Username and Password are its MQTT credentials.
	Username string
	Password string //nolint:gosec // the device's own secret, needed to connect; never logged (see LogValue)
	// Kind is what it measures.
	Kind Kind
	// Home is the index of its home: devices of one home measure the same
	// patient.
	Home int
	// Profile is that patient's condition.
	Profile Profile
}

// LogValue names the device by id only, so its password cannot reach a
// log by accident.
func (d Device) LogValue() slog.Value { return slog.StringValue(d.ID) }

// topic is where the device publishes compact JSON.
func (d Device) topic() string {
	return devices.TopicPrefix + d.ID + "/" + string(devices.KindReadings)
}
