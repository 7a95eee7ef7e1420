// Command milter runs Portcullis as a mail filter inside Postfix (or
// Sendmail): the MTA keeps receiving and delivering mail, the milter
// judges every message while the client waits.
//
//	go run ./examples/milter [-config FILE] [-listen tcp:127.0.0.1:11332|unix:/path]
//	    [-quarantine postfix-hold|store -quarantine-dir DIR -queue-dir DIR -relay HOST:PORT]
//
// Postfix's main.cf:
//
//	smtpd_milters = inet:127.0.0.1:11332
//	non_smtpd_milters = $smtpd_milters
//	milter_default_action = tempfail
//
// With -quarantine store, quarantined messages are kept in -quarantine-dir
// and Postfix discards its copy; a release re-injects the message through
// -relay (a Postfix smtpd that does not run the milter, e.g. a second
// smtpd in master.cf with -o smtpd_milters=).
//
// SIGINT or SIGTERM stops accepting and waits up to 30 s for the MTA to
// finish the sessions in flight.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/milterd"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "milter:", err)
		os.Exit(2)
	}
}

type options struct {
	config, listen                   string
	quarantine                       milterd.QuarantineMode
	quarantineDir, queueDir, relayTo string
}

// run serves until ctx is done; listening is told the address once the
// milter accepts connections.
func run(ctx context.Context, args []string, stderr io.Writer, listening func(net.Addr)) error {
	var o options
	fs := flag.NewFlagSet("milter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration file (YAML); the embedded defaults when empty")
	fs.StringVar(&o.listen, "listen", "tcp:127.0.0.1:11332", "milter socket: tcp:HOST:PORT or unix:/path")
	fs.TextVar(&o.quarantine, "quarantine", milterd.PostfixHold, "where quarantined mail goes: postfix-hold (Postfix's hold queue) or store")
	fs.StringVar(&o.quarantineDir, "quarantine-dir", "", "quarantine store directory (-quarantine store)")
	fs.StringVar(&o.queueDir, "queue-dir", "", "queue directory for released messages (-quarantine store)")
	fs.StringVar(&o.relayTo, "relay", "", "HOST:PORT released messages are delivered to (-quarantine store)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	cfg := config.Default()
	if o.config != "" {
		var err error
		if cfg, err = config.Load(o.config); err != nil {
			return err
		}
	}
	mcfg := milterd.Config{Pipeline: pipeline(cfg, log), Quarantine: o.quarantine, HeadersOnAccept: true, Logger: log}
	if o.quarantine == milterd.Store {
		hold, closeStore, err := store(o, log)
		if err != nil {
			return err
		}
		defer closeStore()
		mcfg.Hold = hold
	}
	srv, err := milterd.New(mcfg)
	if err != nil {
		return err
	}
	ln, err := milterd.Listen(o.listen)
	if err != nil {
		return err
	}
	log.Info("milter listening", "addr", ln.Addr().String(), "quarantine", o.quarantine.String())
	if listening != nil {
		listening(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	<-served
	return nil
}

// pipeline builds the filters the configuration names. This is the
// minimal wiring (policy, limits, the archive inspector) until the public
// config package builds every filter.
func pipeline(cfg *config.Config, log *slog.Logger) *filter.Pipeline {
	var filters []filter.Filter
	if a := cfg.Archive; a.Enabled {
		filters = append(filters, archive.New(archive.Config{
			Logger: log, AllowNested: a.AllowNested,
			BannedExtensions: a.BannedExtensions, BannedTypes: a.BannedTypes,
			AllowedExtensions: a.AllowedExtensions, AllowedTypes: a.AllowedTypes,
			Limits: archive.Limits{MaxDepth: a.MaxDepth, MaxTotalBytes: a.MaxTotalBytes, MaxEntries: a.MaxEntries},
		}))
	}
	return filter.NewPipeline(filter.Options{Policy: cfg.Policy.FilterPolicy(), Limits: cfg.Limits.FilterLimits(), Logger: log}, filters...)
}

// store opens the quarantine store and the queue that delivers released
// messages through the relay.
func store(o options, log *slog.Logger) (func(context.Context, *filter.Message, filter.Verdict) error, func(), error) {
	if o.quarantineDir == "" || o.queueDir == "" || o.relayTo == "" {
		return nil, nil, errors.New("-quarantine store needs -quarantine-dir, -queue-dir and -relay")
	}
	st, err := quarantine.OpenDir(o.quarantineDir, quarantine.DirConfig{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	rl, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{o.relayTo}}}, Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	q, err := queue.Open(o.queueDir, queue.Config{Deliverer: rl, Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	mgr, err := quarantine.New(quarantine.Config{Store: st, Queue: q, Logger: log})
	if err != nil {
		q.Close()
		st.Close()
		return nil, nil, err
	}
	hold := func(ctx context.Context, msg *filter.Message, v filter.Verdict) error {
		_, err := mgr.Hold(ctx, msg, v)
		return err
	}
	return hold, func() { q.Close(); st.Close() }, nil
}
