package broker

import "errors"

// Sentinel errors.
var (
	// ErrInvalidConfig means a Config cannot work; Validate wraps it.
	ErrInvalidConfig = errors.New("invalid broker config")
	// ErrAlreadyStarted means Run was called a second time on one Broker.
	ErrAlreadyStarted = errors.New("broker already started")
	// ErrNotListening is Ping's answer before Run listens and once it stops.
	ErrNotListening = errors.New("mqtt broker is not listening")
)
