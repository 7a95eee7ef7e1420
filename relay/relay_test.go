package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
)

var bg = context.Background()

func relayQueue(t *testing.T, smtpCfg relay.Config, cfg queue.Config) *queue.Queue {
	t.Helper()
	smtpCfg.DialTimeout, smtpCfg.CommandTimeout, smtpCfg.DataTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	d, err := relay.New(smtpCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Deliverer = d
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 20*time.Millisecond, 100*time.Millisecond
	}
	cfg.MinFreeBytes = 1
	cfg.Hostname = "gw.test"
	q, err := queue.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if err := q.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return q
}

func route(hosts ...string) map[string]relay.Route {
	return map[string]relay.Route{"*": {Hosts: hosts}}
}

func msg(subject string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
}

func enqueue(t *testing.T, q *queue.Queue, body string, rcpts ...string) queue.ID {
	t.Helper()
	if len(rcpts) == 0 {
		rcpts = []string{"rcpt@example.net"}
	}
	id, err := q.Enqueue(bg, filter.Envelope{MailFrom: "sender@example.org", RcptTo: rcpts}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func waitEmpty(t *testing.T, q *queue.Queue) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for q.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %+v", q.Entries())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSMTPTemporaryThenSuccess(t *testing.T) {
	var n atomic.Int32
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(string) error {
		if n.Add(1) <= 2 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, come back later"}
		}
		return nil
	}})
	q := relayQueue(t, relay.Config{Routes: route(sink.Addr)}, queue.Config{})
	enqueue(t, q, msg("grey"))
	waitEmpty(t, q)
	got := sink.Messages()
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: grey") || n.Load() != 3 {
		t.Fatalf("sink got %d messages after %d RCPTs", len(got), n.Load())
	}
}

func TestSMTPPermanentFailureSendsDSN(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(to string) error {
		if strings.HasPrefix(to, "nouser@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "nouser@example.net: no such user"}
		}
		return nil
	}})
	q := relayQueue(t, relay.Config{Routes: route(sink.Addr)}, queue.Config{})
	enqueue(t, q, msg("partly bounced"), "ok@example.net", "nouser@example.net")
	waitEmpty(t, q)
	msgs := sink.Messages()
	if len(msgs) != 2 {
		t.Fatalf("sink got %d messages, want the message and its DSN", len(msgs))
	}
	var orig, dsn testsvc.SMTPMessage
	for _, m := range msgs {
		if m.From == "" {
			dsn = m
		} else {
			orig = m
		}
	}
	if len(orig.To) != 1 || orig.To[0] != "ok@example.net" {
		t.Errorf("message went to %v", orig.To)
	}
	if len(dsn.To) != 1 || dsn.To[0] != "sender@example.org" {
		t.Fatalf("DSN (from %q) went to %v", dsn.From, dsn.To)
	}
	checkDSN(t, dsn.Data, sink.Addr)
}

// checkDSN parses a DSN as a mail reader would.
func checkDSN(t *testing.T, data []byte, remote string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN content type %q %v %v", mt, params, err)
	}
	if m.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Error("DSN lacks Auto-Submitted")
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var status, text, headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		switch {
		case strings.HasPrefix(ct, "message/delivery-status"):
			status = string(b)
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b) // multipart decodes quoted-printable
		case strings.HasPrefix(ct, "text/rfc822-headers"):
			headers = string(b)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Errorf("DSN parts %v", types)
	}
	for _, want := range []string{"Reporting-MTA: dns; gw.test", "Final-Recipient: rfc822; nouser@example.net", "Action: failed",
		"Status: 5.1.1", "Remote-MTA: dns; " + remote, "Diagnostic-Code: smtp; 550 5.1.1 nouser@example.net: no such user"} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "ok@example.net") {
		t.Error("DSN reports the delivered recipient")
	}
	if !strings.Contains(text, "550 5.1.1 nouser@example.net: no such user") {
		t.Errorf("human part does not quote the reply:\n%s", text)
	}
	if !strings.Contains(headers, "Subject: partly bounced") {
		t.Errorf("original header not returned:\n%s", headers)
	}
}

func TestSMTPDestinationDownThenBack(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	sink.Stop()
	q := relayQueue(t, relay.Config{Routes: route(sink.Addr)}, queue.Config{})
	for i := range 20 {
		enqueue(t, q, msg(fmt.Sprint("while down ", i)))
	}
	deadline := time.Now().Add(30 * time.Second)
	for retried := false; !retried; {
		retried = true
		for _, e := range q.Entries() {
			if e.Attempts < 2 {
				retried = false
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no retries while the destination was down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d delivered while down", n)
	}
	if !strings.Contains(q.Entries()[0].LastError, "dial") {
		t.Errorf("last error %q", q.Entries()[0].LastError)
	}
	sink.Start()
	waitEmpty(t, q)
	if n := len(sink.Messages()); n != 20 {
		t.Fatalf("%d delivered after the destination returned, want 20", n)
	}
}

func TestSMTPBlocklistRefusalUsesFallback(t *testing.T) {
	primary := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org"}
	}})
	fallback := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	other := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	q := relayQueue(t, relay.Config{Routes: map[string]relay.Route{
		"att.example": {Hosts: []string{primary.Addr}, Fallback: []string{fallback.Addr}},
		"*":           {Hosts: []string{other.Addr}},
	}}, queue.Config{})
	enqueue(t, q, msg("via fallback"), "user@att.example", "user@elsewhere.example")
	waitEmpty(t, q)
	if n := len(primary.Messages()); n != 0 {
		t.Errorf("primary accepted %d", n)
	}
	fb := fallback.Messages()
	if len(fb) != 1 || len(fb[0].To) != 1 || fb[0].To[0] != "user@att.example" {
		t.Errorf("fallback got %+v", fb)
	}
	if o := other.Messages(); len(o) != 1 || o[0].To[0] != "user@elsewhere.example" {
		t.Errorf("default route got %+v", o)
	}
}

func TestSMTPPolicyRefusalAtGreetingUsesFallback(t *testing.T) {
	primary := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnHello: func() error {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected because your IP is listed on a DNSBL"}
	}})
	fallback := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	d, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{primary.Addr}, Fallback: []string{fallback.Addr}}}})
	if err != nil {
		t.Fatal(err)
	}
	errs := deliverDirect(t, d, "a@example.net", "b@example.net")
	if errs[0] != nil || errs[1] != nil || len(fallback.Messages()) != 1 {
		t.Fatalf("errors %v, fallback got %d", errs, len(fallback.Messages()))
	}
}

// deliverDirect runs a deliverer outside a queue, over a scratch spool.
func deliverDirect(t *testing.T, d queue.Deliverer, rcpts ...string) []error {
	t.Helper()
	var out []error
	done := make(chan struct{})
	q, err := queue.Open(t.TempDir(), queue.Config{MinFreeBytes: 1, Deliverer: queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		out = d.Deliver(ctx, m)
		close(done)
		return make([]error, len(m.To))
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	enqueue(t, q, msg("direct"), rcpts...)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("no delivery")
	}
	return out
}

func TestSMTPStartTLSWhenOffered(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{TLS: true})
	plain := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	q := relayQueue(t, relay.Config{Routes: map[string]relay.Route{
		"tls.example": {Hosts: []string{sink.Addr}}, "*": {Hosts: []string{plain.Addr}},
	}}, queue.Config{})
	enqueue(t, q, msg("tls 1"), "a@tls.example", "b@plain.example")
	waitEmpty(t, q)
	enqueue(t, q, msg("tls 2"), "a@tls.example")
	waitEmpty(t, q)
	for _, m := range sink.Messages() {
		if !m.TLS {
			t.Error("message sent in plain text to a host offering STARTTLS")
		}
	}
	if len(sink.Messages()) != 2 || len(plain.Messages()) != 1 || plain.Messages()[0].TLS {
		t.Errorf("tls sink %d, plain sink %d", len(sink.Messages()), len(plain.Messages()))
	}
}

func TestSMTPTLSRequiredRefusesPlainHost(t *testing.T) {
	plain := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	d, err := relay.New(relay.Config{Routes: route(plain.Addr), TLSMode: relay.TLSRequired})
	if err != nil {
		t.Fatal(err)
	}
	errs := deliverDirect(t, d, "a@example.net")
	if !errors.Is(errs[0], relay.ErrTLSRequired) || queue.Classify(errs[0]) != queue.Temporary || len(plain.Messages()) != 0 {
		t.Fatalf("error %v; plain host got %d", errs[0], len(plain.Messages()))
	}
}

func TestLMTPDelivery(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{LMTP: true})
	d, err := relay.NewLMTP([]string{sink.Addr}, relay.Config{})
	if err != nil {
		t.Fatal(err)
	}
	errs := deliverDirect(t, d, "a@example.net", "b@example.net")
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if m := sink.Messages(); len(m) != 1 || len(m[0].To) != 2 {
		t.Fatalf("LMTP sink got %+v", m)
	}
}

func TestSMTPConnectionLimitAndRate(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnData: func(testsvc.SMTPMessage) error {
		time.Sleep(20 * time.Millisecond) // hold the session so connections overlap
		return nil
	}})
	q := relayQueue(t, relay.Config{Routes: route(sink.Addr), MaxConnsPerHost: 2, RatePerHost: 40, RateBurst: 1},
		queue.Config{Workers: 16})
	start := time.Now()
	for i := range 16 {
		enqueue(t, q, msg(fmt.Sprint("limited ", i)))
	}
	waitEmpty(t, q)
	if n := sink.MaxSessions(); n > 2 {
		t.Errorf("%d sessions at once, limit 2", n)
	}
	// 16 transactions at 40/s with a burst of 1 take at least 15/40 s.
	if el := time.Since(start); el < 370*time.Millisecond {
		t.Errorf("16 messages in %v: not throttled to 40/s", el)
	}
	if len(sink.Messages()) != 16 {
		t.Errorf("delivered %d", len(sink.Messages()))
	}
}

func TestSMTPContextReachesTheSocket(t *testing.T) {
	stall := make(chan struct{})
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnData: func(testsvc.SMTPMessage) error {
		<-stall
		return nil
	}})
	t.Cleanup(func() { close(stall) }) // before the sink's shutdown waits for the session
	d, err := relay.New(relay.Config{Routes: route(sink.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	var el time.Duration
	var derr error
	done := make(chan struct{})
	q, err := queue.Open(t.TempDir(), queue.Config{MinFreeBytes: 1, Deliverer: queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		derr = d.Deliver(ctx, m)[0]
		el = time.Since(start)
		close(done)
		return make([]error, len(m.To))
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	enqueue(t, q, msg("stall"))
	<-done
	if derr == nil || queue.Classify(derr) != queue.Temporary || el > 10*time.Second {
		t.Fatalf("stalled next hop: %v after %v", derr, el)
	}
}

func TestSMTPNextHostWhenFirstIsDown(t *testing.T) {
	down := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	down.Stop()
	up := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	d, err := relay.New(relay.Config{Routes: route(down.Addr, up.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	if errs := deliverDirect(t, d, "a@example.net"); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(up.Messages()) != 1 {
		t.Fatalf("second host got %d", len(up.Messages()))
	}
}

func TestSMTPDelivererConfigErrors(t *testing.T) {
	for _, cfg := range []relay.Config{
		{},
		{Routes: map[string]relay.Route{"*": {}}},
		{Routes: map[string]relay.Route{"*": {Hosts: []string{"no-port"}}}},
		{Routes: map[string]relay.Route{"*": {Hosts: []string{"h:25"}, Fallback: []string{"bad"}}}},
	} {
		if _, err := relay.New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	d, _ := relay.New(relay.Config{Routes: map[string]relay.Route{"example.net": {Hosts: []string{"127.0.0.1:1"}}}})
	errs := d.Deliver(bg, &queue.Outgoing{To: []string{"a@unrouted.example"}})
	if !errors.Is(errs[0], relay.ErrNoRoute) || queue.Classify(errs[0]) != queue.Temporary {
		t.Errorf("unrouted recipient: %v", errs[0])
	}
}

// TestSMTPSpreadsOverHosts: transactions take the hosts of a route in
// turn, so both next hops receive mail, not always the first.
func TestSMTPSpreadsOverHosts(t *testing.T) {
	a := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	b := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	q := relayQueue(t, relay.Config{Routes: route(a.Addr, b.Addr)}, queue.Config{Workers: 1})
	const n = 10
	for i := range n {
		enqueue(t, q, msg(fmt.Sprint("spread ", i)))
		waitEmpty(t, q) // one at a time: the turn order is the only variable
	}
	if na, nb := len(a.Messages()), len(b.Messages()); na != n/2 || nb != n/2 {
		t.Errorf("host a got %d, host b %d; want %d each", na, nb, n/2)
	}
}

// TestSMTPDownHostTriedLast: a host that could not be reached is tried
// after the live one while HostDownTime runs, so it costs one dial, not
// one per message; with every host down they are still all tried.
func TestSMTPDownHostTriedLast(t *testing.T) {
	down := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	down.Stop()
	up := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	var dials sync.Map // host -> *atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, _ := dials.LoadOrStore(addr, new(atomic.Int32))
		c.(*atomic.Int32).Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	count := func(h string) int32 {
		c, ok := dials.Load(h)
		if !ok {
			return 0
		}
		return c.(*atomic.Int32).Load()
	}
	d, err := relay.New(relay.Config{Routes: route(down.Addr, up.Addr), Dial: dial, HostDownTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if errs := deliverDirect(t, d, "a@example.net"); errs[0] != nil {
			t.Fatalf("delivery %d: %v", i, errs[0])
		}
	}
	if got := len(up.Messages()); got != 4 {
		t.Errorf("live host got %d of 4", got)
	}
	if n := count(down.Addr); n != 1 {
		t.Errorf("down host dialed %d times, want once", n)
	}
	alone, err := relay.New(relay.Config{Routes: route(down.Addr), Dial: dial, HostDownTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := count(down.Addr)
	errs := deliverDirect(t, alone, "a@example.net")
	if queue.Classify(errs[0]) != queue.Temporary || count(down.Addr) != before+1 {
		t.Errorf("every host down: %v after %d dials, want a temporary error after one more", errs[0], count(down.Addr)-before)
	}
}
