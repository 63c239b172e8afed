package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
)

// client registers SMART Backend Services clients (EHRs pulling data).
func client(ctx context.Context, e *env, args []string) error {
	usage := "Usage: vidda client add --id ID --scope \"system/Observation.rs system/Patient.rs\" (--jwks-url URL | --jwks-file FILE) [--name NAME]\n" +
		"       vidda client list\n" +
		"       vidda client disable --id ID\n\n" +
		"A client obtains access tokens at POST /auth/token with a client_credentials grant\n" +
		"and a private_key_jwt assertion (RS384 or ES384) signed by one of the registered keys.\n" +
		"add registers the client or replaces its keys, scopes and name."
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, usage)
		if len(args) == 0 {
			return errors.New("client: say add, list or disable")
		}
		return nil
	}
	action := args[0]
	var c common
	var id, name, scope, jwksURL, jwksFile string
	cs := config.New("client "+action, e.getenv)
	bindCommon(cs, &c)
	cs.String(&id, "id", "", "", "the client id (the iss and sub of its assertions)")
	cs.String(&name, "name", "", "", "who the client is, e.g. \"Regional EHR\" (add)")
	cs.String(&scope, "scope", "", "", "space-separated system/ scopes it may be granted (add)")
	cs.String(&jwksURL, "jwks-url", "", "", "where the client serves its public JWK Set (add)")
	cs.String(&jwksFile, "jwks-file", "", "", "a file holding its public JWK Set (add)")
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	_, pool, err := c.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	clients := auth.NewClients(pool)
	switch action {
	case "add":
		cl := &auth.Client{ID: id, Name: name, Scopes: strings.Fields(scope), JWKSURL: jwksURL}
		if cl.Name == "" {
			cl.Name = id
		}
		if jwksFile != "" {
			raw, err := os.ReadFile(jwksFile) //nolint:gosec // the operator names the file on the command line
			if err != nil {
				return fmt.Errorf("--jwks-file: %w", err)
			}
			cl.JWKS = json.RawMessage(raw)
		}
		if err := clients.Add(ctx, cl); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "client %s registered with %s\n", id, strings.Join(cl.Scopes, " "))
		return nil
	case "list":
		list, err := clients.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tKEYS\tSTATE")
		for _, cl := range list {
			keys, state := "inline", "enabled"
			if cl.JWKSURL != "" {
				keys = cl.JWKSURL
			}
			if cl.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cl.ID, cl.Name, strings.Join(cl.Scopes, " "), keys, state)
		}
		return tw.Flush()
	case "disable":
		if id == "" {
			return errors.New("client disable: --id is required")
		}
		if err := clients.Disable(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "client %s can no longer obtain tokens\n", id)
		return nil
	}
	return fmt.Errorf("client: unknown action %q (add, list or disable)", action)
}
