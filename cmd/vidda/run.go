package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
//
//nolint:gochecknoglobals // the linker can only set package variables.
var version = "dev"

// command is one sub-command of vidda.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets from main.
type env struct {
	getenv func(string) string
	stdin  io.Reader // nil: os.Stdin
	stdout io.Writer
	stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"serve":      {"run the server (default)", serve},
		"migrate":    {"apply database migrations and exit", migrate},
		"token":      {"print a bearer token for local use", token},
		"seed":       {"load the demo clinic (idempotent) and print demo logins", seed},
		"device":     {"register a home device (add) and manage its MQTT credentials (rotate, disable)", device},
		"client":     {"register SMART Backend Services clients (add, list, disable)", client},
		"deadletter": {"list device input that could not be stored", deadletter},
		"user":       {"manage the people who sign in: add, passwd, disable, enable, list", userCmd},
		"devsim":     {"simulate homes publishing realistic readings over MQTT", devsim},
		"devdb":      {"start or stop the local development PostgreSQL under .data/", devdb},
		"version":    {"print the version", printVersion},
	}
}

// run dispatches to the sub-command named by args[0]; serve is the default.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		usage(stdout, cmds)
		return nil
	}
	name := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	cmd, ok := cmds[name]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", name)
	}
	err := cmd.run(ctx, e, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage: vidda <command> [flags]   (vidda <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
}

func printVersion(_ context.Context, e *env, args []string) error {
	if len(args) > 0 {
		fmt.Fprintln(e.stdout, "Usage: vidda version\n\nPrints the version of this build.")
		return nil
	}
	fmt.Fprintln(e.stdout, "vidda", version)
	return nil
}
