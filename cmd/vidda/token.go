package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
)

func token(ctx context.Context, e *env, args []string) error {
	var (
		c                                   common
		role, patient, practitioner, scopes string
		subject                             string
		ttl                                 time.Duration
	)
	cs := config.New("token", e.getenv)
	bindCommon(cs, &c)
	cs.String(&role, "role", "", "", "admin, clinician, nurse, patient or system (required)")
	cs.String(&patient, "patient", "", "", "Patient id the token is for (required with --role patient)")
	cs.String(&practitioner, "practitioner", "", "", "Practitioner id of a clinician or nurse")
	cs.String(&scopes, "scope", "", "", "space-separated SMART scopes (default: the role's scopes)")
	cs.String(&subject, "sub", "", "", "subject (default: local-<role>)")
	cs.Duration(&ttl, "ttl", "", time.Hour, "how long the token is valid")
	cs.Flags().Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: vidda token --role ROLE [--patient ID] [--practitioner ID] [--ttl 1h]\n\nPrints a bearer token alone on stdout, e.g. TOKEN=$(vidda token --role nurse).\n\nFlags:")
		cs.Flags().PrintDefaults()
	}
	if err := cs.Parse(args); err != nil {
		return err
	}
	r, err := auth.ParseRole(role)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	if subject == "" {
		subject = "local-" + string(r)
	}
	log, pool, err := c.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	keys := auth.NewKeyStore(pool, auth.KeyConfig{}, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		return err
	}
	tok, err := keys.Mint(ctx, auth.TokenRequest{
		Subject: subject, Role: r, PatientID: patient, PractitionerID: practitioner,
		Scopes: strings.Fields(scopes), TTL: ttl,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}
