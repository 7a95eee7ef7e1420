// Command bench measures Portcullis's default pipeline against a running
// rspamd and a running spamd on the same messages (the tiers of
// internal/benchcorpus and a tier of the repository's real mail) and
// prints CPU time per message and the ratios per tier. scripts/bench.sh
// installs and starts rspamd and spamd with private configurations and
// runs it.
//
// A server's CPU is read from /proc for the process given by -rspamd-pid
// or -spamd-pid and its descendants only (utime+stime, plus the
// cutime+cstime of children they reaped, so a spamd child that exits
// after its connection quota still counts); Portcullis runs in this
// process with GOMAXPROCS 1 and its CPU is this process's. Each
// repetition measures every tier on every system, interleaved; the
// median of the repetitions is printed. A tier larger than 1 MiB is run
// at least once (not three times) and without a warm-up, so that the
// run stays short.
//
// With -clamd, the default pipeline is also built with that clamd
// attached through a counting relay, each tier is filtered once, and the
// bytes streamed to clamd (INSTREAM chunk payloads) per message byte are
// printed: the AV figure "each byte streamed to an engine once".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// tier is a set of messages measured together; a run checks them in turn.
type tier struct {
	what string
	msgs [][]byte
}

func (t tier) size() int {
	n := 0
	for _, m := range t.msgs {
		n += len(m)
	}
	return n / len(t.msgs)
}

// system is one filter under measurement.
type system struct {
	name  string
	check func(raw []byte) error
	cpu   func() float64
}

func main() {
	rurl := flag.String("rspamd", "", "rspamd normal worker (HTTP /checkv2), e.g. http://127.0.0.1:11333; empty: not measured")
	rpid := flag.Int("rspamd-pid", 0, "rspamd main process: its CPU and its children's is measured")
	saddr := flag.String("spamd", "", "spamd address (spamc protocol), e.g. 127.0.0.1:783; empty: not measured")
	spid := flag.Int("spamd-pid", 0, "spamd main process: its CPU and its children's is measured")
	caddr := flag.String("clamd", "", "clamd TCP address: measure the bytes the default pipeline streams to it")
	corpus := flag.String("corpus", "rules/default/corpus,testdata", "comma-separated directories of real mail (*.eml) for the real-mail tier; empty: none")
	large := flag.Bool("large", true, "include the 10 MB tier")
	reps := flag.Int("reps", 3, "interleaved repetitions; the median is printed")
	budget := flag.Duration("budget", 2*time.Second, "wall time per tier, system and repetition")
	flag.Parse()
	ts, err := tiers(*corpus, *large)
	if err == nil {
		err = run(ts, *rurl, *rpid, *saddr, *spid, *reps, *budget)
	}
	if err == nil && *caddr != "" {
		err = avBytes(ts, *caddr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
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
		out = append(out, tier{t.What, [][]byte{t.Raw}})
	}
	return out, nil
}

func run(ts []tier, rurl string, rpid int, saddr string, spid, reps int, budget time.Duration) error {
	runtime.GOMAXPROCS(1)
	ctx := context.Background()
	f, err := config.BuildFilters(ctx, config.Default(), config.Options{})
	if err != nil {
		return err
	}
	defer f.Close()
	lim := config.Default().Limits.FilterLimits()
	var systems []system
	if rurl != "" {
		systems = append(systems, system{"rspamd", func(raw []byte) error { return checkRspamd(rurl, raw) }, func() float64 { return treeCPU(rpid) }})
	}
	if saddr != "" {
		systems = append(systems, system{"spamd", func(raw []byte) error { return checkSpamd(saddr, raw) }, func() float64 { return treeCPU(spid) }})
	}
	systems = append(systems, system{"Portcullis", func(raw []byte) error {
		v := f.Pipeline.CheckAll(ctx, filter.NewMessageBytes(filter.Envelope{}, raw, lim))
		if v.Action == filter.Tempfail {
			return fmt.Errorf("tempfail: %v", v.Reply)
		}
		return nil
	}, func() float64 { return procCPU("self", false) }})
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
	fmt.Print("| tier | size |")
	for _, s := range systems {
		fmt.Printf(" %s ms/msg |", s.name)
	}
	last := len(systems) - 1
	for _, s := range systems[:last] {
		fmt.Printf(" Portcullis ahead of %s |", s.name)
	}
	fmt.Print("\n| --- | --- |" + strings.Repeat(" --- |", 2*len(systems)-1) + "\n")
	for i, t := range ts {
		fmt.Printf("| %s | %s |", t.what, kb(t.size()))
		med := make([]float64, len(systems))
		for j := range systems {
			med[j] = median(res[i][j])
			fmt.Printf(" %.3f |", med[j])
		}
		for j := range systems[:last] {
			fmt.Printf(" %.1f× |", med[j]/med[last])
		}
		fmt.Println()
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
// times, after one warm-up; at least once and no warm-up above 1 MiB)
// and returns the CPU milliseconds per message that s.cpu reports.
func measure(budget time.Duration, t tier, s system) (float64, error) {
	least := 3
	if t.size() > 1<<20 {
		least = 1
	} else if err := s.check(t.msgs[0]); err != nil { // warm up
		return 0, err
	}
	c0, start, n := s.cpu(), time.Now(), 0
	for n < least || n < len(t.msgs) || time.Since(start) < budget {
		if err := s.check(t.msgs[n%len(t.msgs)]); err != nil {
			return 0, err
		}
		n++
	}
	return (s.cpu() - c0) * 1000 / float64(n), nil
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
