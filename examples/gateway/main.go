// Command gateway is the demo Portcullis filtering gateway: an SMTP server
// that judges every transaction with the pipeline, answers from the
// verdict, keeps accepted mail in a durable queue and relays it, holds
// quarantined mail, and serves health, metrics and the quarantine on an
// admin listener.
//
//	go run ./examples/gateway [-config FILE] [-listen ADDR] [-relay HOST:PORT]
//	    [-data DIR] [-admin ADDR] [-pprof ADDR] [-v]
//	go run ./examples/gateway -check-config FILE
//
// Without -config it runs on the embedded default (config.DefaultYAML),
// which needs no network beyond loopback: SMTP on 127.0.0.1:2525, mail
// relayed to 127.0.0.1:2526, queue and quarantine under ./portcullis-data,
// admin HTTP on 127.0.0.1:8025; the archive inspector and the default
// rules on, DNS lists and AV engines off. The flags override the file.
//
// Signals: SIGTERM or SIGINT stops accepting, lets sessions and
// deliveries in flight finish (30 s at most) and closes the queue; SIGHUP
// re-reads the configuration file and reloads the rules and, where the
// dns section changed, the DNS lists, all or nothing (a file that does
// not check, lists that do not become ready, or a rule set that fails to
// compile or changes a verdict of its regression corpus refuse the
// reload, and the old rules and lists keep serving; SMTP sessions in
// flight finish on the lists they began with). A second gateway on the same data directory refuses to start.
//
// The exit status is 0 after a clean shutdown, 1 when the gateway could
// not start or stop cleanly, 2 for a bad command line or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a bad command line or configuration: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

type options struct {
	config, checkConfig        string
	listen, relay, data, admin string
	pprof                      string
	verbose                    bool
	shutdownTimeout            time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	err := gateway(args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "gateway:", err)
		return 2
	}
	fmt.Fprintln(stderr, "gateway:", err)
	return 1
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration file (YAML); default: the embedded configuration")
	fs.StringVar(&o.checkConfig, "check-config", "", "validate this configuration file, print the effective configuration and exit")
	fs.StringVar(&o.listen, "listen", "", "SMTP listen address (smtp.listen)")
	fs.StringVar(&o.relay, "relay", "", "relay every domain to HOST:PORT (relay.routes[*])")
	fs.StringVar(&o.data, "data", "", "data directory for queue, quarantine and token (data_dir)")
	fs.StringVar(&o.admin, "admin", "", `admin HTTP listen address (admin.listen); "off" disables it`)
	fs.BoolVar(&o.verbose, "v", false, "log at debug level")
	fs.StringVar(&o.pprof, "pprof", "", "serve the Go runtime profiles (/debug/pprof/) on this address, a listener of their own; empty: off")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for sessions and deliveries in flight")
	if err := parse(fs, args, stderr, func(w io.Writer) {
		fmt.Fprint(w, `usage: gateway [flags]
       gateway -check-config FILE
       gateway quarantine list|show|release|delete|rescan [flags] [ID]   (gateway quarantine -h)
       gateway fleet status [-config FILE] [-nats URL]

Runs the filtering gateway: SMTP in, the pipeline, a durable queue, relay out,
quarantine, and an admin listener (health, metrics, the quarantine console).
Without -config: the embedded default (SMTP 127.0.0.1:2525, relay to
127.0.0.1:2526, data in ./portcullis-data, admin on 127.0.0.1:8025).

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(w, `
Exit status:
  0  a clean shutdown after SIGTERM or SIGINT; -check-config: the file is valid
  1  the gateway could not start or stop cleanly
  2  a bad command line or configuration

Example:
  gateway -listen 0.0.0.0:25 -relay mail.example.net:25 -data /var/lib/portcullis
`)
	}); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return &o, nil
}

// parse parses args quietly: -h prints usage to stderr; a bad flag is
// one usageError, said once by run (the flag package would print it, and
// the usage, itself).
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, usage func(io.Writer)) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stderr)
		usage(stderr)
		return err
	}
	return usageError{fmt.Errorf("%w (%s -h lists the flags)", err, fs.Name())}
}

// loadConfig reads the file (or the embedded default) and applies the
// flags over it, so that a flag and a key mean the same thing.
func loadConfig(path string, o *options) (*config.Config, error) {
	cfg := config.Default()
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			return nil, usageError{err}
		}
		cfg = c
	}
	if o.listen != "" {
		cfg.SMTP.Listen = o.listen
	}
	if o.relay != "" {
		cfg.Relay.Routes = map[string]config.Route{"*": {Hosts: []string{o.relay}}}
	}
	if o.data != "" {
		cfg.DataDir = o.data
	}
	switch o.admin {
	case "":
	case "off":
		cfg.Admin.Listen = ""
	default:
		cfg.Admin.Listen = o.admin
	}
	if err := cfg.Check(); err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func gateway(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "quarantine" || args[0] == "queue") {
		return operate(args, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "fleet" {
		return fleetCommand(args, stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.checkConfig != "" {
		cfg, err := loadConfig(o.checkConfig, o)
		if err != nil {
			return err
		}
		b, err := cfg.Marshal()
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	cfg, err := loadConfig(o.config, o)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	lb := newLogBuffer(stderr, logFlushDelay)
	defer lb.Flush()
	log := slog.New(flushingHandler{slog.NewTextHandler(lb, &slog.HandlerOptions{Level: level}), lb})

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if o.pprof != "" {
		ln, err := servePprof(o.pprof, log)
		if err != nil {
			return err
		}
		defer ln.Close()
	}
	g, err := start(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	g.loadConfig = func() (*config.Config, error) { return loadConfig(o.config, o) }
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			g.reload(context.Background())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		err := g.stop(ctx, sig.String())
		cancel()
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		log.Info("stopped")
		return nil
	}
	return nil
}
