package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portcullis-mail/portcullis/adapters/prommetrics"
	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/rules"
	"github.com/portcullis-mail/portcullis/smtpd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// running is a started gateway.
type running struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *prommetrics.Metrics
	sys     *config.System
	smtp    *smtp.Server
	smtpLn  net.Listener
	admin   *http.Server
	adminH  *admin.Handler
	adminLn net.Listener
	served  chan error
	// draining is set when shutdown begins: readiness fails from then on,
	// so a load balancer stops sending mail while sessions finish.
	draining atomic.Bool
	// fleetStop stops the fleet status reporter (nil without a fleet).
	fleetStop func()
	// fleetJS is the reporter's JetStream, read by the console's fleet
	// page (nil until startFleet).
	fleetJS atomic.Pointer[jetstream.JetStream]
	// gen is the current filters (reload.go); loadConfig re-reads the
	// configuration for a reload (nil: nothing to re-read).
	gen        atomic.Pointer[generation]
	loadConfig func() (*config.Config, error)
	options    config.Options
}

var errDraining = errors.New("shutting down")

// ready is the gateway's readiness: every filter ready and not shutting
// down.
func (g *running) ready() error {
	if g.draining.Load() {
		return errDraining
	}
	return g.pipeline().Ready()
}

// start builds the system, listens and serves, and logs the one start-up
// line. Nothing is left open when it fails.
func start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*running, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := &running{cfg: cfg, log: log, metrics: prommetrics.New(reg, nil), served: make(chan error, 2)}
	opts := config.Options{Logger: log, Metrics: g.metrics}

	sys, err := config.Build(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	g.sys = sys
	g.options = opts
	g.gen.Store(newGeneration(sys.Filters, cfg.DNS))
	fail := func(err error) (*running, error) {
		g.closeAll()
		return nil, err
	}

	be, err := smtpd.NewBackend(smtpd.Config{
		Acquire:               g.acquire,
		Router:                sys.Router,
		MaxMessagesPerSession: cfg.SMTP.MaxMessagesPerSession,
		Ready:                 g.ready,
		Logger:                log,
		Metrics:               g.metrics,
	})
	if err != nil {
		return fail(err)
	}
	sc := smtpd.ServerConfig{
		Domain:          cfg.SMTP.Domain,
		MaxMessageBytes: cfg.MaxMessageBytes(),
		MaxRecipients:   cfg.SMTP.MaxRecipients,
		ReadTimeout:     time.Duration(cfg.SMTP.ReadTimeout),
		WriteTimeout:    time.Duration(cfg.SMTP.WriteTimeout),
		ErrorLog:        errorLog{log},
	}
	if cfg.SMTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLSCert, cfg.SMTP.TLSKey)
		if err != nil {
			return fail(fmt.Errorf("smtp: tls: %w", err))
		}
		sc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	g.smtp = smtpd.NewServer(be, sc)

	ln, err := net.Listen("tcp", cfg.SMTP.Listen)
	if err != nil {
		return fail(fmt.Errorf("smtp: %w", err))
	}
	g.smtpLn = smtpd.LimitListener(ln, smtpd.ListenerLimits{MaxConns: cfg.SMTP.MaxConnections, MaxPerIP: cfg.SMTP.MaxPerIP, Metrics: g.metrics})

	var token string
	if cfg.Admin.Listen != "" {
		h, path, err := adminHandler(g, reg)
		if err != nil {
			return fail(err)
		}
		h = g.withRulesVersion(h)
		token = path
		g.adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			return fail(fmt.Errorf("admin: %w", err))
		}
		g.admin = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
		go func() { g.served <- g.admin.Serve(g.adminLn) }()
	}
	go func() { g.served <- g.smtp.Serve(g.smtpLn) }()
	if err := g.startFleet(); err != nil {
		return fail(err)
	}

	ready := "yes"
	notReady := sys.Ready()
	if notReady != nil {
		ready = notReady.Error()
	}
	adminAddr := "off"
	if g.adminLn != nil {
		adminAddr = g.adminLn.Addr().String()
	}
	log.Info("portcullis gateway started",
		"smtp", g.smtpLn.Addr().String(),
		"relay", relayTargets(cfg),
		"admin", adminAddr,
		"data", cfg.DataDir,
		"queue", backend(cfg),
		"filters", strings.Join(sys.Filters.Names(), ","),
		"ready", ready,
		"token", token)
	if errors.Is(notReady, rules.ErrLoading) {
		// Listening already; say when the rules are in (or why not).
		f := sys.Filters
		go func() {
			if err := f.WaitRules(ctx); err != nil {
				log.Error("rules: first load done: not ready until a reload succeeds (SIGHUP)", "err", err)
				return
			}
			ready := "yes"
			if err := g.ready(); err != nil {
				ready = err.Error()
			}
			log.Info("rules: first load done", "ready", ready)
		}()
	}
	return g, nil
}

func backend(cfg *config.Config) string {
	if cfg.Queue.Backend == "jetstream" {
		return "jetstream " + cfg.Queue.URL
	}
	return "spool"
}

func relayTargets(cfg *config.Config) string {
	var out []string
	for d, r := range cfg.Relay.Routes {
		out = append(out, d+"="+strings.Join(r.Hosts, "|"))
	}
	return strings.Join(out, ",")
}

// stop shuts down in the order that loses nothing: no new connections,
// sessions in flight finish (their 250s are durable already), then the
// queue stops after the deliveries in flight, then the stores close.
func (g *running) stop(ctx context.Context, why string) error {
	g.draining.Store(true)
	deadline, _ := ctx.Deadline()
	g.log.Info("shutting down", "signal", why, "deadline", time.Until(deadline).Round(time.Second))
	var errs []error
	if err := g.smtp.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("smtp: %w", err))
		g.smtp.Close()
	}
	if g.admin != nil {
		if err := g.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
	}
	if g.fleetStop != nil {
		g.fleetStop()
	}
	// Every session has ended: the current filters are the ones to close
	// (older generations closed their lists when their last session did).
	g.sys.Filters = g.gen.Load().filters
	errs = append(errs, g.closeAdmin(), g.sys.Close(ctx))
	return errors.Join(errs...)
}

// closeAll releases what start opened when it fails half-way.
func (g *running) closeAll() {
	if g.smtpLn != nil {
		g.smtpLn.Close()
	}
	if g.adminLn != nil {
		g.adminLn.Close()
	}
	g.closeAdmin()
	g.sys.Close(context.Background())
}

// errorLog sends go-smtp's own error lines to the logger.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("smtp server", "msg", fmt.Sprintf(format, v...))
}
func (e errorLog) Println(v ...any) { e.log.Warn("smtp server", "msg", fmt.Sprint(v...)) }
