package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vidda/vidda/internal/auth"
)

// demoUsers are the demo clinic's people who sign in at /login. Their
// passwords are printed by make run: for a local demo only.
//
//nolint:gosec // G101: published demo passwords, on purpose.
func demoUsers() []struct {
	who string
	nu  auth.NewUser
} {
	return []struct {
		who string
		nu  auth.NewUser
	}{
		{"nurse Ingrid Berg", auth.NewUser{Username: "ingrid", Role: auth.RoleNurse, PractitionerID: "demo-nurse", Password: "vidda-demo-nurse"}},
		{"clinician Dr Lars Holm", auth.NewUser{Username: "lars", Role: auth.RoleClinician, PractitionerID: "demo-clinician", Password: "vidda-demo-clinician"}},
		{"patient Astrid Nilsson", auth.NewUser{Username: "astrid", Role: auth.RolePatient, PatientID: "demo-patient-1", Password: "vidda-demo-patient"}},
		{"admin", auth.NewUser{Username: "admin", Role: auth.RoleAdmin, Password: "vidda-demo-admin"}},
	}
}

// seedUsers makes sure the demo users exist with their demo passwords
// (running it again changes nothing, and ends no session) and writes their
// logins to out.
func seedUsers(ctx context.Context, pool *pgxpool.Pool, out io.Writer, base string) error {
	users, err := auth.NewUsers(pool, auth.SessionConfig{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDemo sign-in at %s/login (demo passwords; change one with vidda user passwd --username NAME):\n", base)
	for _, d := range demoUsers() {
		u, _, err := users.Ensure(ctx, d.nu)
		if err != nil {
			return fmt.Errorf("demo user %s: %w", d.nu.Username, err)
		}
		note := ""
		if u.Disabled {
			note = "   (disabled: vidda user enable --username " + u.Username + ")"
		}
		fmt.Fprintf(out, "  %-24s %-8s / %s%s\n", d.who, u.Username, d.nu.Password, note)
	}
	return nil
}
