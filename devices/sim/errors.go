package sim

import "errors"

var (
	// ErrInvalidConfig is a Config that cannot work.
	ErrInvalidConfig = errors.New("invalid simulator configuration")
	// ErrNoDevices is a run with nothing to simulate.
	ErrNoDevices = errors.New("no devices to simulate")
)
