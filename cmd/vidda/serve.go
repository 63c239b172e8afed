package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/vidda/vidda/devices/broker"
	"github.com/vidda/vidda/devices/ingest"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/internal/config"
	"github.com/vidda/vidda/internal/db"
	"github.com/vidda/vidda/internal/httpapi"
	"github.com/vidda/vidda/internal/obs"
)

// common are the settings every database command shares.
type common struct {
	db  db.Config
	log obs.LogConfig
}

func bindCommon(cs *config.Set, c *common) {
	cs.Secret(&c.db.URL, "database-url", "VIDDA_DATABASE_URL", "", "PostgreSQL connection URL (required)")
	cs.String(&c.log.Level, "log-level", "VIDDA_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	cs.String(&c.log.Format, "log-format", "VIDDA_LOG_FORMAT", "json", "log format: json or text")
}

func (c *common) validate() error {
	if err := c.db.Validate(); err != nil {
		return err
	}
	return c.log.Validate()
}

// open validates the settings, makes the logger and opens the pool.
func (c *common) open(ctx context.Context, e *env) (*slog.Logger, *pgxpool.Pool, error) {
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	log, err := obs.NewLogger(e.stderr, c.log)
	if err != nil {
		return nil, nil, err
	}
	pool, err := db.Open(ctx, c.db)
	if err != nil {
		return nil, nil, err
	}
	return log, pool, nil
}

// openStore is open plus a FHIR store, for the one-shot commands.
func (c *common) openStore(ctx context.Context, e *env) (*slog.Logger, *pgxpool.Pool, *store.Store, error) {
	log, pool, err := c.open(ctx, e)
	if err != nil {
		return nil, nil, nil, err
	}
	return log, pool, store.New(pool, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), log), nil
}

type serveConfig struct {
	common
	http      httpapi.Config
	store     store.Config
	keys      auth.KeyConfig
	noMigrate bool
	zone      string
	pprofAddr string
	mqtt      broker.Config
	consumer  ingest.ConsumerConfig
	ingest    ingest.Config
	signIn    signInSettings
	video     videoSettings
	subs      subscriptionSettings
	audit     auditSettings
	oidc      oidcSettings
	export    exportSettings
	care      careSettings
}

func serve(ctx context.Context, e *env, args []string) error {
	cfg := serveConfig{http: httpapi.DefaultConfig(), store: store.DefaultConfig(), ingest: ingest.DefaultConfig()}
	cs := config.New("serve", e.getenv)
	bindCommon(cs, &cfg.common)
	cs.String(&cfg.http.Addr, "http-addr", "VIDDA_HTTP_ADDR", cfg.http.Addr, "HTTP listen address")
	cs.String(&cfg.http.BaseURL, "base-url", "VIDDA_BASE_URL", "", "public base URL for links (default http://<http-addr>)")
	cs.Int(&cfg.http.BodyLimit, "http-body-limit", "VIDDA_HTTP_BODY_LIMIT", cfg.http.BodyLimit, "largest request body in bytes")
	cs.Duration(&cfg.http.RequestTimeout, "request-timeout", "VIDDA_REQUEST_TIMEOUT", cfg.http.RequestTimeout, "deadline for one request's database work")
	cs.Duration(&cfg.http.ShutdownTimeout, "shutdown-timeout", "VIDDA_SHUTDOWN_TIMEOUT", cfg.http.ShutdownTimeout, "how long to drain in-flight requests on stop")
	cs.Int(&cfg.store.MaxBatch, "create-batch", "VIDDA_CREATE_BATCH", cfg.store.MaxBatch, "most creates that share one commit")
	cs.Int(&cfg.store.Writers, "create-writers", "VIDDA_CREATE_WRITERS", cfg.store.Writers, "group commits in flight at once")
	cs.Bool(&cfg.noMigrate, "no-migrate", "VIDDA_NO_MIGRATE", false, "do not apply migrations on start")
	cs.String(&cfg.zone, "time-zone", "VIDDA_TIME_ZONE", defaultTimeZone, "the clinic's time zone (IANA name): pages show times in it, and searched dates without a zone are read in it")
	cs.String(&cfg.mqtt.Listen, "mqtt-listen", "VIDDA_MQTT_LISTEN", broker.DefaultListen, "embedded MQTT broker listen address")
	cs.String(&cfg.mqtt.TLSCertFile, "mqtt-tls-cert", "VIDDA_MQTT_TLS_CERT", "", "PEM certificate: the embedded broker speaks TLS")
	cs.String(&cfg.mqtt.TLSKeyFile, "mqtt-tls-key", "VIDDA_MQTT_TLS_KEY", "", "PEM key for --mqtt-tls-cert")
	cs.Secret(&cfg.consumer.URL, "mqtt-url", "VIDDA_MQTT_URL", "", "external MQTT broker, tcp://user:pass@host:1883 (unset: embedded broker)")
	cs.String(&cfg.consumer.ClientID, "instance-id", "VIDDA_INSTANCE_ID", defaultInstanceID(), "stable id of this instance: its MQTT client id")
	cs.Duration(&cfg.ingest.Limits.MaxAge, "reading-max-age", "VIDDA_READING_MAX_AGE", cfg.ingest.Limits.MaxAge, "oldest measurement accepted from a device")
	cs.Int(&cfg.ingest.MaxBatch, "ingest-batch", "VIDDA_INGEST_BATCH", cfg.ingest.MaxBatch, "most readings committed together")
	cs.Int(&cfg.ingest.Committers, "ingest-committers", "VIDDA_INGEST_COMMITTERS", cfg.ingest.Committers, "ingest batches committing at once")
	cs.String(&cfg.pprofAddr, "pprof-addr", "VIDDA_PPROF_ADDR", "", "serve Go's profiler here (off when empty; keep it on loopback)")
	bindSignIn(cs, &cfg.signIn)
	bindVideo(cs, &cfg.video)
	bindSubscriptions(cs, &cfg.subs)
	bindAudit(cs, &cfg.audit)
	cs.String(&cfg.http.TLSCertFile, "tls-cert", "VIDDA_TLS_CERT", "", "PEM certificate chain: serve HTTPS (with --tls-key)")
	cs.String(&cfg.http.TLSKeyFile, "tls-key", "VIDDA_TLS_KEY", "", "PEM key for --tls-cert")
	cs.Int(&cfg.http.MQTTAuthPerMinute, "mqtt-auth-rate-limit", "VIDDA_MQTT_AUTH_RATE_LIMIT", cfg.http.MQTTAuthPerMinute, "external broker password checks per minute (0: no limit)")
	bindOIDC(cs, &cfg.oidc)
	bindExport(cs, &cfg.export)
	bindCare(cs, &cfg.care)
	if err := cs.Parse(args); err != nil {
		return err
	}
	if err := cfg.http.Validate(); err != nil {
		return err
	}
	if err := cfg.oidc.validate(); err != nil {
		return err
	}
	if err := cfg.export.validate(); err != nil {
		return err
	}
	if err := cfg.store.Validate(); err != nil {
		return err
	}
	cfg.signIn.web.TimeZone = cfg.zone
	if err := cfg.signIn.validate(); err != nil {
		return err
	}
	if err := cfg.ingest.Validate(); err != nil {
		return err
	}
	external := cfg.consumer.URL != ""
	if external {
		// An MQTT subscriber acks in the order messages came: one batch at
		// a time keeps outcomes, and so acks to the broker, in order.
		cfg.ingest.Committers = 1
		if err := cfg.consumer.Validate(); err != nil {
			return err
		}
	} else if err := cfg.mqtt.Validate(); err != nil {
		return fmt.Errorf("VIDDA_MQTT_LISTEN: %w", err)
	}
	auditCfg, err := cfg.audit.config(cfg.consumer.ClientID)
	if err != nil {
		return err
	}
	zone, err := time.LoadLocation(cfg.zone)
	if err != nil {
		return fmt.Errorf("VIDDA_TIME_ZONE: %w", err)
	}
	cfg.http.Version = version
	started := time.Now()
	if e.getenv("GOGC") == "" {
		// The heap is small (tens of MB); collecting a quarter as often
		// measured 30 % more creates/s in make bench. GOGC still overrides.
		debug.SetGCPercent(400)
	}
	if e.getenv("GOMEMLIMIT") == "" {
		// ...but under an ingest flood the queued readings grow the heap, and
		// GOGC 400 let RSS reach 615 MiB; a soft limit makes the collector
		// work harder before that. GOMEMLIMIT still overrides.
		debug.SetMemoryLimit(192 << 20)
	}
	log, pool, err := cfg.open(ctx, e)
	if err != nil {
		return err
	}
	defer pool.Close()
	log.InfoContext(ctx, "starting vidda", append([]any{"version", version}, cs.Masked()...)...)
	if !cfg.noMigrate {
		if err := db.Migrate(ctx, pool, log); err != nil {
			return err
		}
	}
	keys := auth.NewKeyStore(pool, cfg.keys, log)
	if err := keys.EnsureCurrent(ctx); err != nil {
		return err
	}
	types := fhir.NewRegistry()
	params := search.NewRegistry(zone)
	st := store.New(pool, types, params, cfg.store, log)
	review, err := cfg.care.build(pool, st, types, log)
	if err != nil {
		return err
	}
	cfg.ingest.Judge = careJudge{review.Interpreter()}
	subscriptions, notifier, err := cfg.subs.build(st, types, params, publicBase(cfg.http), log)
	if err != nil {
		return err
	}
	metrics := obs.NewRegistry(pool)
	auditor, err := newAuditWriter(pool, params, auditCfg, metrics, log)
	if err != nil {
		return err
	}
	deviceAuth := auth.NewDeviceAuthenticator(st.DeviceCredential, store.ErrNoCredential)
	sink, err := newIngestSink(st)
	if err != nil {
		return err
	}
	pipe := ingest.New(sink, ingestBindings{st}, types, cfg.ingest, metrics, log)
	devicesIn, err := deviceSource(cfg, external, pipe, deviceAuth, log)
	if err != nil {
		return err
	}
	// Ready while the database answers and devices can reach vidda: the
	// external broker's connection is up, or the embedded one listens.
	ready := httpapi.ReadyChecks{{Name: "database", Check: st}, {Name: "broker", Check: devicesIn}}
	verifier, runOIDC, err := cfg.oidc.tokenVerifier(keys, log)
	if err != nil {
		return err
	}
	tokens := auth.NewBackend(auth.NewClients(pool), keys, auth.BackendConfig{TokenURL: cfg.http.TokenURL()}, log)
	exports := cfg.export.exporter(st, types, params, cfg.consumer.ClientID, auditRecorder(auditor), log)
	if err := errors.Join(exports.Register(metrics), notifier.Register(metrics), review.Register(metrics)); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	users, sessions, pages, err := cfg.signIn.build(pool, cfg.http, signInRecorder(auditor),
		pageData{store: st, types: types, params: params, audit: auditRecorder(auditor), review: review}, log)
	if err != nil {
		return err
	}
	if cfg.video.turn.TLSListen != "" {
		cfg.video.turn.CertFile, cfg.video.turn.KeyFile = cfg.http.TLSCertFile, cfg.http.TLSKeyFile
	}
	// The TURN and media sockets live as long as the process, not ctx.
	vid, err := cfg.video.build(st, types, params, auditor, pinning{pool, cfg.consumer.ClientID, publicBase(cfg.http)}, metrics, log) //nolint:contextcheck // see above
	if err != nil {
		return err
	}
	var visits httpapi.Visits
	videoLine := "off"
	if vid != nil {
		visits, videoLine = vid.visits, vid.String()
		// Until the errgroup runs it, a failed start must free the ports.
		defer func() { //nolint:contextcheck // closing after a failed start: ctx is not the point
			if vid != nil {
				_ = vid.run(canceled())
			}
		}()
	}
	// A visit's websocket outlives its request; the visits' Run ends it.
	srv, err := httpapi.New(httpapi.Deps{ //nolint:contextcheck // see above
		Store: st, Types: types, Params: params, Verifier: verifier, Ready: ready, Metrics: metrics,
		Devices: deviceAuth, BrokerAccount: brokerAccount(cfg.consumer.URL), DeadLetters: st, Audit: auditRecorder(auditor),
		Tokens:   tokens,
		Exports:  exports,
		Sessions: sessions, Users: users, Pages: pages,
		Subscriptions: subscriptions,
		Visits:        visits,
	}, cfg.http, log)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.http.Addr)
	if err != nil {
		return fmt.Errorf("VIDDA_HTTP_ADDR: %w", err)
	}

	// Shutdown order: the HTTP server and the broker stop taking work and
	// drain; then the pipeline commits what is queued and the store's
	// writers finish, so everything acknowledged is committed; and the audit
	// writer stores every event those requests recorded before it returns.
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	auditCtx, stopAudit := context.WithCancel(context.WithoutCancel(ctx))
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	// Video visits count as a source: ending a visit writes its Encounter.
	var sources sync.WaitGroup
	sources.Add(2)
	if vid != nil {
		sources.Add(1)
	}
	go func() {
		sources.Wait()
		stopPipe()
		stopStore()
		stopAudit()
	}()
	// A failing server cancels gctx, which stops the others.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return st.Run(storeCtx) })
	if auditor != nil {
		g.Go(func() error { return auditor.Run(auditCtx) })
	}
	g.Go(func() error { return pipe.Run(pipeCtx) })
	g.Go(func() error {
		defer sources.Done()
		return devicesIn.Run(gctx)
	})
	g.Go(func() error {
		select {
		case <-devicesIn.Ready():
			base := cfg.http.Scheme() + "://" + ln.Addr().String()
			log.InfoContext(ctx, "vidda ready", "http", base, "fhir", base+"/fhir",
				"mqtt", devicesIn.Addr(), "video", videoLine, "startup", time.Since(started))
		case <-gctx.Done():
		}
		return nil
	})
	g.Go(func() error { return keys.Run(gctx) })
	g.Go(func() error { return sessions.Run(gctx) })
	g.Go(func() error { return pages.Run(gctx) }) // the live worklist's LISTEN; ends its streams on stop
	// Notifications stop with the servers; a delivery in flight finishes
	// (or its event stays in the outbox) before the pool closes.
	g.Go(func() error { return notifier.Run(gctx) })
	g.Go(func() error { return exports.Run(gctx) })
	g.Go(func() error { return review.Run(gctx) })
	if vid != nil {
		// Visits close their connections and media peers when the servers
		// stop; an Encounter in progress stays so, for the next instance.
		running := vid
		vid = nil
		g.Go(func() error {
			defer sources.Done()
			return running.run(gctx)
		})
	}
	if runOIDC != nil {
		g.Go(func() error { return runOIDC(gctx) })
	}
	if cfg.pprofAddr != "" {
		g.Go(func() error { return servePprof(gctx, cfg.pprofAddr, log) })
	}
	g.Go(func() error {
		defer sources.Done()
		return srv.Run(gctx, ln)
	})
	err = g.Wait()
	log.Info("vidda stopped", "err", err)
	return err
}
