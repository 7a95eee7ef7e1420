package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/fleet"
)

// nodeID is fleet.node, or the host name and the SMTP port.
func nodeID(cfg *config.Config) string { return config.NodeID(cfg) }

// startFleet publishes this node's status to the fleet until stopped.
func (g *running) startFleet() error {
	if g.cfg.Fleet.URL == "" {
		return nil
	}
	nc, js, err := config.ConnectFleet(g.cfg, "portcullis status "+nodeID(g.cfg))
	if err != nil {
		return err
	}
	var changed <-chan struct{}
	if fr := g.sys.Filters.FleetRules; fr != nil {
		changed = fr.Changed()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := fleet.Report(ctx, fleet.ReporterConfig{
			JetStream: js, Node: nodeID(g.cfg), Bucket: fleet.Bucket{Replicas: g.cfg.Fleet.Replicas},
			Interval: time.Duration(g.cfg.Fleet.StatusInterval), Status: g.fleetStatus, Changed: changed, Logger: g.log,
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			g.log.Error("fleet: status not reported", "err", err)
		}
	}()
	g.fleetStop = func() {
		cancel()
		<-done
		nc.Close()
	}
	return nil
}

func (g *running) fleetStatus() fleet.NodeStatus {
	var st fleet.NodeStatus
	if fr := g.sys.Filters.FleetRules; fr != nil {
		if s := fr.Served(); s != nil {
			st.RulesVersion, st.RulesDigest = s.Version, s.Digest
		}
		st.Refused = fr.Refused()
	}
	if err := g.ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	if g.sys.Spool != nil {
		st.QueueDepth = g.sys.Spool.Len()
	} else if l, ok := g.sys.Queue.(interface{ Len() int }); ok {
		st.QueueDepth = l.Len()
	}
	return st
}

// withRulesVersion adds the served rule set's version to /readyz answers
// (Portcullis-Rules-Version), so a probe and an operator see which set a
// node serves, ready or not.
func (g *running) withRulesVersion(h http.Handler) http.Handler {
	fr := g.sys.Filters.FleetRules
	if fr == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			v := "none"
			if s := fr.Served(); s != nil {
				v = strconv.FormatUint(s.Version, 10) + " " + s.Digest
			}
			w.Header().Set("Portcullis-Rules-Version", v)
		}
		h.ServeHTTP(w, r)
	})
}

// fleetCommand is "gateway fleet status": every node's status.
func fleetCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (fleet.url)")
	url := fs.String("nats", "", "NATS URL (overrides fleet.url)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gateway fleet status [-config FILE] [-nats URL]")
		fs.PrintDefaults()
	}
	if len(args) < 2 || args[1] != "status" {
		fs.Usage()
		return usageError{errors.New("fleet: want the command status")}
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	u := *url
	if u == "" && *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return usageError{err}
		}
		u = cfg.Fleet.URL
	}
	if u == "" {
		return usageError{errors.New("fleet status: give -nats URL or a -config with fleet.url")}
	}
	nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cur, err := fleet.Current(ctx, js, fleet.Bucket{})
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "published rules: version %d %s at %s %s\n", cur.Version, cur.Short(), cur.Published.Format(time.RFC3339), cur.Publisher)
	case errors.Is(err, fleet.ErrNoSet):
		fmt.Fprintln(stdout, "published rules: none")
	default:
		fmt.Fprintf(stdout, "published rules: %v\n", err)
	}
	nodes, err := fleet.Statuses(ctx, js, fleet.Bucket{})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRULES\tREADY\tQUEUE\tAGE\tNOTE")
	for _, n := range nodes {
		ready, note := "yes", ""
		if !n.Ready {
			ready, note = "no", n.NotReady
		}
		if n.Refused != nil {
			note += fmt.Sprintf(" refused version %d: %s", n.Refused.Version, n.Refused.Reason)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", n.Node, n.RulesVersion, ready, n.QueueDepth,
			time.Since(n.Updated).Round(time.Second), oneLine(note))
	}
	return tw.Flush()
}

var spaces = regexp.MustCompile(`\s+`)

func oneLine(s string) string { return spaces.ReplaceAllString(s, " ") }
