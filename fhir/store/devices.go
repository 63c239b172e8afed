package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNoCredential means no device has that MQTT username.
var ErrNoCredential = errors.New("no such device credential")

// DeviceBinding is what ingestion needs to know of a registered Device.
type DeviceBinding struct {
	DeviceID  string
	PatientID string // "" when the device is bound to no patient
	// PatientIdentifiers are the bound Patient's identifiers as
	// "system|value".
	PatientIdentifiers []string
	Active             bool
}

// DeviceBinding returns the patient a Device is bound to and whether it is
// active (status active, or no status). Unknown or deleted: fhir.ErrNotFound.
func (s *Store) DeviceBinding(ctx context.Context, deviceID string) (DeviceBinding, error) {
	b := DeviceBinding{DeviceID: deviceID}
	var patientID *string
	var status, idents []string
	var deleted bool
	err := s.pool.QueryRow(ctx, `SELECT d.patient_id, d.status, d.deleted, coalesce(p.identifier, '{}')
		FROM device d LEFT JOIN patient p ON p.id = d.patient_id AND NOT p.deleted WHERE d.id = $1`, deviceID).
		Scan(&patientID, &status, &deleted, &idents)
	if err != nil {
		return b, fmt.Errorf("device %s: %w", deviceID, translate(err))
	}
	if deleted {
		return b, fmt.Errorf("device %s: %w", deviceID, translate(pgx.ErrNoRows))
	}
	if patientID != nil {
		b.PatientID = *patientID
	}
	b.Active = len(status) == 0 || slices.Contains(status, "*|active")
	for _, t := range idents {
		// Token keys also hold "*|value" and "system|*" forms; keep the exact ones.
		if !strings.HasPrefix(t, "*|") && !strings.HasSuffix(t, "|*") {
			b.PatientIdentifiers = append(b.PatientIdentifiers, t)
		}
	}
	return b, nil
}

// PutDeviceCredential sets the MQTT username and secret hash of a device,
// replacing earlier ones (rotation) and enabling it.
func (s *Store) PutDeviceCredential(ctx context.Context, deviceID, username string, secretHash []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO device_credential (device_id, username, secret_hash) VALUES ($1, $2, $3)
		ON CONFLICT (device_id) DO UPDATE SET username = EXCLUDED.username, secret_hash = EXCLUDED.secret_hash,
		disabled = false, rotated_at = now()`, deviceID, username, secretHash)
	if err != nil {
		return fmt.Errorf("device credential %s: %w", deviceID, translate(err))
	}
	return nil
}

// DisableDeviceCredential stops a device from connecting.
func (s *Store) DisableDeviceCredential(ctx context.Context, deviceID string) error {
	tag, err := s.pool.Exec(ctx, "UPDATE device_credential SET disabled = true WHERE device_id = $1", deviceID)
	if err != nil {
		return fmt.Errorf("disable device %s: %w", deviceID, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("disable device %s: %w", deviceID, ErrNoCredential)
	}
	return nil
}

// DeviceCredential returns the device id and secret hash for a username.
func (s *Store) DeviceCredential(ctx context.Context, username string) (deviceID string, secretHash []byte, disabled bool, err error) {
	err = s.pool.QueryRow(ctx, "SELECT device_id, secret_hash, disabled FROM device_credential WHERE username = $1", username).
		Scan(&deviceID, &secretHash, &disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false, ErrNoCredential
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("device credential: %w", translate(err))
	}
	return deviceID, secretHash, disabled, nil
}
