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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/queue"
	qjs "github.com/portcullis-mail/portcullis/queue/jetstream"
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
	g.fleetJS.Store(&js)
	var sources []<-chan struct{}
	if fr := g.sys.Filters.FleetRules; fr != nil {
		sources = append(sources, fr.Changed())
	}
	if fz := g.sys.Filters.FleetZones; fz != nil {
		sources = append(sources, fz.Changed())
	}
	ctx, cancel := context.WithCancel(context.Background())
	changed := merge(ctx, sources...)
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

// merge signals its result whenever one of in is signalled, until ctx ends.
func merge(ctx context.Context, in ...<-chan struct{}) <-chan struct{} {
	if len(in) == 1 {
		return in[0]
	}
	out := make(chan struct{}, 1)
	for _, c := range in {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-c:
					select {
					case out <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return out
}

// fleetView is the console's fleet page: what "gateway fleet status"
// prints, read over this node's fleet connection.
func (g *running) fleetView(ctx context.Context) (fleet.View, error) {
	js := g.fleetJS.Load()
	if js == nil {
		return fleet.View{}, errors.New("fleet: not connected yet")
	}
	return fleet.ReadView(ctx, *js, fleet.Bucket{}, fleet.Bucket{})
}

func (g *running) fleetStatus() fleet.NodeStatus {
	var st fleet.NodeStatus
	if fr := g.sys.Filters.FleetRules; fr != nil {
		if s := fr.Served(); s != nil {
			st.RulesVersion, st.RulesDigest = s.Version, s.Digest
		}
		st.Refused = fr.Refused()
	}
	if fz := g.sys.Filters.FleetZones; fz != nil {
		st.Zones = fz.Status()
	}
	if err := g.ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	// The local queue's depth, or the shared queue's (the whole fleet's,
	// the same on every node that shares it).
	switch q := g.sys.Queue.(type) {
	case *qjs.Queue:
		st.QueueDepth, st.QueueHeld = q.Len(), q.Held()
	case *queue.Queue:
		st.QueueDepth = q.Len()
		for _, e := range q.Entries() {
			if e.State == queue.Held {
				st.QueueHeld++
			}
		}
	}
	if sc := g.gen.Load().filters.Scanner; sc != nil {
		for _, e := range sc.States() {
			st.Engines = append(st.Engines, fleet.EngineHealth{Name: e.Engine, State: e.Breaker.String(), Version: e.Version, Suspect: e.Suspect,
				FleetSuspect: e.FleetSuspect})
		}
	}
	return st
}

// withRulesVersion adds the served rule set's version to /readyz answers
// (Portcullis-Rules-Version), and the served zones' versions
// (Portcullis-Zone-Versions: "bl.example=3 zen.spamhaus.org=none"), so a
// probe and an operator see what a node serves, ready or not.
func (g *running) withRulesVersion(h http.Handler) http.Handler {
	fr, fz := g.sys.Filters.FleetRules, g.sys.Filters.FleetZones
	if fr == nil && fz == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			if fr != nil {
				v := "none"
				if s := fr.Served(); s != nil {
					v = strconv.FormatUint(s.Version, 10) + " " + s.Digest
				}
				w.Header().Set("Portcullis-Rules-Version", v)
			}
			if fz != nil {
				w.Header().Set("Portcullis-Zone-Versions", zoneVersions(fz.Status()))
			}
		}
		h.ServeHTTP(w, r)
	})
}

// zoneVersions is "zone=version ..." ("none" for a zone not loaded).
func zoneVersions(zs []fleet.ZoneStatus) string {
	var parts []string
	for _, z := range zs {
		v := "none"
		if z.Version != 0 {
			v = strconv.FormatUint(z.Version, 10)
		}
		parts = append(parts, z.Zone+"="+v)
	}
	return strings.Join(parts, " ")
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
	v, err := fleet.ReadView(ctx, js, fleet.Bucket{}, fleet.Bucket{})
	if err != nil {
		return err
	}
	if cur := v.Rules; cur != nil {
		fmt.Fprintf(stdout, "published rules: version %d %s at %s %s\n", cur.Version, cur.Short(), cur.Published.Format(time.RFC3339), cur.Publisher)
	} else {
		fmt.Fprintln(stdout, "published rules: none")
	}
	zones, err := fleet.PublishedZones(ctx, js, fleet.Bucket{})
	if err != nil {
		fmt.Fprintf(stdout, "published zones: %v\n", err)
	}
	for _, z := range zones {
		fmt.Fprintf(stdout, "published zone %s: version %d %s, %d bytes at %s %s\n", z.Zone, z.Version, z.Short(), z.Size,
			z.Published.Format(time.RFC3339), z.Publisher)
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRULES\tREADY\tQUEUE\tHELD\tENGINES\tAGE\tZONES\tNOTE")
	for _, n := range v.Nodes {
		ready, note := "yes", ""
		if !n.Ready {
			ready, note = "no", n.NotReady
		}
		if n.Refused != nil {
			note += fmt.Sprintf(" refused version %d: %s", n.Refused.Version, n.Refused.Reason)
		}
		if v.Behind(n) {
			note += " behind"
		}
		for _, z := range n.Zones {
			if z.Refused != nil {
				note += fmt.Sprintf(" zone %s refused version %d: %s", z.Zone, z.Refused.Version, z.Refused.Reason)
			}
		}
		zv := zoneVersions(n.Zones)
		if zv == "" {
			zv = "-"
		}
		engines := "-"
		if len(n.Engines) > 0 {
			var es []string
			for _, e := range n.Engines {
				st := e.State
				switch {
				case e.FleetSuspect:
					// The signature version is doubted fleet-wide.
					st = "fleet-suspect"
				case e.Suspect:
					st = "suspect"
				}
				es = append(es, e.Name+":"+st)
			}
			engines = strings.Join(es, ",")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", n.Node, n.RulesVersion, ready, n.QueueDepth, n.QueueHeld,
			oneLine(engines), time.Since(n.Updated).Round(time.Second), oneLine(zv), oneLine(strings.TrimSpace(note)))
	}
	return tw.Flush()
}

var spaces = regexp.MustCompile(`\s+`)

func oneLine(s string) string { return spaces.ReplaceAllString(s, " ") }
