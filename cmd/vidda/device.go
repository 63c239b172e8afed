package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
)

const deviceSerialSystem = "urn:vidda:device-serial"

// device registers home devices and manages their MQTT credentials.
func device(ctx context.Context, e *env, args []string) error {
	usage := "Usage: vidda device add --patient ID --serial S [--name NAME]\n" +
		"       vidda device rotate --device ID\n" +
		"       vidda device disable --device ID\n\n" +
		"add creates the FHIR Device bound to the patient and prints one JSON object\n" +
		`{"device","username","password","topic"}; rotate prints new credentials the same way.`
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, usage)
		if len(args) == 0 {
			return errors.New("device: say add, rotate or disable")
		}
		return nil
	}
	action := args[0]
	var c common
	var as auditSettings
	var patient, serial, name, deviceID string
	cs := config.New("device "+action, e.getenv)
	bindCommon(cs, &c)
	bindAudit(cs, &as)
	cs.String(&patient, "patient", "", "", "Patient id the device measures (add)")
	cs.String(&serial, "serial", "", "", "serial number or MAC of the device (add)")
	cs.String(&name, "name", "", "", "a friendly name, e.g. \"Blood pressure cuff\" (add)")
	cs.String(&deviceID, "device", "", "", "Device id (rotate, disable)")
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	auditCfg, err := as.config(defaultInstanceID())
	if err != nil {
		return err
	}
	log, pool, st, err := c.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	aw, err := newAuditWriter(pool, search.NewRegistry(time.UTC), auditCfg, nil, log)
	if err != nil {
		return err
	}
	// Every change of a device's credentials is in the audit trail.
	changed := func(kind audit.Kind, id, patient, detail string) func() error {
		return func() error {
			ev := audit.Event{
				Kind: kind, Agent: operator(e, "vidda device "+action), ResourceType: "Device", ResourceID: id,
				Detail: detail,
			}
			if patient != "" {
				ev.Patients = []string{patient}
			}
			return recordNow(ctx, aw, ev)
		}
	}
	switch action {
	case "add":
		if patient == "" || serial == "" {
			return errors.New("device add: --patient and --serial are required")
		}
		id, err := addDevice(ctx, st, patient, serial, name)
		if err != nil {
			return err
		}
		return printCredentials(ctx, e, st, id, changed(audit.KindDeviceCredentialAdd, id, patient,
			"vidda device add: Device created for serial "+serial+", credentials issued"))
	case "rotate":
		if deviceID == "" {
			return errors.New("device rotate: --device is required")
		}
		b, err := st.DeviceBinding(ctx, deviceID)
		if err != nil {
			return err
		}
		return printCredentials(ctx, e, st, deviceID, changed(audit.KindDeviceCredentialRotate, deviceID, b.PatientID,
			"vidda device rotate: new credentials issued"))
	case "disable":
		if deviceID == "" {
			return errors.New("device disable: --device is required")
		}
		b, _ := st.DeviceBinding(ctx, deviceID) // the patient, if the Device still exists
		if err := st.DisableDeviceCredential(ctx, deviceID); err != nil {
			return err
		}
		if err := changed(audit.KindDeviceCredentialDisable, deviceID, b.PatientID, "vidda device disable")(); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "device %s can no longer connect\n", deviceID)
		return nil
	}
	return fmt.Errorf("device: unknown action %q (add, rotate or disable)", action)
}

// addDevice creates the Device (once per serial) bound to an existing patient.
func addDevice(ctx context.Context, st *store.Store, patient, serial, name string) (string, error) {
	if _, err := st.Read(ctx, "Patient", patient, store.Access{}); err != nil {
		return "", fmt.Errorf("device add: --patient %s: %w", patient, err)
	}
	body := map[string]any{
		"resourceType": "Device",
		"identifier":   []any{map[string]any{"system": deviceSerialSystem, "value": serial}},
		"status":       "active",
		"patient":      map[string]any{"reference": "Patient/" + patient},
	}
	if name != "" {
		body["deviceName"] = []any{map[string]any{"name": name, "type": "user-friendly-name"}}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("device add: %w", err)
	}
	res, err := fhir.NewRegistry().Parse("Device", raw)
	if err != nil {
		return "", fmt.Errorf("device add: %w", err)
	}
	stored, created, err := st.CreateIfNoneExist(ctx, res, url.Values{"identifier": {deviceSerialSystem + "|" + serial}}, store.Access{})
	if err != nil {
		return "", fmt.Errorf("device add: %w", err)
	}
	if !created {
		return "", fmt.Errorf("device add: serial %s is already Device/%s; use vidda device rotate --device %s for new credentials", serial, stored.ID, stored.ID)
	}
	return stored.ID, nil
}

// printCredentials stores new credentials for the device, records the
// change (recorded), and prints them.
func printCredentials(ctx context.Context, e *env, st *store.Store, deviceID string, recorded func() error) error {
	secret, hash, err := auth.NewDeviceSecret()
	if err != nil {
		return err
	}
	if err := st.PutDeviceCredential(ctx, deviceID, deviceID, hash); err != nil {
		return err
	}
	if err := recorded(); err != nil {
		return err
	}
	out, err := json.Marshal(map[string]string{
		"device": deviceID, "username": deviceID, "password": secret, "topic": "vidda/v1/devices/" + deviceID,
	})
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	fmt.Fprintln(e.stdout, string(out))
	return nil
}
