package milterd

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/rbl"
	"github.com/portcullis-mail/portcullis/relay"
)

// The tests in this file run a real Postfix (testsvc.StartPostfix) in
// front of the milter and a go-smtp sink behind it.

// holdTag in a Subject makes the test pipeline demand quarantine.
const holdTag = "[hold]"

// pipelineForPostfix is the archive inspector (an executable in a zip is
// rejected) and a filter that quarantines on holdTag.
func pipelineForPostfix(t testing.TB, extra ...filter.Filter) *filter.Pipeline {
	hold := filter.Func("hold", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if strings.Contains(m.Header().Get("Subject"), holdTag) {
			r.Add("TEST_HOLD", 1, "")
			r.Demand(filter.Quarantine)
		}
		return r, nil
	})
	fs := append([]filter.Filter{archive.New(archive.Config{}), hold}, extra...)
	return filter.NewPipeline(filter.Options{Spool: filter.SpoolConfig{Dir: t.TempDir()}}, fs...)
}

// serveMilter serves cfg on a loopback port and returns "inet:ADDR".
func serveMilter(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := Listen("tcp:127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, cfg)
}

func serveOn(t *testing.T, ln net.Listener, cfg Config) string {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "inet:" + ln.Addr().String()
}

// send runs one SMTP transaction and returns the reply to the end of
// DATA (nil for 250), or an earlier refusal.
func send(t *testing.T, addr, raw string) error {
	t.Helper()
	c, err := smtpDial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("a@example.org"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.net"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit()
	return nil
}

// smtpDial connects and says EHLO.
func smtpDial(addr string) (*smtp.Client, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func replyOf(t *testing.T, err error) (int, string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("want an SMTP reply, got %v", err)
	}
	return te.Code, te.Msg
}

func exeInZip() string {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("invoice.exe")
	w.Write(append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), bytes.Repeat([]byte{0}, 64)...))
	zw.Close()
	return "From: a@example.org\r\nTo: b@example.net\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--B\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"invoice.zip\"\r\n\r\n" +
		base64.StdEncoding.EncodeToString(b.Bytes()) + "\r\n--B--\r\n"
}

func TestPostfixHoldMode(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	addr := serveMilter(t, Config{Pipeline: pipelineForPostfix(t), HeadersOnAccept: true})
	pf := testsvc.StartPostfix(t, testsvc.PostfixConfig{Milter: addr, Relay: sink.Addr})

	t.Run("clean mail gets the verdict headers, the forged one is gone", func(t *testing.T) {
		raw := "From: a@example.org\r\nTo: b@example.net\r\nX-Spam-Status: No, forged\r\nSubject: hello\r\n" +
			"x-spam-status: No,\r\n\tforged and folded\r\n\r\nHello Bob.\r\n"
		if err := send(t, pf.Addr, raw); err != nil {
			t.Fatalf("clean mail refused: %v\n%s", err, pf.Log())
		}
		got := sink.Wait(1, 20*time.Second)
		if len(got) != 1 {
			t.Fatalf("sink has %d messages\n%s", len(got), pf.Log())
		}
		data := string(got[0].Data)
		if strings.Contains(data, "forged") {
			t.Fatalf("forged header delivered:\n%s", data)
		}
		hdr, body, _ := strings.Cut(data, "\r\n\r\n")
		if !strings.HasPrefix(hdr, "X-Spam-Status: No, score=0.00") || !strings.Contains(hdr, "\r\nX-Portcullis-Verdict: accept; score=0.00\r\n") {
			t.Fatalf("verdict headers missing or not on top:\n%s", hdr)
		}
		if strings.Count(strings.ToLower(hdr), "x-spam-status:") != 1 || body != "Hello Bob.\r\n" {
			t.Fatalf("delivered:\n%s", data)
		}
		if !pf.WaitQueueEmpty(10 * time.Second) { // the next subtests look at the queue
			t.Fatalf("delivered message still queued: %+v", pf.Queue())
		}
	})

	t.Run("an executable in a zip is refused at end of data", func(t *testing.T) {
		code, msg := replyOf(t, send(t, pf.Addr, exeInZip()))
		if code != 550 || msg != "5.7.1 Message refused by policy" {
			t.Fatalf("client saw %d %q", code, msg)
		}
		if q := pf.Queue(); len(q) != 0 {
			t.Fatalf("postfix queued a refused message: %+v", q)
		}
	})

	t.Run("quarantine puts the message on Postfix's hold queue", func(t *testing.T) {
		if err := send(t, pf.Addr, "From: a@example.org\r\nSubject: please "+holdTag+"\r\n\r\nbody\r\n"); err != nil {
			t.Fatalf("held mail refused: %v", err)
		}
		q := pf.Queue()
		if len(q) != 1 || q[0].QueueName != "hold" || q[0].Recipients[0].Address != "b@example.net" {
			t.Fatalf("queue %+v, want the message on hold\n%s", q, pf.Log())
		}
		if n := len(sink.Messages()); n != 1 {
			t.Fatalf("sink has %d messages, want only the clean one", n)
		}
	})
}

func TestPostfixStoreMode(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	store, err := quarantine.OpenDir(t.TempDir(), quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rl, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{sink.Addr}}}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.TempDir(), queue.Config{Deliverer: rl, RetryBase: 100 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	mgr, err := quarantine.New(quarantine.Config{Store: store, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveMilter(t, Config{Pipeline: pipelineForPostfix(t), Quarantine: Store,
		Hold: func(ctx context.Context, msg *filter.Message, v filter.Verdict) error {
			_, err := mgr.Hold(ctx, msg, v)
			return err
		}})
	pf := testsvc.StartPostfix(t, testsvc.PostfixConfig{Milter: addr, Relay: sink.Addr})

	if err := send(t, pf.Addr, "From: a@example.org\r\nSubject: store me "+holdTag+"\r\n\r\nkeep this\r\n"); err != nil {
		t.Fatalf("held mail refused: %v\n%s", err, pf.Log())
	}
	page, err := mgr.List(t.Context(), quarantine.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Envelope.RcptTo[0] != "b@example.net" || page.Items[0].Envelope.MailFrom != "a@example.org" {
		t.Fatalf("store holds %+v", page.Items)
	}
	_, raw, err := mgr.Get(t.Context(), page.Items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	// What the milter rebuilt from Postfix's packets: the headers as
	// received (Postfix does not show milters its own Received header),
	// CRLF line ends throughout, the body as sent.
	if !strings.HasPrefix(string(raw), "From: a@example.org\r\nSubject: store me") || !strings.HasSuffix(string(raw), "\r\n\r\nkeep this\r\n") ||
		bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) {
		t.Fatalf("held message %q", raw)
	}
	if pq := pf.Queue(); len(pq) != 0 {
		t.Fatalf("postfix kept a copy: %+v", pq)
	}
	if !pf.WaitLog("milter-discard", 10*time.Second) {
		t.Fatalf("postfix did not log a discard:\n%s", pf.Log())
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("the sink got %d messages before the release", n)
	}
	if _, err := mgr.Release(t.Context(), page.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "keep this") || got[0].To[0] != "b@example.net" {
		t.Fatalf("after release the sink has %+v", got)
	}
}

// milterHelperEnv makes the test binary a milter process (see
// TestMilterHelperProcess) listening on the address it names;
// milterHelperModeEnv=plain leaves out the blocking filter.
const (
	milterHelperEnv     = "PORTCULLIS_MILTERD_HELPER"
	milterHelperModeEnv = "PORTCULLIS_MILTERD_HELPER_MODE"
)

// TestMilterHelperProcess is the milter process the SIGKILL test kills: it
// serves a pipeline whose body filter reports on stdout and blocks.
func TestMilterHelperProcess(t *testing.T) {
	addr := os.Getenv(milterHelperEnv)
	if addr == "" {
		// Not a missing component: this test only runs as the child that
		// TestPostfixMilterKilledMeansTempfail and BenchmarkPostfix
		// re-execute; under CI it is that child or a no-op.
		return
	}
	blocker := filter.Func("blocker", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		os.Stdout.WriteString("BLOCKED\n")
		<-ctx.Done()
		return filter.Result{}, ctx.Err()
	})
	ln, err := Listen("tcp:" + addr)
	if err != nil {
		t.Fatal(err)
	}
	p := pipelineForPostfix(t, blocker)
	if os.Getenv(milterHelperModeEnv) == "plain" {
		p = pipelineForPostfix(t)
	}
	srv, err := New(Config{Pipeline: p, HeadersOnAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("LISTENING\n")
	srv.Serve(ln)
}

func TestPostfixMilterKilledMeansTempfail(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	addr := "127.0.0.1:" + itoa(uint32(testsvc.FreePort(t)))
	child := exec.Command(os.Args[0], "-test.run=^TestMilterHelperProcess$")
	child.Env = append(os.Environ(), milterHelperEnv+"="+addr)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	lines := bufio.NewScanner(out)
	waitLine := func(want string) {
		t.Helper()
		for lines.Scan() {
			if lines.Text() == want {
				return
			}
		}
		t.Fatalf("helper ended before %q: %v", want, lines.Err())
	}
	waitLine("LISTENING")

	pf := testsvc.StartPostfix(t, testsvc.PostfixConfig{Milter: "inet:" + addr, Relay: sink.Addr})
	raw := "From: a@example.org\r\nSubject: during the crash\r\n\r\nbody\r\n"
	result := make(chan error, 1)
	go func() { result <- send(t, pf.Addr, raw) }()
	waitLine("BLOCKED") // the milter has the whole message and is judging it
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	code, msg := replyOf(t, <-result)
	if code/100 != 4 {
		t.Fatalf("with the milter killed the client got %d %q, want 4xx\n%s", code, msg, pf.Log())
	}
	if q := pf.Queue(); len(q) != 0 || len(sink.Messages()) != 0 {
		t.Fatalf("the message passed or was queued: queue %+v, sink %d", q, len(sink.Messages()))
	}

	// The client resends once the milter is back: the message is filtered.
	child.Wait()
	ln, err := Listen("tcp:" + addr)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, Config{Pipeline: pipelineForPostfix(t), HeadersOnAccept: true})
	if err := send(t, pf.Addr, raw); err != nil {
		t.Fatalf("resend: %v\n%s", err, pf.Log())
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.HasPrefix(string(got[0].Data), "X-Spam-Status: ") {
		t.Fatalf("resent message: %+v", got)
	}
}

func TestPostfixListedClientIsRefused(t *testing.T) {
	testsvc.Integration(t)
	// Postfix's clients here come from 127.0.0.1: the list names it, with
	// a score above the reject threshold (15).
	dnsbl := testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:Listed at bl.test\n127.0.0.1\n127.0.0.2\n"})
	checker, err := rbl.NewChecker(rbl.Config{Resolvers: []string{dnsbl.Addr}, HealthInterval: -1, LookupNonPublic: rbl.TestNetworks(),
		Lists: []rbl.List{{Name: "bl", Zone: "bl.test", Kind: rbl.IPList, Score: 20, TestUnlisted: "-"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checker.Close() })
	if h := checker.CheckHealth(t.Context()); !h.Resolvers[0].Up {
		t.Fatalf("rbldnsd health: %+v", h.Resolvers[0])
	}
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	addr := serveMilter(t, Config{Pipeline: pipelineForPostfix(t, checker.Filters()...)})
	pf := testsvc.StartPostfix(t, testsvc.PostfixConfig{Milter: addr, Relay: sink.Addr})
	// Refused at connect: Postfix greets with 554 and logs the milter's
	// reply.
	code, msg := replyOf(t, send(t, pf.Addr, "Subject: from a listed host\r\n\r\nbody\r\n"))
	if code != 554 || !pf.WaitLog("milter-reject: CONNECT from unknown[127.0.0.1]: 554 5.7.1 Access denied", 10*time.Second) {
		t.Fatalf("a listed client got %d %q, want a 554 greeting from the milter's reject\n%s", code, msg, pf.Log())
	}
	if q := pf.Queue(); len(q) != 0 || len(sink.Messages()) != 0 {
		t.Fatalf("a listed client's mail was accepted: queue %+v", q)
	}
}

func TestPostfixNonSMTPMailIsFiltered(t *testing.T) {
	testsvc.Integration(t)
	sendmail := testsvc.LookPath(t, "sendmail", testsvc.PostfixInstall, "/usr/sbin")
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	addr := serveMilter(t, Config{Pipeline: pipelineForPostfix(t), HeadersOnAccept: true})
	pf := testsvc.StartPostfix(t, testsvc.PostfixConfig{Milter: addr, Relay: sink.Addr,
		Main: map[string]string{"non_smtpd_milters": addr}})
	// Postfix's sendmail(1): postdrop, pickup, cleanup, the milter.
	cmd := exec.Command(sendmail, "-C", pf.ConfDir, "-f", "a@example.org", "b@example.net")
	cmd.Stdin = strings.NewReader("Subject: local submission\nX-Spam-Status: No, forged\n\nfrom cron\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v: %s", err, out)
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("sink has %d messages; queue %+v\n%s", len(got), pf.Queue(), pf.Log())
	}
	if d := string(got[0].Data); !strings.HasPrefix(d, "X-Spam-Status: No, score=") || strings.Contains(d, "forged") {
		t.Fatalf("a locally submitted message was not filtered:\n%s", d)
	}
}
