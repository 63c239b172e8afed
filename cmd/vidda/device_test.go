package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vidda/vidda/internal/db/dbtest"
)

func TestDeviceAddPrintsCredentialsOnce(t *testing.T) {
	env := map[string]string{"VIDDA_DATABASE_URL": dbtest.NewDatabase(t), "VIDDA_LOG_LEVEL": "error"}
	ctx := context.Background()
	if _, _, err := runCmd(t, ctx, env, "seed"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-1", "--serial", "BPM-9")
	if err != nil {
		t.Fatal(err)
	}
	var cred map[string]string
	if err := json.Unmarshal([]byte(out), &cred); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q is not one JSON object: %v", out, err)
	}
	if cred["device"] == "" || cred["username"] == "" || len(cred["password"]) < 32 || cred["topic"] != "vidda/v1/devices/"+cred["device"] {
		t.Fatalf("credentials %v", cred)
	}
	if _, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "demo-patient-1", "--serial", "BPM-9"); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Fatalf("a second add of one serial: %v", err)
	}
	if _, _, err := runCmd(t, ctx, env, "device", "add", "--patient", "nobody", "--serial", "X"); err == nil {
		t.Fatal("a device was bound to a patient who does not exist")
	}
	out2, _, err := runCmd(t, ctx, env, "device", "rotate", "--device", cred["device"])
	if err != nil || strings.Contains(out2, cred["password"]) {
		t.Fatalf("rotate: %v %q", err, out2)
	}
	if _, _, err := runCmd(t, ctx, env, "device", "disable", "--device", cred["device"]); err != nil {
		t.Fatal(err)
	}
}
