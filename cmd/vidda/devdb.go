package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/db/devpg"
)

// devdb runs the local development cluster `make run` uses.
func devdb(ctx context.Context, e *env, args []string) error {
	var (
		dir                string
		port               int
		throwaway, durable bool
	)
	cs := config.New("devdb", e.getenv)
	cs.String(&dir, "dir", "", ".data/pg", "data directory")
	cs.Int(&port, "port", "", 54329, "port on 127.0.0.1 (0: any free port)")
	cs.Bool(&throwaway, "throwaway", "", false, "a cluster for tests: fsync off unless --durable")
	cs.Bool(&durable, "durable", "", false, "with --throwaway: keep fsync on (benchmarks)")
	cs.Flags().Usage = func() {
		fmt.Fprintln(e.stderr, "Usage: vidda devdb start|stop [--dir .data/pg] [--port 54329] [--throwaway [--durable]]\n\nstart prints the database URL alone on stdout. For development only: trust auth on loopback.\n\nFlags:")
		cs.Flags().PrintDefaults()
	}
	if len(args) == 0 {
		cs.Flags().Usage()
		return errors.New("devdb: say start or stop")
	}
	action := args[0]
	if err := cs.Parse(args[1:]); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(e.stderr, "devdb: "+format+"\n", a...) }
	opts := devpg.Options{Dir: dir, Port: port, Durable: !throwaway || durable, Logf: logf}
	switch action {
	case "start":
		c, err := devpg.Start(ctx, opts)
		if err != nil {
			return err
		}
		if err := c.CreateDatabase(ctx, "vidda"); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, c.URL("vidda"))
		return nil
	case "stop":
		c, err := devpg.Attach(opts)
		if err != nil {
			return err
		}
		return c.Stop(ctx)
	}
	return fmt.Errorf("devdb: unknown action %q (start or stop)", action)
}
