package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// tenKB is a 10 KB message of ordinary prose, so the default rules have
// text to read.
var tenKB = func() string {
	line := "The quarterly report is attached below; please review the figures before Thursday.\r\n"
	var b strings.Builder
	b.WriteString("From: sender@example.org\r\nTo: rcpt@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <bench@example.org>\r\nSubject: quarterly report\r\n\r\n")
	for b.Len() < 10<<10 {
		b.WriteString(line)
	}
	return b.String()
}()

// BenchmarkAccept measures the SMTP accept rate (messages answered 250
// per second, each durable before its 250) of the gateway on its default
// filters and of a private Postfix on loopback, with 1, 8 and 64 client
// connections that each send messages one after another over the same
// connection. Both relay to a closed port: they only accept into their own
// queues. b.N messages are spread over the connections; latency is from
// MAIL FROM to the 250 after the final dot.
func BenchmarkAccept(b *testing.B) {
	for _, system := range []string{"gateway", "postfix"} {
		for _, conns := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/conns=%d", system, conns), func(b *testing.B) {
				var addr string
				pid := 0
				switch system {
				case "gateway":
					dir := b.TempDir()
					cfg := writeFile(b, dir, "gateway.yaml", "smtp:\n  max_per_ip: 1000\n  max_messages_per_session: 1000000\n")
					g := startGateway(b, "-config", cfg, "-listen", "127.0.0.1:0", "-admin", "off", "-relay", "127.0.0.1:1", "-data", filepath.Join(dir, "data"))
					addr, pid = g.smtp, g.Pid()
				case "postfix":
					p := testsvc.StartPostfix(b, testsvc.PostfixConfig{Relay: "127.0.0.1:1", Main: map[string]string{
						"default_process_limit": "100", "smtpd_client_connection_count_limit": "0"}})
					addr = p.Addr
				}
				cpu0 := cpuSeconds(pid)
				benchSend(b, addr, conns)
				if pid != 0 {
					b.ReportMetric((cpuSeconds(pid)-cpu0)*1000/float64(b.N), "cpu-ms/msg")
				}
			})
		}
	}
}

func benchSend(b *testing.B, addr string, conns int) {
	per := make([]int, conns)
	for i := range b.N {
		per[i%conns]++
	}
	lat := make([][]time.Duration, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendMany(addr, per[c], &lat[c]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// sendMany sends n messages over one connection, recording each latency.
func sendMany(addr string, n int, lat *[]time.Duration) error {
	if n == 0 {
		return nil
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("bench.test"); err != nil {
		return err
	}
	for range n {
		t0 := time.Now()
		if err := c.Mail("sender@example.org", nil); err != nil {
			return err
		}
		if err := c.Rcpt("rcpt@example.net", nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, tenKB); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(t0))
	}
	return c.Quit()
}

// cpuSeconds is a process's user and system CPU time (0 for pid 0).
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime is
	// the 14th field of the line, stime the 15th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}
