package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// Device secrets are 256 random bits, so a plain SHA-256 is enough to keep
// a database leak from revealing them; a slow password hash would add
// nothing but cost on every reconnect of thousands of gateways.

// NewDeviceSecret returns a fresh device password and the hash to store.
func NewDeviceSecret() (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("device secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, hashDeviceSecret(secret), nil
}

func hashDeviceSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// DeviceLookup finds the stored credential for an MQTT username.
type DeviceLookup func(ctx context.Context, username string) (deviceID string, secretHash []byte, disabled bool, err error)

// DeviceAuthenticator checks device MQTT credentials.
type DeviceAuthenticator struct {
	lookup   DeviceLookup
	notFound error
}

// NewDeviceAuthenticator checks credentials found by lookup; lookup
// returns an error matching notFound for an unknown username.
func NewDeviceAuthenticator(lookup DeviceLookup, notFound error) *DeviceAuthenticator {
	return &DeviceAuthenticator{lookup: lookup, notFound: notFound}
}

// CheckDevice returns the device id when username and password belong to
// an enabled device; ok is false otherwise. err is only for lookup failures.
func (a *DeviceAuthenticator) CheckDevice(ctx context.Context, username, password string) (string, bool, error) {
	deviceID, hash, disabled, err := a.lookup(ctx, username)
	if errors.Is(err, a.notFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if disabled || subtle.ConstantTimeCompare(hash, hashDeviceSecret(password)) != 1 {
		return "", false, nil
	}
	return deviceID, true, nil
}

// DeviceOf returns the device id of an enabled device's username, for ACL
// checks that carry no password.
func (a *DeviceAuthenticator) DeviceOf(ctx context.Context, username string) (string, bool, error) {
	deviceID, _, disabled, err := a.lookup(ctx, username)
	if errors.Is(err, a.notFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return deviceID, !disabled, nil
}
