package drills

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

var burst = flag.Int("drills.burst", 200, "messages in the burst drills (the log's incident had 2,000)")

// gatewayBin is the gateway, built once for the whole test binary.
var gatewayBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "portcullis-drills-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin = filepath.Join(dir, "gateway")
	out, err := exec.Command("go", "build", "-o", gatewayBin, "../examples/gateway").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	testsvc.StopShared()
	printTable(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

// row is one drill's line in the final table.
type row struct {
	Incident   int
	Variant    string // "fleet" for a second drill of one incident
	Fault      string
	Sent       int
	Acked      int
	Delivered  int
	Held       int
	Bounced    int
	Lost       int
	Duplicates int
	Failed     bool
	lostIDs    []string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

// report records the drill's numbers for the table and asserts lost = 0.
func report(t *testing.T, r row) {
	t.Helper()
	r.Failed = t.Failed()
	if r.Lost != 0 {
		sort.Strings(r.lostIDs)
		t.Errorf("incident %d: %d acknowledged messages lost: %.40q", r.Incident, r.Lost, r.lostIDs)
		r.Failed = true
	}
	t.Logf("incident %d: sent %d, acknowledged %d, delivered %d, held %d, bounced %d, lost %d, duplicates %d",
		r.Incident, r.Sent, r.Acked, r.Delivered, r.Held, r.Bounced, r.Lost, r.Duplicates)
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

func printTable(w io.Writer) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Incident != rows[j].Incident {
			return rows[i].Incident < rows[j].Incident
		}
		return rows[i].Variant < rows[j].Variant
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | injected fault | sent | acknowledged | delivered | held | bounced | lost | dup |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		mark := ""
		if r.Variant != "" {
			mark = " (" + r.Variant + ")"
		}
		if r.Failed {
			mark += " FAILED"
		}
		fmt.Fprintf(w, "| %d%s | %s | %d | %d | %d | %d | %d | %d | %d |\n", r.Incident, mark, r.Fault, r.Sent, r.Acked, r.Delivered, r.Held, r.Bounced, r.Lost, r.Duplicates)
	}
}

// baseConfig is a gateway configuration on free loopback ports, its own
// data directory, compressed time (retries in milliseconds), no relay.
func baseConfig(t testing.TB) *config.Config {
	t.Helper()
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.SMTP.Listen = "127.0.0.1:0"
	c.SMTP.MaxPerIP = 200
	c.Admin.Listen = "127.0.0.1:0"
	c.Queue.RetryBase = config.Duration(50 * time.Millisecond)
	c.Queue.RetryMax = config.Duration(400 * time.Millisecond)
	c.Queue.MinFreeBytes = 1 << 20
	c.Relay.Routes = map[string]config.Route{"*": {Hosts: []string{"127.0.0.1:1"}}}
	return c
}

// gateway is one running gateway process.
type gateway struct {
	t     testing.TB
	p     *testsvc.Proc // the current process
	cfg   *config.Config
	file  string
	smtp  string
	admin string
	token string
}

// start writes cfg to a file and runs the gateway on it, waiting for its
// start-up line.
func start(t testing.TB, cfg *config.Config) *gateway {
	t.Helper()
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "gateway-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	g := &gateway{t: t, cfg: cfg, file: f.Name()}
	g.run()
	return g
}

// launch writes cfg to a file and starts the gateway without waiting for
// it to serve (waitStarted does).
func launch(t testing.TB, cfg *config.Config) *gateway {
	t.Helper()
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "gateway-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	g := &gateway{t: t, cfg: cfg, file: f.Name()}
	g.spawn()
	return g
}

// run (re)starts the process on the same configuration file.
func (g *gateway) run() {
	g.t.Helper()
	g.spawn()
	g.waitStarted()
}

// spawn starts the process.
func (g *gateway) spawn() {
	t := g.t
	t.Helper()
	p, err := testsvc.StartProc(exec.Command(gatewayBin, "-config", g.file))
	if err != nil {
		t.Fatal(err)
	}
	g.p = p
	t.Cleanup(g.kill)
}

// waitStarted waits for the start-up line and reads the addresses and
// the admin token from it.
func (g *gateway) waitStarted() {
	t := g.t
	t.Helper()
	line := g.waitListening()
	// The gateway listens while its rules load; drills start from a
	// loaded node (incident 8 watches the load itself: waitListening).
	if strings.Contains(field(line, "ready"), "rules: loading") {
		if _, ok := g.waitLine("rules: first load done", 60*time.Second); !ok {
			g.kill()
			t.Fatalf("gateway rules did not load:\n%s", g.output())
		}
	}
}

// waitListening waits for the start-up line only (the node may still be
// loading its rules) and returns it.
func (g *gateway) waitListening() string {
	t := g.t
	t.Helper()
	line, ok := g.waitLine("portcullis gateway started", 60*time.Second)
	if !ok {
		g.kill()
		t.Fatalf("gateway did not start:\n%s", g.output())
	}
	g.smtp, g.admin = field(line, "smtp"), field(line, "admin")
	if p := field(line, "token"); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			g.token = strings.TrimSpace(string(b))
		}
	}
	return line
}

// waitLine waits for a log line containing s (from the start of the
// current process's output).
func (g *gateway) waitLine(s string, timeout time.Duration) (string, bool) {
	return g.p.WaitLine(s, timeout)
}

// countLines counts log lines containing every one of subs.
func (g *gateway) countLines(subs ...string) int { return g.p.Count(subs...) }

func (g *gateway) output() string { return g.p.Output(20000) }

func (g *gateway) kill() {
	if g.p != nil {
		g.p.Kill()
	}
}

func (g *gateway) signal(sig syscall.Signal) {
	g.t.Helper()
	if err := g.p.Signal(sig); err != nil {
		g.t.Fatal(err)
	}
}

// field returns key's value in a slog text line.
func field(line, key string) string { return testsvc.Field(line, key) }

// reply is the outcome of one SMTP transaction: the reply that ended it
// (250 for an accepted message).
type reply struct {
	code int
	enh  smtp.EnhancedCode
	text string
	err  error // not an SMTP reply: connection refused, reset
}

func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %d.%d.%d %s", r.code, r.enh[0], r.enh[1], r.enh[2], r.text)
}

func asReply(err error) reply {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return reply{code: se.Code, enh: se.EnhancedCode, text: se.Message}
	}
	return reply{err: err}
}

// mail is one message to send.
type mail struct {
	local net.Addr // client address; nil: any
	from  string
	to    []string
	data  string
}

// send runs one SMTP transaction against addr.
func send(addr string, m mail) reply {
	d := net.Dialer{LocalAddr: m.local, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return reply{err: err}
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.drill.test"); err != nil {
		return asReply(err)
	}
	return transact(c, m)
}

func transact(c *smtp.Client, m mail) reply {
	if err := c.Mail(m.from, nil); err != nil {
		return asReply(err)
	}
	for _, r := range m.to {
		if err := c.Rcpt(r, nil); err != nil {
			return asReply(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return asReply(err)
	}
	if _, err := io.WriteString(w, m.data); err != nil {
		return asReply(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return asReply(err)
	}
	return reply{code: 250, enh: smtp.EnhancedCode{2, 0, 0}, text: resp.StatusText}
}

// sendAll sends msgs over conns concurrent connections (one transaction
// per connection) and returns the replies in order.
func sendAll(addr string, msgs []mail, conns int) []reply {
	out := make([]reply, len(msgs))
	ch := make(chan int)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				out[i] = send(addr, msgs[i])
			}
		}()
	}
	for i := range msgs {
		ch <- i
	}
	close(ch)
	wg.Wait()
	return out
}

// text builds a plain message whose Subject is its drill id.
func text(id, body string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <" + id + "@drill.example.org>\r\nSubject: " + id + "\r\n\r\n" + body + "\r\n"
}

// poll calls cond until it reports true or timeout passes; then it fails
// with what cond last said. It polls observable state, never sleeps to
// synchronise.
func poll(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, last)
		}
		select {
		case <-time.After(wait):
		case <-context.Background().Done():
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func routeTo(hosts ...string) config.Route { return config.Route{Hosts: hosts} }

// lineWith returns the first log line containing s so far ("" if none).
func (g *gateway) lineWith(s string) string { return g.p.LineWith(s) }
