package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/router"
	"github.com/portcullis-mail/portcullis/smtpd"
)

// words is a Data filter driven by the body: SPAMMY scores 6 (add-header),
// HOLD-ME demands quarantine, REJECT-ME demands reject and ENGINE-DOWN
// fails like an antivirus engine that is down.
var words = filter.Func("words", func(_ context.Context, m *filter.Message) (filter.Result, error) {
	var r filter.Result
	b, err := io.ReadAll(m.Reader())
	if err != nil {
		return r, err
	}
	switch {
	case bytes.Contains(b, []byte("ENGINE-DOWN")):
		return r, errors.New("engine down")
	case bytes.Contains(b, []byte("SPAMMY")):
		r.Add("SPAMMY", 6, "")
	case bytes.Contains(b, []byte("HOLD-ME")):
		r.Demand(filter.Quarantine)
	case bytes.Contains(b, []byte("REJECT-ME")):
		r.Demand(filter.Reject)
	}
	return r, nil
})

// stack is a gateway in the test process: pipeline, queue, quarantine,
// router, backend and a go-smtp server on a loopback port.
type stack struct {
	addr string
	srv  *smtp.Server
	q    *queue.Queue
	held *quarantine.Manager
	be   *smtpd.Backend
	dir  string
}

type stackConfig struct {
	dir       string
	deliverer queue.Deliverer
	retry     time.Duration
	backend   smtpd.Config
	server    smtpd.ServerConfig
}

func startStack(t testing.TB, sc stackConfig) *stack {
	t.Helper()
	if sc.dir == "" {
		sc.dir = t.TempDir()
	}
	st := &stack{dir: sc.dir}
	var err error
	st.q, err = queue.Open(filepath.Join(sc.dir, "queue"), queue.Config{Deliverer: sc.deliverer, RetryBase: sc.retry, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	qd, err := quarantine.OpenDir(filepath.Join(sc.dir, "quarantine"), quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st.held, err = quarantine.New(quarantine.Config{Store: qd, Queue: st.q})
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Queue: st.q, Quarantine: st.held})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sc.backend
	cfg.Pipeline = filter.NewPipeline(filter.Options{}, words)
	cfg.Router = r
	st.be, err = smtpd.NewBackend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.srv = smtpd.NewServer(st.be, sc.server)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = l.Addr().String()
	go st.srv.Serve(l)
	t.Cleanup(func() {
		st.shutdown(t)
		st.q.Close()
		qd.Close()
	})
	return st
}

// shutdown stops the server and waits for every session to end.
func (st *stack) shutdown(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.srv.Shutdown(ctx); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		t.Errorf("shutdown: %v", err)
	}
}

// sinkDeliverer relays to a test sink with go-smtp's client.
func sinkDeliverer(addr string) queue.Deliverer {
	return queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		errs := make([]error, len(m.To))
		c, err := smtp.Dial(addr)
		if err == nil {
			err = c.SendMail(m.From, m.To, m.Body())
			c.Close()
		}
		for i := range errs {
			errs[i] = err
		}
		return errs
	})
}

func msg(subject, body string) string {
	return "From: a@example.org\r\nTo: b@example.net\r\nX-Spam-Status: No, forged\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
}

// send sends one message and returns the reply to the final dot (nil for
// 250) and its text.
func send(t testing.TB, addr, data string) (*smtp.SMTPError, string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.org", nil); err != nil {
		return asSMTP(t, err), ""
	}
	if err := c.Rcpt("b@example.net", nil); err != nil {
		return asSMTP(t, err), ""
	}
	w, err := c.Data()
	if err != nil {
		return asSMTP(t, err), ""
	}
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return asSMTP(t, err), ""
	}
	c.Quit()
	return nil, resp.StatusText
}

func asSMTP(t testing.TB, err error) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("not an SMTP reply: %v", err)
	}
	return se
}

func TestDeliveredWithHeaders(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	st := startStack(t, stackConfig{deliverer: sinkDeliverer(sink.Addr)})

	if e, text := send(t, st.addr, msg("clean", "hello")); e != nil || !strings.Contains(text, "queued") {
		t.Fatalf("clean: %v %q", e, text)
	}
	if e, _ := send(t, st.addr, msg("spam", "SPAMMY offer")); e != nil {
		t.Fatalf("spam: %v", e)
	}
	got := sink.Wait(2, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("sink has %d messages, want 2", len(got))
	}
	for _, m := range got {
		d := string(m.Data)
		if strings.Contains(d, "forged") {
			t.Errorf("forged header delivered:\n%s", d)
		}
		if m.From != "a@example.org" || len(m.To) != 1 || m.To[0] != "b@example.net" {
			t.Errorf("envelope %s %v", m.From, m.To)
		}
		spam := strings.Contains(d, "SPAMMY offer")
		if has := strings.Contains(d, "X-Spam-Status: Yes") && strings.Contains(d, "SPAMMY"); spam != has {
			t.Errorf("spam=%v but verdict header present=%v:\n%s", spam, has, d)
		}
		if !strings.HasSuffix(d, "\r\n\r\nhello\r\n") && !strings.HasSuffix(d, "\r\n\r\nSPAMMY offer\r\n") {
			t.Errorf("body changed:\n%q", d)
		}
	}
}

func TestVerdictReplies(t *testing.T) {
	st := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1")})
	tests := []struct {
		body string
		code int
		held int
	}{
		{"HOLD-ME please", 250, 1},
		{"REJECT-ME now", 550, 0},
		{"ENGINE-DOWN here", 451, 0}, // never go-smtp's default 554
	}
	for _, tt := range tests {
		e, text := send(t, st.addr, msg("x", tt.body))
		code := 250
		if e != nil {
			code = e.Code
		}
		if code != tt.code {
			t.Errorf("%s: reply %d %v, want %d", tt.body, code, e, tt.code)
		}
		if tt.held == 1 && !strings.Contains(strings.ToLower(text), "held") {
			t.Errorf("%s: reply text %q does not say held", tt.body, text)
		}
	}
	page, err := st.held.List(context.Background(), quarantine.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Errorf("quarantine holds %d, want 1", len(page.Items))
	}
	if st.q.Len() != 0 {
		t.Errorf("queue holds %d, want 0", st.q.Len())
	}
}

// A client that disconnects in the middle of DATA leaves nothing: no
// queue entry, no quarantine entry, no spool file.
func TestClientDropsMidData(t *testing.T) {
	st := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1")})
	c, err := net.Dial("tcp", st.addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	expect := func(code string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if !strings.HasPrefix(line, code) {
				t.Fatalf("got %q, want %s", line, code)
			}
			if len(line) < 4 || line[3] == ' ' {
				return
			}
		}
	}
	expect("220")
	for _, step := range []struct{ cmd, code string }{
		{"EHLO client.test", "250"}, {"MAIL FROM:<a@example.org>", "250"},
		{"RCPT TO:<b@example.net>", "250"}, {"DATA", "354"},
	} {
		fmt.Fprintf(c, "%s\r\n", step.cmd)
		expect(step.code)
	}
	fmt.Fprintf(c, "Subject: cut\r\n\r\n%s", strings.Repeat("part of a body\r\n", 20000))
	c.Close()
	st.shutdown(t) // waits for the session to end
	if st.q.Len() != 0 {
		t.Errorf("queue holds %d after a cut DATA", st.q.Len())
	}
	page, err := st.held.List(context.Background(), quarantine.Query{})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("quarantine holds %d (%v)", len(page.Items), err)
	}
	if n := st.be.Sessions(); n != 0 {
		t.Errorf("%d sessions open after shutdown", n)
	}
}

func TestSizeLimit(t *testing.T) {
	st := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1"), server: smtpd.ServerConfig{MaxMessageBytes: 1000}})
	e, _ := send(t, st.addr, msg("big", strings.Repeat("a line\r\n", 200)))
	if e == nil || e.Code != 552 {
		t.Fatalf("reply %v, want 552", e)
	}
	long := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1")})
	e, _ = send(t, long.addr, msg("long line", strings.Repeat("x", 2500)))
	if e == nil || e.Code != 554 {
		t.Fatalf("line over go-smtp's limit: %v, want 554", e)
	}
	if e, _ := send(t, st.addr, msg("small", "fits")); e != nil {
		t.Fatalf("small: %v", e)
	}
	if st.q.Len() != 1 {
		t.Errorf("queue holds %d, want 1", st.q.Len())
	}
}

func TestSessionLimitsAndReadiness(t *testing.T) {
	ready := errors.New("queue not open")
	st := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1"),
		backend: smtpd.Config{MaxMessagesPerSession: 1, Ready: func() error { return ready }}})
	c, err := smtp.Dial(st.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.org", nil); err == nil || asSMTP(t, err).Code != 451 {
		t.Fatalf("MAIL while not ready: %v, want 451", err)
	}
	ready = nil
	if err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader(msg("one", "1"))); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.org", nil); err == nil || asSMTP(t, err).Code != 421 {
		t.Fatalf("second MAIL: %v, want 421", err)
	}
}

// TestKillAfter250 kills the server process right after its 250 and
// finds the message delivered by the restarted queue.
func TestKillAfter250(t *testing.T) {
	testsvc.Integration(t)
	dir := t.TempDir()
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	const rounds = 3
	for i := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$")
		cmd.Env = append(os.Environ(), "SMTPD_HELPER_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addr, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("helper: %v", err)
		}
		e, _ := send(t, strings.TrimSpace(addr), msg(fmt.Sprint("round ", i), fmt.Sprint("body of round ", i)))
		cmd.Process.Kill()
		cmd.Wait()
		if e != nil {
			t.Fatalf("round %d: %v", i, e)
		}
	}
	st := startStack(t, stackConfig{dir: dir, deliverer: sinkDeliverer(sink.Addr), retry: 10 * time.Millisecond})
	got := sink.Wait(rounds, 20*time.Second)
	for i := range rounds {
		found := false
		for _, m := range got {
			found = found || strings.Contains(string(m.Data), fmt.Sprint("body of round ", i))
		}
		if !found {
			t.Errorf("round %d lost after SIGKILL (sink has %d, queue %d)", i, len(got), st.q.Len())
		}
	}
}

// TestHelperServer is the re-exec'd server of TestKillAfter250: its
// deliveries always fail, so a message stays queued until it is killed.
func TestHelperServer(t *testing.T) {
	dir := os.Getenv("SMTPD_HELPER_DIR")
	if dir == "" {
		return // not re-exec'd by TestKillAfter250: nothing to serve
	}
	down := queue.DeliverFunc(func(_ context.Context, m *queue.Outgoing) []error {
		errs := make([]error, len(m.To))
		for i := range errs {
			errs[i] = errors.New("next hop down")
		}
		return errs
	})
	st := startStack(t, stackConfig{dir: dir, deliverer: down, retry: 10 * time.Millisecond})
	fmt.Println(st.addr)
	select {} // until killed
}

func TestRecipientLimit(t *testing.T) {
	st := startStack(t, stackConfig{deliverer: sinkDeliverer("127.0.0.1:1"), server: smtpd.ServerConfig{MaxRecipients: 2}})
	c, err := smtp.Dial(st.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := c.Rcpt(fmt.Sprintf("r%d@example.net", i), nil)
		if i < 2 && err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
		if i == 2 && (err == nil || asSMTP(t, err).Code/100 != 4 && asSMTP(t, err).Code/100 != 5) {
			t.Fatalf("recipient over the limit: %v", err)
		}
	}
}
