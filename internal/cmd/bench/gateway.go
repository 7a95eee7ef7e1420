package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// gatewayYAML is the gateway's configuration besides the embedded
// default's: no per-IP or per-session cap a benchmark would hit, and a
// queue that only stores: the relay (127.0.0.1:1, a closed port) refuses
// the one attempt made after each 250 and the next is 1000 hours away,
// so no delivery work lands inside a later measurement.
const gatewayYAML = `smtp:
  max_per_ip: 100000
  max_connections: 100000
  max_messages_per_session: 1000000
queue:
  retry_base: 1000h
  retry_max: 1000h
  max_lifetime: 2000h
`

// gateway is an examples/gateway process this program started, with a
// private configuration and data directory in a temporary directory.
type gateway struct {
	proc  *testsvc.Proc
	dir   string
	addr  string // its SMTP listener
	admin string // its admin listener (POST /api/check)
	token string // the admin token
}

// startGateway runs bin on a free loopback port with gatewayYAML and
// extra (more YAML), pinned by taskset to cpus when cpus is not empty and
// taskset is installed, with GOMAXPROCS 1, and returns when it is ready
// (its rules loaded). Flags are more command-line flags for it (-pprof).
func startGateway(bin, cpus, extra string, flags ...string) (*gateway, error) {
	dir, err := os.MkdirTemp("", "portcullis-bench-gateway-")
	if err != nil {
		return nil, err
	}
	g := &gateway{dir: dir}
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(gatewayYAML+extra), 0o600); err != nil {
		g.Close()
		return nil, err
	}
	args := []string{bin, "-config", cfg, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-relay", "127.0.0.1:1",
		"-data", filepath.Join(dir, "data")}
	args = append(args, flags...)
	if ts, err := exec.LookPath("taskset"); err == nil && cpus != "" {
		args = append([]string{ts, "-c", cpus}, args...) // taskset execs the gateway: the same PID
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if g.proc, err = testsvc.StartProc(cmd); err != nil {
		g.Close()
		return nil, err
	}
	line, ok := g.proc.WaitLine("portcullis gateway started", time.Minute)
	if !ok {
		err := fmt.Errorf("the gateway did not start:\n%s", g.proc.Output(4096))
		g.Close()
		return nil, err
	}
	g.addr, g.admin = testsvc.Field(line, "smtp"), testsvc.Field(line, "admin")
	tok, err := os.ReadFile(testsvc.Field(line, "token"))
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("the gateway's admin token: %w", err)
	}
	g.token = strings.TrimSpace(string(tok))
	if ready := testsvc.Field(line, "ready"); ready != "yes" {
		// Listening while the rules load (SpamAssassin's take seconds).
		line, ok = g.proc.WaitLine("rules: first load done", 5*time.Minute)
		if !ok || testsvc.Field(line, "ready") != "yes" {
			err := fmt.Errorf("the gateway did not become ready (%s):\n%s", ready, g.proc.Output(4096))
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// Close kills the gateway and removes its directory.
func (g *gateway) Close() {
	if g.proc != nil {
		g.proc.Kill()
	}
	os.RemoveAll(g.dir)
}

// system is the gateway over SMTP with conns connections at once. Each
// connection sends message after message (one session, as an MTA
// does), unless perMessage: then every message has a connection of its
// own from clientIP(k), for the DNS tier. Its CPU is the gateway
// process's.
func (g *gateway) system(name string, conns int, perMessage bool) system {
	clients := make([]*smtp.Client, max(conns, 1)) // clients[w] is only ever used by worker w
	check := func(w, k int, raw []byte) error {
		if perMessage {
			c, err := dialSMTP(g.addr, clientIP(k).String())
			if err != nil {
				return err
			}
			defer c.Close()
			err = sendSMTP(c, raw)
			if err == nil || errors.Is(err, errRejected) {
				c.Quit()
			}
			return err
		}
		if clients[w] == nil {
			c, err := dialSMTP(g.addr, "")
			if err != nil {
				return err
			}
			clients[w] = c
		}
		err := sendSMTP(clients[w], raw)
		if err != nil && !errors.Is(err, errRejected) {
			clients[w].Close()
			clients[w] = nil
		}
		return err
	}
	pid := g.proc.Pid()
	return system{name: name, portcullis: true, conns: conns, check: check,
		cpu: func() float64 { return procCPU(strconv.Itoa(pid), false) }}
}

// httpSystem is the gateway's POST /api/check, one request at a time
// on a kept-alive connection, the envelope rspamd's check is given: its
// verdict without the SMTP session, the queue write and its fsync,
// which an HTTP check has no need of. ip gives message k's client
// address (nil: 192.0.2.10 for all). Its CPU is the gateway process's.
func (g *gateway) httpSystem(name string, ip func(k int) netip.Addr) system {
	check := func(_, k int, raw []byte) error {
		addr := "192.0.2.10"
		if ip != nil {
			addr = ip(k).String()
		}
		url := "http://" + g.admin + "/api/check?ip=" + addr + "&from=sender@example.org&rcpt=rcpt@example.net"
		req, err := http.NewRequest("POST", url, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+g.token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var v filter.Verdict
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return fmt.Errorf("check: HTTP %d: %s", resp.StatusCode, body)
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		return verdictError(v)
	}
	pid := g.proc.Pid()
	return system{name: name, portcullis: true, check: check,
		cpu: func() float64 { return procCPU(strconv.Itoa(pid), false) }}
}

// dialSMTP connects to addr from local (an IP address; "": any) and
// says EHLO.
func dialSMTP(addr, local string) (*smtp.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = 5 * time.Minute
	if err := c.Hello("bench.test"); err != nil {
		c.Close()
		return nil, rejected(err)
	}
	return c, nil
}

// sendSMTP sends raw as one transaction on c: nil for a 250, errRejected
// for a 5xx reply at any step (the session goes on), an error otherwise
// (a 4xx included: the gateway must not tempfail while measured).
func sendSMTP(c *smtp.Client, raw []byte) error {
	err := func() error {
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
		if _, err := w.Write(raw); err != nil {
			return err
		}
		return w.Close()
	}()
	if err = rejected(err); errors.Is(err, errRejected) {
		if err := c.Reset(); err != nil {
			return err
		}
	}
	return err
}

// rejected is errRejected for a 5xx reply, err otherwise.
func rejected(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return errRejected
	}
	return err
}
