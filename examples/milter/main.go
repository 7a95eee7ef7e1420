// Command milter runs Portcullis as a mail filter inside Postfix (or
// Sendmail): the MTA keeps receiving and delivering mail, the milter
// judges every message while the client waits, and the admin HTTP (health,
// readiness, metrics, the quarantine API and console) is package admin's,
// the same as the gateway's.
//
//	go run ./examples/milter [-config FILE] [-listen tcp:127.0.0.1:11332|unix:/path]
//	    [-admin ADDR|off] [-quarantine postfix-hold|store] [-data DIR] [-relay HOST:PORT]
//
// Postfix's main.cf:
//
//	smtpd_milters = inet:127.0.0.1:11332
//	non_smtpd_milters = $smtpd_milters
//	milter_default_action = tempfail
//
// The configuration is the gateway's (package config): its filters,
// policy and limits judge the mail; data_dir holds the quarantine store
// (./portcullis-milter-data and admin 127.0.0.1:8026 unless the file or
// a flag says otherwise: not the gateway's, so both can run side by side);
// relay.routes is where released messages go. -quarantine postfix-hold
// (the default) leaves quarantined mail in Postfix's hold queue
// (postsuper -H releases it); -quarantine store keeps it in Portcullis's
// quarantine, Postfix discards its copy, and a release through the admin
// API or console re-injects it through the relay: point the relay at a
// Postfix smtpd that does not run the milter (a second smtpd in master.cf
// with -o smtpd_milters=).
//
// SIGINT or SIGTERM stops accepting and waits up to 30 s for the MTA to
// finish the sessions in flight. Exit status 2 is a bad command line or
// configuration, 1 a failure to start or stop.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-mail/portcullis/adapters/prommetrics"
	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/milterd"
	"go.yaml.in/yaml/v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "milter:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "milter:", err)
		os.Exit(1)
	}
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `usage: milter [flags]

Runs Portcullis as a milter for Postfix or Sendmail: every message is judged
while the client waits, rejections and tempfails reach it at the stage that
decides. In Postfix's main.cf:

  smtpd_milters = inet:127.0.0.1:11332
  non_smtpd_milters = $smtpd_milters
  milter_default_action = tempfail

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Exit status:
  0  a clean shutdown after SIGTERM or SIGINT
  1  the milter could not start or stop cleanly
  2  a bad command line or configuration

Example:
  milter -listen tcp:127.0.0.1:11332 -config /etc/portcullis/portcullis.yaml -quarantine store -relay 127.0.0.1:10026
`)
}

// usageError is a bad command line or configuration.
type usageError struct{ error }

type options struct {
	config, listen, admin, data, relay string
	quarantine                         milterd.QuarantineMode
}

// listening is told the milter's and the admin's addresses once they
// accept connections (tests).
type listening func(milter, admin net.Addr)

// run serves until ctx is done.
func run(ctx context.Context, args []string, stderr io.Writer, up listening) error {
	var o options
	fs := flag.NewFlagSet("milter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration file (YAML); the embedded default when empty")
	fs.StringVar(&o.listen, "listen", "tcp:127.0.0.1:11332", "milter socket: tcp:HOST:PORT or unix:/path")
	fs.StringVar(&o.admin, "admin", "", `admin HTTP address (admin.listen; default `+DefaultAdmin+`, not the gateway's 8025); "off" disables it`)
	fs.StringVar(&o.data, "data", "", "data directory for the quarantine and the admin token (data_dir; default "+DefaultDataDir+", not the gateway's)")
	fs.StringVar(&o.relay, "relay", "", "where released messages go: HOST:PORT (relay.routes[*])")
	fs.TextVar(&o.quarantine, "quarantine", milterd.PostfixHold, "where quarantined mail goes: postfix-hold (Postfix's hold queue) or store")
	// Parse quietly: the flag package would print a bad flag's error and
	// the usage, and main the error again.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			usage(fs)
			return err
		}
		return usageError{fmt.Errorf("%w (milter -h lists the flags)", err)}
	}
	cfg, err := load(o)
	if err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := prommetrics.New(reg, nil)

	sys, err := config.Build(ctx, cfg, config.Options{Logger: log, Metrics: metrics})
	if err != nil {
		return err
	}
	defer sys.Close(context.Background())

	mcfg := milterd.Config{Pipeline: sys.Filters.Pipeline, Quarantine: o.quarantine, HeadersOnAccept: cfg.Router.HeadersOnAccept,
		Ready: sys.Ready, Logger: log, Metrics: metrics}
	if o.quarantine == milterd.Store {
		mcfg.Hold = func(ctx context.Context, msg *filter.Message, v filter.Verdict) error {
			_, err := sys.Quarantine.Hold(ctx, msg, v)
			return err
		}
	}
	srv, err := milterd.New(mcfg)
	if err != nil {
		return err
	}
	ln, err := milterd.Listen(o.listen)
	if err != nil {
		return fmt.Errorf("milter: %w", err)
	}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()

	var adminAddr net.Addr
	if cfg.Admin.Listen != "" {
		closeAdmin, addr, err := serveAdmin(cfg, sys, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), log, metrics, served)
		if err != nil {
			return err
		}
		defer closeAdmin()
		adminAddr = addr
	}
	log.Info("portcullis milter started", "milter", ln.Addr().String(), "admin", fmt.Sprint(adminAddr),
		"quarantine", o.quarantine.String(), "data", cfg.DataDir, "filters", fmt.Sprint(sys.Filters.Names()))
	if up != nil {
		up(ln.Addr(), adminAddr)
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// The milter's own defaults, so that it runs beside a gateway on the
// same machine without sharing (and failing to lock) its data directory
// or admin port: they apply unless the file sets data_dir or
// admin.listen.
const (
	DefaultDataDir = "./portcullis-milter-data"
	DefaultAdmin   = "127.0.0.1:8026"
)

// setKeys reports which of the keys whose milter default differs from
// the gateway's a configuration file sets (config.Load has already
// checked the file).
func setKeys(path string) (keys struct{ dataDir, adminListen bool }, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keys, err
	}
	var f struct {
		DataDir *string `yaml:"data_dir"`
		Admin   struct {
			Listen *string `yaml:"listen"`
		} `yaml:"admin"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return keys, err
	}
	keys.dataDir, keys.adminListen = f.DataDir != nil, f.Admin.Listen != nil
	return keys, nil
}

// load reads the configuration and applies the flags over it, so a flag
// and a key mean the same thing.
func load(o options) (*config.Config, error) {
	cfg := config.Default()
	cfg.DataDir, cfg.Admin.Listen = DefaultDataDir, DefaultAdmin
	if o.config != "" {
		c, err := config.Load(o.config)
		if err != nil {
			return nil, err
		}
		set, err := setKeys(o.config)
		if err != nil {
			return nil, err
		}
		if !set.dataDir {
			c.DataDir = DefaultDataDir
		}
		if !set.adminListen {
			c.Admin.Listen = DefaultAdmin
		}
		cfg = c
	}
	if o.data != "" {
		cfg.DataDir = o.data
	}
	if o.relay != "" {
		cfg.Relay.Routes = map[string]config.Route{"*": {Hosts: []string{o.relay}}}
	}
	switch o.admin {
	case "":
	case "off":
		cfg.Admin.Listen = ""
	default:
		cfg.Admin.Listen = o.admin
	}
	return cfg, cfg.Check()
}

// serveAdmin mounts package admin on the admin listener. The returned
// func closes the listener, then the handler (a running re-scan is
// cancelled; it is resumable).
func serveAdmin(cfg *config.Config, sys *config.System, metricsHandler http.Handler, log *slog.Logger, metrics filter.Metrics, served chan<- error) (func(), net.Addr, error) {
	tokenFile := cfg.Admin.TokenFile
	if tokenFile == "" {
		_, path, _, err := admin.EnsureToken(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		tokenFile = path
	}
	h, err := admin.New(admin.Config{
		Quarantine:     sys.Quarantine,
		Pipeline:       func() *filter.Pipeline { return sys.Filters.Pipeline },
		Ready:          func(context.Context) error { return sys.Ready() },
		MetricsHandler: metricsHandler,
		TokenFile:      tokenFile,
		Users:          cfg.Admin.AdminUsers(),
		SecureCookies:  cfg.Admin.SecureCookies,
		Limits:         cfg.Limits.FilterLimits(),
		Logger:         log,
		Metrics:        metrics,
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("admin: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			served <- fmt.Errorf("admin: %w", err)
		}
	}()
	return func() { hs.Close(); h.Close() }, ln.Addr(), nil
}
