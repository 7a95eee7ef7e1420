// Command bench measures Portcullis's default pipeline against a running
// rspamd on the same messages (the tiers of internal/benchcorpus) and
// prints CPU time per message and the ratio per tier. scripts/bench.sh
// installs and starts rspamd with a private configuration and runs it.
//
// rspamd's CPU is read from /proc for the process given by -rspamd-pid
// and its descendants only (utime+stime, clock ticks); Portcullis runs
// in this process with GOMAXPROCS 1 and its CPU is this process's. Each
// repetition measures every tier on both, interleaved; the median of the
// repetitions is printed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

func main() {
	url := flag.String("rspamd", "http://127.0.0.1:11333", "rspamd normal worker (HTTP /checkv2)")
	pid := flag.Int("rspamd-pid", 0, "rspamd main process: its CPU and its children's is measured")
	reps := flag.Int("reps", 3, "interleaved repetitions; the median is printed")
	budget := flag.Duration("budget", 2*time.Second, "wall time per tier, system and repetition")
	flag.Parse()
	if err := run(*url, *pid, *reps, *budget); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(url string, pid, reps int, budget time.Duration) error {
	runtime.GOMAXPROCS(1)
	ctx := context.Background()
	f, err := config.BuildFilters(ctx, config.Default(), config.Options{})
	if err != nil {
		return err
	}
	defer f.Close()
	lim := config.Default().Limits.FilterLimits()
	tiers := benchcorpus.Tiers()
	rs := make([][]float64, len(tiers))
	pc := make([][]float64, len(tiers))
	for range reps {
		for i, t := range tiers {
			ms, err := measure(budget, func() error { return checkRspamd(url, t.Raw) }, func() float64 { return treeCPU(pid) })
			if err != nil {
				return fmt.Errorf("rspamd %s: %w", t.Name, err)
			}
			rs[i] = append(rs[i], ms)
			ms, err = measure(budget, func() error {
				v := f.Pipeline.CheckAll(ctx, filter.NewMessageBytes(filter.Envelope{}, t.Raw, lim))
				if v.Action == filter.Tempfail {
					return fmt.Errorf("tempfail: %v", v.Reply)
				}
				return nil
			}, func() float64 { return procCPU("self") })
			if err != nil {
				return fmt.Errorf("portcullis %s: %w", t.Name, err)
			}
			pc[i] = append(pc[i], ms)
		}
	}
	fmt.Printf("| tier | size | rspamd ms/msg | Portcullis ms/msg | Portcullis ahead by |\n| --- | --- | --- | --- | --- |\n")
	for i, t := range tiers {
		r, p := median(rs[i]), median(pc[i])
		fmt.Printf("| %s | %d KB | %.3f | %.3f | %.1f× |\n", t.What, len(t.Raw)>>10, r, p, r/p)
	}
	return nil
}

// measure runs fn for about budget (at least 3 times) and returns the CPU
// milliseconds per run that cpu reports.
func measure(budget time.Duration, fn func() error, cpu func() float64) (float64, error) {
	if err := fn(); err != nil { // warm up
		return 0, err
	}
	c0, start, n := cpu(), time.Now(), 0
	for n < 3 || time.Since(start) < budget {
		if err := fn(); err != nil {
			return 0, err
		}
		n++
	}
	return (cpu() - c0) * 1000 / float64(n), nil
}

var client = &http.Client{Timeout: time.Minute}

func checkRspamd(url string, raw []byte) error {
	req, err := http.NewRequest("POST", url+"/checkv2", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("IP", "192.0.2.10")
	req.Header.Set("From", "sender@example.org")
	req.Header.Set("Rcpt", "rcpt@example.net")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"action"`)) {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	return nil
}

// procCPU returns utime+stime of /proc/PID in seconds.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(rest) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(rest[11], 64)
	s, _ := strconv.ParseFloat(rest[12], 64)
	return (u + s) / 100 // USER_HZ
}

// treeCPU is procCPU over pid and its descendants.
func treeCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil || bytes.LastIndexByte(b, ')') < 0 {
			continue
		}
		rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		id, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pp, _ := strconv.Atoi(rest[1])
		parent[id] = pp
	}
	total := 0.0
	for id := range parent {
		for a := id; a != 0; a = parent[a] {
			if a == pid {
				total += procCPU(strconv.Itoa(id))
				break
			}
		}
	}
	return total
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
