package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/internal/audit"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/internal/web"
)

// auditSettings are the audit trail's settings, shared by serve and the
// commands that change what it records.
type auditSettings struct {
	cfg   audit.Config
	onOff string
}

func bindAudit(cs *config.Set, s *auditSettings) {
	s.cfg = audit.DefaultConfig()
	cs.String(&s.onOff, "audit", "VIDDA_AUDIT", "on", "record an AuditEvent of every access: on, or off only to measure what that costs")
	cs.Duration(&s.cfg.FlushEvery, "audit-flush-every", "VIDDA_AUDIT_FLUSH_EVERY", s.cfg.FlushEvery,
		"how long the audit writer gathers events before one COPY: longer costs the database less per event, and a crash loses at most this much of the trail")
}

// config validates the settings; instance names this vidda as observer.
func (s *auditSettings) config(instance string) (audit.Config, error) {
	on, err := audit.ParseSwitch(s.onOff)
	if err != nil {
		return audit.Config{}, err
	}
	s.cfg.Enabled, s.cfg.Instance = on, instance
	if err := s.cfg.Validate(); err != nil {
		return audit.Config{}, fmt.Errorf("VIDDA_AUDIT: %w", err)
	}
	return s.cfg, nil
}

// newAuditWriter is the audit writer, or nil when auditing is off.
func newAuditWriter(pool *pgxpool.Pool, params *search.Registry, cfg audit.Config, reg prometheus.Registerer, log *slog.Logger) (*audit.Writer, error) {
	if !cfg.Enabled {
		log.Warn("the audit trail is off (VIDDA_AUDIT=off): accesses are not recorded")
		return nil, nil //nolint:nilnil // nil is "off", as documented.
	}
	return audit.NewWriter(pool, params, cfg, reg, log)
}

// auditRecorder is w as the HTTP server's recorder; nil when off, so that
// the server skips auditing instead of calling a nil writer.
func auditRecorder(w *audit.Writer) httpapi.AuditRecorder {
	if w == nil {
		return nil
	}
	return w
}

// signInRecorder is w as the sign-in pages' recorder; nil when off.
func signInRecorder(w *audit.Writer) web.SignInRecorder {
	if w == nil {
		return nil
	}
	return w
}

// operator is who runs a command on the server, for the audit trail.
func operator(e *env, command string) audit.Agent {
	user := e.getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, _ := os.Hostname()
	return audit.Agent{Subject: user, Role: "operator", Name: command, Address: host}
}

// recordNow writes events of a command at once; the command fails if they
// cannot be written, since what it changed must be in the trail.
func recordNow(ctx context.Context, w *audit.Writer, events ...audit.Event) error {
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.WriteNow(ctx, events...); err != nil {
		return fmt.Errorf("the change is made, but its audit event was not written: %w", err)
	}
	return nil
}
