package main

import (
	"context"

	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/db"
)

func migrate(ctx context.Context, e *env, args []string) error {
	var c common
	cs := config.New("migrate", e.getenv)
	bindCommon(cs, &c)
	if err := cs.Parse(args); err != nil {
		return err
	}
	log, pool, err := c.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	return db.Migrate(ctx, pool, log)
}
