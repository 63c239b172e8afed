package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
)

const userUsage = `Usage: vidda user add --username U --role ROLE [--patient ID] [--practitioner ID] [--totp] [--password-file F]
       vidda user passwd --username U [--password-file F]
       vidda user disable|enable --username U
       vidda user list

Manages the people who sign in at /login. ROLE is admin, clinician, nurse or
patient; a patient user is linked to their Patient (--patient, required), a
nurse or clinician to the Practitioner they act as (--practitioner).

The password is read from --password-file, or else from standard input
(prompted for without echo on a terminal; otherwise its first line), never
from the command line. At least 12 characters.

add --totp also sets up a one-time-code second factor and prints its
otpauth:// URL on stdout: open it in (or make a QR code of it for) an
authenticator app. passwd and disable end the user's sessions; passwd and
enable lift a lockout.`

// userCmd manages the people who sign in.
func userCmd(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stderr, userUsage)
		if len(args) == 0 {
			return errors.New("user: say add, passwd, disable, enable or list")
		}
		return nil
	}
	action := args[0]
	var (
		c                                           common
		username, role, patient, practitioner, file string
		withTOTP                                    bool
	)
	cs := config.New("user "+action, e.getenv)
	bindCommon(cs, &c)
	cs.String(&username, "username", "", "", "the username (add, passwd, disable, enable)")
	cs.String(&role, "role", "", "", "admin, clinician, nurse or patient (add)")
	cs.String(&patient, "patient", "", "", "the patient user's own Patient id (add, role patient)")
	cs.String(&practitioner, "practitioner", "", "", "Practitioner id a nurse or clinician acts as (add)")
	cs.Bool(&withTOTP, "totp", "", false, "require a one-time code from an authenticator app as well (add)")
	cs.String(&file, "password-file", "", "", "read the password from the first line of this file (add, passwd; default: stdin)")
	cs.Flags().Usage = func() {
		fmt.Fprintln(e.stderr, userUsage+"\n\nFlags:")
		cs.Flags().PrintDefaults()
	}
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	switch action {
	case "add", "passwd", "disable", "enable", "list":
	default:
		return fmt.Errorf("user: unknown action %q (add, passwd, disable, enable or list)", action)
	}
	if action != "list" && username == "" {
		return fmt.Errorf("user %s: --username is required", action)
	}
	if action == "add" && role == "" {
		return errors.New("user add: --role is required")
	}
	// Read the password before connecting, so a prompt comes first.
	var password string
	if action == "add" || action == "passwd" {
		var err error
		if password, err = readPassword(e, file); err != nil {
			return fmt.Errorf("user %s: %w", action, err)
		}
		if err := auth.CheckPasswordPolicy(password); err != nil {
			return fmt.Errorf("user %s: %w", action, err)
		}
	}
	_, pool, st, err := c.openStore(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	users, err := auth.NewUsers(pool, auth.SessionConfig{})
	if err != nil {
		return err
	}
	switch action {
	case "add":
		return addUser(ctx, e, users, st, auth.NewUser{
			Username: username, Role: auth.Role(role), PatientID: patient, PractitionerID: practitioner,
			Password: password, TOTP: withTOTP,
		})
	case "list":
		return listUsers(ctx, e, users)
	}
	u, err := users.ByUsername(ctx, username)
	if err != nil {
		return fmt.Errorf("user %s: %w", action, err)
	}
	var (
		ended int64
		done  string
	)
	switch action {
	case "passwd":
		ended, err = users.SetPassword(ctx, u.ID, password)
		done = "has a new password"
	case "disable":
		ended, err = users.Disable(ctx, u.ID)
		done = "is disabled"
	case "enable":
		err = users.Enable(ctx, u.ID)
		done = "may sign in again"
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", action, err)
	}
	fmt.Fprintf(e.stderr, "%s %s", u.Username, done)
	if action != "enable" {
		fmt.Fprintf(e.stderr, "; %d session(s) ended", ended)
	}
	fmt.Fprintln(e.stderr)
	return nil
}

func addUser(ctx context.Context, e *env, users *auth.Users, st *store.Store, nu auth.NewUser) error {
	for _, link := range []struct{ typ, id string }{{"Patient", nu.PatientID}, {"Practitioner", nu.PractitionerID}} {
		if link.id == "" {
			continue
		}
		if _, err := st.Read(ctx, link.typ, link.id, store.Access{}); err != nil {
			return fmt.Errorf("user add: --%s %s: %w", strings.ToLower(link.typ), link.id, err)
		}
	}
	u, totpURL, err := users.Add(ctx, nu)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "added %s %s (id %s)\n", u.Role, u.Username, u.ID)
	if totpURL != "" {
		fmt.Fprintln(e.stdout, totpURL)
	}
	return nil
}

func listUsers(ctx context.Context, e *env, users *auth.Users) error {
	all, err := users.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tPATIENT\tPRACTITIONER\tTOTP\tSTATE\tSESSIONS")
	for _, u := range all {
		state := "active"
		switch {
		case u.Disabled:
			state = "disabled"
		case u.LockedUntil.After(time.Now()):
			state = "locked until " + u.LockedUntil.Local().Format(time.TimeOnly)
		}
		totp := "no"
		if u.TOTP {
			totp = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", u.Username, u.Role, dash(u.PatientID), dash(u.PractitionerID), totp, state, u.ActiveSessions)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// maxPasswordInput bounds what is read for a password.
const maxPasswordInput = 4096

// readPassword reads the new password: the first line of file, or of
// standard input, prompting twice without echo when that is a terminal.
// Only the line ending is stripped; spaces belong to the password.
func readPassword(e *env, file string) (string, error) {
	if file != "" {
		f, err := os.Open(file) //nolint:gosec // the operator names the file to read
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		defer f.Close()
		return firstLine(f)
	}
	in := e.stdin
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) { //nolint:gosec // a file descriptor fits an int
		fmt.Fprint(e.stderr, "New password: ")
		pw, err := term.ReadPassword(int(f.Fd())) //nolint:gosec // as above
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd())) //nolint:gosec // as above
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return "", errors.New("the two passwords differ")
		}
		return string(pw), nil
	}
	return firstLine(in)
}

func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password given: pipe it to standard input or use --password-file")
	}
	return line, nil
}
