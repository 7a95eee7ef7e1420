// Command bench measures Portcullis's default pipeline against a running
// rspamd and a running spamd on the same messages (the tiers of
// internal/benchcorpus and a tier of the repository's real mail) and
// prints CPU time per message and the ratios per tier. scripts/bench.sh
// installs and starts rspamd, spamd, clamd and rbldnsd with private
// configurations and runs it.
//
// Portcullis is measured twice: in this process (GOMAXPROCS 1, its CPU
// this process's), and over the wire, as rspamd and spamd are, with
// -gateway: the examples/gateway binary, started by this program with a
// private configuration and data directory in a temporary directory,
// GOMAXPROCS 1 and pinned by taskset (-gateway-cpus), receives each tier
// over SMTP on -conns connections at once (each a session of many
// transactions) and keeps what it accepts in its queue, relaying nothing
// (its relay is a closed port and the retry 1000 hours away); its CPU is
// the gateway process's. A 5xx reply is an answer like a 250 (the real
// mail holds spam); a 4xx ends the run. The same gateway is measured
// over HTTP too, as rspamd is: its admin listener's POST /api/check, one
// message at a time with rspamd's envelope, the verdict without the SMTP
// session and the queue write. -gateway-base names a second
// gateway binary (an older build), started the same way and measured as
// a column of its own, interleaved with the first, so that one run gives
// an A/B of the SMTP side; -gateway-pprof starts the first with -pprof
// ADDR, to profile it under this load.
//
// A server's CPU is read from /proc for the process given by -rspamd-pid
// or -spamd-pid and its descendants only (utime+stime, plus the
// cutime+cstime of children they reaped, so a spamd child that exits
// after its connection quota still counts). Each repetition measures
// every tier on every system, interleaved; the median of the repetitions
// is printed. A tier larger than 1 MiB is run at least once (not three
// times) and without a warm-up, so that the run stays short.
//
// With -rspamd-sa, a column measures an rspamd whose spamassassin module
// loads SpamAssassin's rules (the ones Portcullis's default and spamd
// load), its regexes in hyperscan.
//
// With -rbldnsd (an rbldnsd serving the zones -write-zones writes), a
// second table measures the DNS tier: the HTML tier with six link
// domains and a client address new to every message (no lookup can be
// answered from a cache; message k is made from a template in a few
// microseconds, inside the in-process figure), on rspamd with its rbl
// module asking that rbldnsd (-rspamd-dns, a second rspamd the script
// starts), on a second gateway and on the in-process pipeline, both with
// the DNSBL and URIBL there. Before it is measured, each system must
// refuse a message from the listed probe address and one with a listed
// link domain and pass one with neither, so a system that did not look
// up cannot be measured as fast (the gateway over SMTP and over HTTP
// alike); with -rbldnsd-stats, the queries
// rbldnsd answered per message are counted for each system (10 messages
// each) and printed.
//
// With -clamd, the default pipeline is also built with that clamd
// attached through a counting relay, each tier is filtered once, and the
// bytes streamed to clamd (INSTREAM chunk payloads) per message byte are
// printed: the AV figure "each byte streamed to an engine once".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// tier is a set of messages measured together; a run checks them in turn.
type tier struct {
	what string
	msgs [][]byte
	// gen, when set, makes message k (msgs then holds one sample): the
	// DNS tier, whose messages are all different.
	gen func(k int) []byte
}

func (t tier) size() int {
	n := 0
	for _, m := range t.msgs {
		n += len(m)
	}
	return n / len(t.msgs)
}

func (t tier) msg(k int) []byte {
	if t.gen != nil {
		return t.gen(k)
	}
	return t.msgs[k%len(t.msgs)]
}

// system is one filter under measurement.
type system struct {
	name       string
	portcullis bool // the ratio columns compare each Portcullis system with each other one
	// conns is how many checks run at once (0: one).
	conns int
	// check filters message number k (which picks the DNS tier's client
	// address) on connection w (0 to conns-1); errRejected is an answer,
	// any other error ends the run.
	check func(w, k int, raw []byte) error
	cpu   func() float64
	// seq numbers the messages checked, over every tier and repetition
	// (the DNS tier's systems share one), so that no DNS-tier message is
	// sent twice.
	seq *atomic.Int64
}

// errRejected is a system's answer that the message is refused (or, for
// rspamd, that a bench list matched): a verdict like any other to the
// measurement, and what the DNS probes wait for.
var errRejected = errors.New("rejected")

func main() {
	rurl := flag.String("rspamd", "", "rspamd normal worker (HTTP /checkv2), e.g. http://127.0.0.1:11333; empty: not measured")
	rpid := flag.Int("rspamd-pid", 0, "rspamd main process: its CPU and its children's is measured")
	rsurl := flag.String("rspamd-sa", "", "rspamd normal worker with its spamassassin module on SpamAssassin's rules, a column of its own; empty: not measured")
	rspid := flag.Int("rspamd-sa-pid", 0, "that rspamd's main process")
	saddr := flag.String("spamd", "", "spamd address (spamc protocol), e.g. 127.0.0.1:783; empty: not measured")
	spid := flag.Int("spamd-pid", 0, "spamd main process: its CPU and its children's is measured")
	caddr := flag.String("clamd", "", "clamd TCP address: measure the bytes the default pipeline streams to it")
	gbin := flag.String("gateway", "", "examples/gateway binary: also measure Portcullis over SMTP, the gateway started by this program; empty: not measured")
	gbase := flag.String("gateway-base", "", "a second examples/gateway binary (an older build) measured as a column of its own, interleaved with -gateway: an A/B of the SMTP side; empty: none")
	gpprof := flag.String("gateway-pprof", "", "start the -gateway binary with -pprof ADDR (its runtime profiles there); empty: off")
	gcore := flag.String("gateway-cpus", "0", "taskset CPU list the gateway is pinned to (GOMAXPROCS 1); empty: not pinned")
	conns := flag.Int("conns", 4, "concurrent SMTP connections to the gateway")
	rbldnsd := flag.String("rbldnsd", "", "rbldnsd serving the zones of -write-zones (UDP host:port): add the DNS tier; empty: none")
	rstats := flag.String("rbldnsd-stats", "", "that rbldnsd's statistics file (rbldnsd -s FILE -c 1): print the DNS queries per message of each system; empty: not counted")
	rdurl := flag.String("rspamd-dns", "", "rspamd normal worker with the bench lists (rbl module) on -rbldnsd, for the DNS tier")
	rdpid := flag.Int("rspamd-dns-pid", 0, "that rspamd's main process")
	zonesDir := flag.String("write-zones", "", "write the DNS tier's zone files into this directory, print rbldnsd's zone arguments and exit")
	corpus := flag.String("corpus", "rules/default/corpus,testdata", "comma-separated directories of real mail (*.eml) for the real-mail tier; empty: none")
	large := flag.Bool("large", true, "include the 10 MB tier")
	reps := flag.Int("reps", 3, "interleaved repetitions; the median is printed")
	budget := flag.Duration("budget", 2*time.Second, "wall time per tier, system and repetition")
	flag.Parse()
	if *zonesDir != "" {
		args, err := writeZones(*zonesDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(args, " "))
		return
	}
	o := options{rspamd: *rurl, rspamdPID: *rpid, rspamdSA: *rsurl, rspamdSAPID: *rspid, spamd: *saddr, spamdPID: *spid, gateway: *gbin, gatewayBase: *gbase, gatewayPprof: *gpprof, gatewayCPUs: *gcore,
		conns: *conns, rbldnsd: *rbldnsd, rbldnsdStats: *rstats, rspamdDNS: *rdurl, rspamdDNSPID: *rdpid, reps: *reps, budget: *budget}
	ts, err := tiers(*corpus, *large)
	if err == nil {
		err = run(context.Background(), os.Stdout, ts, o)
	}
	if err == nil && *caddr != "" {
		err = avBytes(ts, *caddr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are what run measures, from the flags.
type options struct {
	rspamd       string
	rspamdPID    int
	rspamdSA     string
	rspamdSAPID  int
	spamd        string
	spamdPID     int
	gateway      string // the binary; "" for no SMTP column
	gatewayBase  string // the baseline binary; "" for none
	gatewayPprof string // -pprof for the gateway; "" for none
	gatewayCPUs  string
	conns        int
	rbldnsd      string // "" for no DNS tier
	rbldnsdStats string
	rspamdDNS    string
	rspamdDNSPID int
	reps         int
	budget       time.Duration
}

func tiers(corpus string, large bool) ([]tier, error) {
	var out []tier
	if corpus != "" {
		var real tier
		dirs := strings.Split(corpus, ",")
		for _, d := range dirs {
			files, _ := filepath.Glob(filepath.Join(d, "*.eml"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, err
				}
				real.msgs = append(real.msgs, b)
			}
		}
		if len(real.msgs) == 0 {
			return nil, fmt.Errorf("no *.eml in %s", corpus)
		}
		real.what = fmt.Sprintf("real mail, %d messages (%s)", len(real.msgs), strings.Join(dirs, ", "))
		out = append(out, real)
	}
	all := benchcorpus.Tiers()
	if large {
		all = append(all, benchcorpus.Large()...)
	}
	for _, t := range all {
		out = append(out, tier{what: t.What, msgs: [][]byte{t.Raw}})
	}
	return out, nil
}

// run measures the tiers on every system o names and prints a table,
// then, with o.rbldnsd, the DNS tier on the systems with lists and a
// second table.
func run(ctx context.Context, out io.Writer, ts []tier, o options) error {
	runtime.GOMAXPROCS(1)
	f, err := config.BuildFilters(ctx, config.Default(), config.Options{})
	if err != nil {
		return err
	}
	defer f.Close()
	lim := config.Default().Limits.FilterLimits()
	var systems []system
	if o.rspamd != "" {
		systems = append(systems, rspamdSystem("rspamd", o.rspamd, o.rspamdPID, nil))
	}
	if o.rspamdSA != "" {
		systems = append(systems, rspamdSystem("rspamd+SA", o.rspamdSA, o.rspamdSAPID, nil))
	}
	if o.spamd != "" {
		systems = append(systems, system{name: "spamd", check: func(_, _ int, raw []byte) error { return checkSpamd(o.spamd, raw) },
			cpu: func() float64 { return treeCPU(o.spamdPID) }})
	}
	if o.gateway != "" {
		var flags []string
		if o.gatewayPprof != "" {
			flags = []string{"-pprof", o.gatewayPprof}
		}
		g, err := startGateway(o.gateway, o.gatewayCPUs, "", flags...)
		if err != nil {
			return err
		}
		defer g.Close()
		systems = append(systems, g.system("Portcullis SMTP", o.conns, false), g.httpSystem("Portcullis HTTP", nil))
	}
	if o.gatewayBase != "" {
		g, err := startGateway(o.gatewayBase, o.gatewayCPUs, "")
		if err != nil {
			return err
		}
		defer g.Close()
		s := g.system("base SMTP", o.conns, false)
		s.portcullis = false // the ratio columns then read as new against base
		systems = append(systems, s)
	}
	systems = append(systems, system{name: "Portcullis", portcullis: true, check: func(_, _ int, raw []byte) error {
		return verdictError(f.Pipeline.CheckAll(ctx, filter.NewMessageBytes(filter.Envelope{}, raw, lim)))
	}, cpu: selfCPU})
	if err := measureAll(out, ts, systems, o.reps, o.budget); err != nil {
		return err
	}
	if o.rbldnsd == "" {
		return nil
	}
	_, err = runDNS(ctx, out, o)
	return err
}

// runDNS measures the DNS tier on rspamd with the bench lists, the
// gateway with them and the in-process pipeline with them, each probed
// first (probe), and prints its table. It returns how many messages
// were measured (the probes not counted).
func runDNS(ctx context.Context, out io.Writer, o options) (int64, error) {
	t, err := dnsTier()
	if err != nil {
		return 0, err
	}
	var systems []system
	if o.rspamdDNS != "" {
		systems = append(systems, rspamdSystem("rspamd", o.rspamdDNS, o.rspamdDNSPID, clientIP))
	}
	if o.gateway != "" {
		g, err := startGateway(o.gateway, o.gatewayCPUs, dnsYAML(o.rbldnsd))
		if err != nil {
			return 0, err
		}
		defer g.Close()
		systems = append(systems, g.system("Portcullis SMTP", o.conns, true), g.httpSystem("Portcullis HTTP", clientIP))
	}
	f, s, err := inProcessDNS(ctx, o.rbldnsd)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	systems = append(systems, s)
	var counted []string
	// One numbering for every system: the gateway's SMTP and HTTP share
	// one process and its DNS cache, so neither may send a message the
	// other did.
	seq := new(atomic.Int64)
	for i := range systems {
		if err := probe(t, systems[i]); err != nil {
			return 0, err
		}
		systems[i].seq = seq
		if o.rbldnsdStats != "" {
			q, err := queriesPerMessage(o.rbldnsdStats, t, systems[i], 10)
			if err != nil {
				return 0, err
			}
			counted = append(counted, fmt.Sprintf("%s %.1f", systems[i].name, q))
		}
	}
	fmt.Fprintln(out)
	err = measureAll(out, []tier{t}, systems, o.reps, o.budget)
	if err == nil && counted != nil {
		fmt.Fprintf(out, "\nDNS queries at rbldnsd per message (10 messages each, before the measurement): %s\n", strings.Join(counted, ", "))
	}
	return seq.Load(), err
}

func verdictError(v filter.Verdict) error {
	switch v.Action {
	case filter.Tempfail:
		return fmt.Errorf("tempfail: %v", v.Reply)
	case filter.Reject:
		return errRejected
	}
	return nil
}

func selfCPU() float64 { return procCPU("self", false) }

// measureAll measures every tier on every system, reps times
// interleaved, and prints the medians and the ratios.
func measureAll(out io.Writer, ts []tier, systems []system, reps int, budget time.Duration) error {
	for i := range systems {
		if systems[i].seq == nil {
			systems[i].seq = new(atomic.Int64)
		}
	}
	res := make([][][]float64, len(ts)) // tier, system, repetition
	for i := range res {
		res[i] = make([][]float64, len(systems))
	}
	for range reps {
		for i, t := range ts {
			for j, s := range systems {
				ms, err := measure(budget, t, s)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", s.name, t.what, err)
				}
				res[i][j] = append(res[i][j], ms)
			}
		}
	}
	type pair struct{ p, o int }
	var pairs []pair
	for p, sp := range systems {
		for q, so := range systems {
			if sp.portcullis && !so.portcullis {
				pairs = append(pairs, pair{p, q})
			}
		}
	}
	fmt.Fprint(out, "| tier | size |")
	for _, s := range systems {
		fmt.Fprintf(out, " %s ms/msg |", s.name)
	}
	for _, pr := range pairs {
		fmt.Fprintf(out, " %s ahead of %s |", systems[pr.p].name, systems[pr.o].name)
	}
	fmt.Fprint(out, "\n| --- | --- |"+strings.Repeat(" --- |", len(systems)+len(pairs))+"\n")
	for i, t := range ts {
		fmt.Fprintf(out, "| %s | %s |", t.what, kb(t.size()))
		med := make([]float64, len(systems))
		for j := range systems {
			med[j] = median(res[i][j])
			fmt.Fprintf(out, " %.3f |", med[j])
		}
		for _, pr := range pairs {
			fmt.Fprintf(out, " %.1f× |", med[pr.o]/med[pr.p])
		}
		fmt.Fprintln(out)
	}
	return nil
}

func kb(n int) string {
	if n < 10<<10 {
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// measure checks t's messages in turn on s for about budget (at least 3
// times, after one warm-up; at least once and no warm-up above 1 MiB),
// on s.conns connections at once, and returns the CPU milliseconds per
// message that s.cpu reports.
func measure(budget time.Duration, t tier, s system) (float64, error) {
	least := 3
	if t.size() > 1<<20 {
		least = 1
	} else if err := check(s, 0, t); err != nil { // warm up
		return 0, err
	}
	least = max(least, len(t.msgs))
	var (
		claimed, done atomic.Int64
		stop          atomic.Bool
		once          sync.Once
		first         error
		wg            sync.WaitGroup
	)
	c0, start := s.cpu(), time.Now()
	for w := range max(s.conns, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if claimed.Add(1) > int64(least) && time.Since(start) >= budget {
					return
				}
				if err := check(s, w, t); err != nil {
					once.Do(func() { first = err })
					stop.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return (s.cpu() - c0) * 1000 / float64(done.Load()), nil
}

// check filters the next message of t on s's connection w.
func check(s system, w int, t tier) error {
	k := int(s.seq.Add(1))
	if err := s.check(w, k, t.msg(k)); err != nil && !errors.Is(err, errRejected) {
		return err
	}
	return nil
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
