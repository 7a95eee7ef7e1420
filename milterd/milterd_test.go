package milterd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-mail/portcullis/adapters/prommetrics"
	"github.com/portcullis-mail/portcullis/filter"
)

var (
	accept   = filter.Verdict{Action: filter.Accept, Reply: filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}}
	rejected = filter.Verdict{Action: filter.Reject, Reply: filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "Message refused by policy"}}
	tempfail = filter.Verdict{Action: filter.Tempfail, Reply: filter.Reply{Code: 451, Enhanced: "4.7.1", Text: "Temporary failure, please try again later"}}
)

func withHeaders(v filter.Verdict, kv ...string) filter.Verdict {
	v.Headers = nil
	for i := 0; i+1 < len(kv); i += 2 {
		v.Headers = append(v.Headers, filter.Header{Name: kv[i], Value: kv[i+1]})
	}
	return v
}

func TestAcceptAddsHeadersAndRemovesForgedCopies(t *testing.T) {
	b := &fakeBegin{data: func([]byte) filter.Verdict {
		return withHeaders(accept, "X-Spam-Status", "No, score=0.00", "X-Portcullis-Verdict", "accept; score=0.00")
	}}
	h := startFake(t, b, func(c *Config) { c.HeadersOnAccept = true })
	s := h.session()
	envelope(t, s, "b@example.net")
	mods, act := message(t, s, "line one\r\nline two\r\n",
		"X-Spam-Status", "No", "Subject", "hi", "x-spam-status", "No,\n\tfolded", "X-Portcullis-Verdict", "accept")
	wantCode(t, "eom", act, milter.ActAccept)

	var got []string
	for _, m := range mods {
		got = append(got, string(m.Code)+" "+itoa(m.HeaderIndex)+" "+m.HeaderName+"="+m.HeaderValue)
	}
	want := []string{
		"m 2 X-Spam-Status=", "m 1 X-Spam-Status=", // last occurrence first
		"m 1 X-Portcullis-Verdict=",
		"i 0 X-Spam-Status=No, score=0.00", "i 1 X-Portcullis-Verdict=accept; score=0.00", // in the verdict's order
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("modifications:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	raws := b.Raws()
	wantRaw := "X-Spam-Status: No\r\nSubject: hi\r\nx-spam-status: No,\r\n\tfolded\r\nX-Portcullis-Verdict: accept\r\n\r\nline one\r\nline two\r\n"
	if len(raws) != 1 || string(raws[0]) != wantRaw {
		t.Fatalf("transaction got %q, want %q", raws, wantRaw)
	}
	if calls := strings.Join(b.Calls(), "|"); calls != "connect 192.0.2.7|helo client.example|mail a@example.org|rcpt b@example.net|data" {
		t.Fatalf("calls %s", calls)
	}
}

func TestAcceptWithoutHeadersOnAcceptStillRemovesForged(t *testing.T) {
	b := &fakeBegin{data: func([]byte) filter.Verdict { return withHeaders(accept, "X-Spam-Status", "No") }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	mods, act := message(t, s, "x\r\n", "X-Spam-Status", "No")
	wantCode(t, "eom", act, milter.ActAccept)
	if len(mods) != 1 || mods[0].Code != milter.ActChangeHeader || mods[0].HeaderIndex != 1 || mods[0].HeaderValue != "" {
		t.Fatalf("modifications %+v, want only the forged header deleted", mods)
	}
}

func itoa(i uint32) string { return strconv.Itoa(int(i)) }

func TestRejectAtEndOfData(t *testing.T) {
	v := rejected
	v.Reply = filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "Banned attachment: 100% evil.exe"}
	b := &fakeBegin{data: func([]byte) filter.Verdict { return v }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	mods, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActReplyCode)
	if act.SMTPCode != 550 || act.SMTPText != "5.7.1 Banned attachment: 100%% evil.exe" || len(mods) != 0 {
		t.Fatalf("reply %d %q mods %v", act.SMTPCode, act.SMTPText, mods)
	}
}

func TestEarliestStageDecides(t *testing.T) {
	for _, tc := range []struct {
		stage string
		set   func(*fakeBegin)
		code  int
	}{
		{"connect", func(b *fakeBegin) {
			b.connect = filter.Verdict{Action: filter.Reject, Reply: filter.Reply{Code: 554, Enhanced: "5.7.1", Text: "Access denied"}}
		}, 554},
		{"helo", func(b *fakeBegin) { b.helo = tempfail }, 451},
		{"mail", func(b *fakeBegin) { b.mail = rejected }, 550},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			b := &fakeBegin{}
			tc.set(b)
			h := startFake(t, b, nil)
			s := h.session()
			var act *milter.Action
			var err error
			switch tc.stage {
			case "connect":
				act, err = s.Conn("c", milter.FamilyInet, 1, "192.0.2.1")
			case "helo":
				must(t)(s.Conn("c", milter.FamilyInet, 1, "192.0.2.1"))
				act, err = s.Helo("c")
			case "mail":
				must(t)(s.Conn("c", milter.FamilyInet, 1, "192.0.2.1"))
				must(t)(s.Helo("c"))
				act, err = s.Mail("a@example.org", nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, tc.stage, act, milter.ActReplyCode)
			if act.SMTPCode != tc.code {
				t.Fatalf("code %d, want %d", act.SMTPCode, tc.code)
			}
		})
	}
}

func TestRcptRejectRefusesOnlyThatRecipient(t *testing.T) {
	b := &fakeBegin{rcpt: map[string]filter.Verdict{"bad@example.net": rejected}, data: func([]byte) filter.Verdict { return accept }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "good@example.net")
	act := must(t)(s.Rcpt("bad@example.net", nil))
	wantCode(t, "bad rcpt", act, milter.ActReplyCode)
	wantCode(t, "next rcpt", must(t)(s.Rcpt("other@example.net", nil)), milter.ActContinue)
	_, act = message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActAccept)
}

func TestQuarantinePostfixHold(t *testing.T) {
	v := withHeaders(filter.Verdict{Action: filter.Quarantine, Symbols: []filter.Symbol{{Name: "AV_INFECTED", Score: 10}}}, "X-Spam-Status", "Yes")
	b := &fakeBegin{data: func([]byte) filter.Verdict { return v }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	mods, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActAccept)
	var q string
	for _, m := range mods {
		if m.Code == milter.ActQuarantine {
			q = m.Reason
		}
	}
	if q != "Portcullis: AV_INFECTED" {
		t.Fatalf("quarantine reason %q in %+v", q, mods)
	}
}

func TestQuarantineStore(t *testing.T) {
	v := filter.Verdict{Action: filter.Quarantine}
	for _, fail := range []bool{false, true} {
		b := &fakeBegin{data: func([]byte) filter.Verdict { return v }}
		var held []string
		h := startFake(t, b, func(c *Config) {
			c.Quarantine = Store
			c.Hold = func(ctx context.Context, msg *filter.Message, v filter.Verdict) error {
				if fail {
					return errors.New("disk full")
				}
				held = append(held, msg.Envelope.ClientIP.String())
				return nil
			}
		})
		s := h.session()
		envelope(t, s, "b@example.net")
		_, act := message(t, s, "x\r\n", "Subject", "x")
		if fail {
			wantCode(t, "eom", act, milter.ActReplyCode)
			if act.SMTPCode != 451 {
				t.Fatalf("a failed hold answered %d, want 451", act.SMTPCode)
			}
			continue
		}
		wantCode(t, "eom", act, milter.ActDiscard)
		if len(held) != 1 || held[0] != "192.0.2.7" {
			t.Fatalf("held %v", held)
		}
	}
}

func TestStoreModeNeedsHold(t *testing.T) {
	if _, err := New(Config{begin: (&fakeBegin{}).begin, Quarantine: Store}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New without Hold: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New without Pipeline: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	b := &fakeBegin{data: func([]byte) filter.Verdict { return filter.Verdict{Action: filter.Discard} }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	_, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActDiscard)
}

func TestSizeLimitRefusedWhileStreaming(t *testing.T) {
	b := &fakeBegin{maxBytes: 100 << 10, data: func([]byte) filter.Verdict { return accept }}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	wantCode(t, "header", must(t)(s.HeaderField("Subject", "big")), milter.ActContinue)
	wantCode(t, "eoh", must(t)(s.HeaderEnd()), milter.ActContinue)
	chunk := []byte(strings.Repeat("a", milter.MaxBodyChunk))
	var act *milter.Action
	for i := 0; i < 10; i++ {
		act = must(t)(s.BodyChunk(chunk))
		if act.Code != milter.ActContinue {
			break
		}
	}
	wantCode(t, "body", act, milter.ActReplyCode)
	if act.SMTPCode != 552 || !strings.HasPrefix(act.SMTPText, "5.3.4 ") {
		t.Fatalf("over the limit: %d %q, want 552 5.3.4", act.SMTPCode, act.SMTPText)
	}
	// The next message on the connection is judged afresh.
	wantCode(t, "mail", must(t)(s.Mail("a@example.org", nil)), milter.ActContinue)
	wantCode(t, "rcpt", must(t)(s.Rcpt("b@example.net", nil)), milter.ActContinue)
	_, act = message(t, s, "small\r\n", "Subject", "small")
	wantCode(t, "second eom", act, milter.ActAccept)
}

func TestNotReadyTempfails(t *testing.T) {
	ready := errors.New("rules not loaded")
	b := &fakeBegin{}
	h := startFake(t, b, func(c *Config) { c.Ready = func() error { return errors.Join(filter.ErrNotReady, ready) } })
	s := h.session()
	act := must(t)(s.Conn("c", milter.FamilyInet, 1, "192.0.2.1"))
	wantCode(t, "connect", act, milter.ActReplyCode)
	if act.SMTPCode != 451 || !strings.HasPrefix(act.SMTPText, "4.3.2 ") {
		t.Fatalf("not ready: %d %q", act.SMTPCode, act.SMTPText)
	}
}

func TestTwoMessagesAndAbortOnOneConnection(t *testing.T) {
	n := 0
	b := &fakeBegin{data: func(raw []byte) filter.Verdict {
		n++
		if strings.Contains(string(raw), "spam") {
			return rejected
		}
		return accept
	}}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	_, act := message(t, s, "spam\r\n", "Subject", "one")
	wantCode(t, "first", act, milter.ActReplyCode)

	// RSET in the middle of the second message: the MTA sends abort.
	wantCode(t, "mail", must(t)(s.Mail("a@example.org", nil)), milter.ActContinue)
	wantCode(t, "rcpt", must(t)(s.Rcpt("b@example.net", nil)), milter.ActContinue)
	wantCode(t, "hdr", must(t)(s.HeaderField("Subject", "aborted")), milter.ActContinue)
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "mail", must(t)(s.Mail("a@example.org", nil)), milter.ActContinue)
	wantCode(t, "rcpt", must(t)(s.Rcpt("b@example.net", nil)), milter.ActContinue)
	_, act = message(t, s, "ham\r\n", "Subject", "three")
	wantCode(t, "third", act, milter.ActAccept)
	if n != 2 {
		t.Fatalf("%d verdicts, want 2 (the aborted message has none)", n)
	}
	raws := b.Raws()
	if len(raws) != 2 || !strings.Contains(string(raws[1]), "Subject: three") || strings.Contains(string(raws[1]), "aborted") {
		t.Fatalf("messages %q", raws)
	}
	if calls := strings.Join(b.Calls(), "|"); !strings.Contains(calls, "data error") {
		t.Fatalf("the aborted message's DATA did not end with an error: %s", calls)
	}
	b.mu.Lock()
	resets := b.txs[0].resets
	b.mu.Unlock()
	if len(b.txs) != 1 || resets < 2 {
		t.Fatalf("%d transactions, %d resets: want one transaction reset per message", len(b.txs), resets)
	}
}

func TestResponse(t *testing.T) {
	for _, tc := range []struct {
		in   filter.Reply
		code byte
		data string
	}{
		{filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}, 'c', ""},
		{filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "Refused"}, 'y', "550 5.7.1 Refused\x00"},
		{filter.Reply{Code: 451, Enhanced: "4.7.1", Text: "later"}, 'y', "451 4.7.1 later\x00"},
		{filter.Reply{Code: 550, Enhanced: "4.7.1", Text: "mixed"}, 'y', "550 5.0.0 mixed\x00"},
		{filter.Reply{Code: 552, Text: "no enhanced"}, 'y', "552 5.0.0 no enhanced\x00"},
		{filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "a\r\n250 forged"}, 'y', "550 5.7.1 a  250 forged\x00"},
		{filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "50% off"}, 'y', "550 5.7.1 50%% off\x00"},
		{filter.Reply{Code: 354, Text: "go ahead"}, 'y', "451 4.3.0 Temporary local problem, please try again later\x00"},
		{filter.Reply{}, 'y', "451 4.3.0 Temporary local problem, please try again later\x00"},
		{filter.Reply{Code: 550, Enhanced: "5.7.1"}, 'y', "550 5.7.1 Refused\x00"},
	} {
		m := Response(tc.in).Response()
		if m.Code != tc.code || string(m.Data) != tc.data {
			t.Errorf("Response(%v) = %q %q, want %q %q", tc.in, m.Code, m.Data, tc.code, tc.data)
		}
	}
	long := Response(filter.Reply{Code: 550, Enhanced: "5.7.1", Text: strings.Repeat("x", 5000)}).Response()
	if len(long.Data) > maxReplyText+20 {
		t.Errorf("a 5000-byte text gave a %d-byte reply", len(long.Data))
	}
}

func TestQuarantineStoreHoldTimesOut(t *testing.T) {
	b := &fakeBegin{data: func([]byte) filter.Verdict { return filter.Verdict{Action: filter.Quarantine} }}
	h := startFake(t, b, func(c *Config) {
		c.Quarantine, c.HoldTimeout = Store, 50*time.Millisecond
		c.Hold = func(ctx context.Context, msg *filter.Message, v filter.Verdict) error {
			<-ctx.Done() // a store that hangs
			return ctx.Err()
		}
	})
	s := h.session()
	envelope(t, s, "b@example.net")
	_, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActReplyCode)
	if act.SMTPCode != 451 || !strings.HasPrefix(act.SMTPText, "4.4.2 ") {
		t.Fatalf("a hanging hold answered %d %q, want 451 4.4.2", act.SMTPCode, act.SMTPText)
	}
}

// The metrics keep one label set per name, as a Prometheus adapter needs:
// every refusal, verdict and failure path once.
func TestMetricsKeepOneLabelSetPerName(t *testing.T) {
	reg := prometheus.NewRegistry()
	pm := prommetrics.New(reg, nil)
	verdicts := []filter.Verdict{accept, rejected, tempfail, {Action: filter.Discard}, {Action: filter.Quarantine}}
	n := 0
	b := &fakeBegin{rcpt: map[string]filter.Verdict{"bad@example.net": rejected},
		data: func([]byte) filter.Verdict { n++; return verdicts[n%len(verdicts)] }}
	h := startFake(t, b, func(c *Config) {
		c.Metrics = pm
		c.Quarantine = Store
		c.Hold = func(context.Context, *filter.Message, filter.Verdict) error { return errors.New("store down") }
		c.MaxConnections = 2
	})
	s := h.session()
	envelope(t, s, "b@example.net")
	must(t)(s.Rcpt("bad@example.net", nil))
	for range verdicts {
		message(t, s, "x\r\n", "Subject", "x")
		must(t)(s.Mail("a@example.org", nil))
		must(t)(s.Rcpt("b@example.net", nil))
	}
	p := h.dial()
	p.negotiate()     // the second connection, tracked once it answered
	h.dial().closed() // the third is over MaxConnections
	p.send(optneg(allActions))
	p.closed() // a protocol error
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		if mf.GetName() == "portcullis_metrics_errors_total" && mf.GetMetric()[0].GetCounter().GetValue() != 0 {
			t.Fatalf("%v observations dropped for reusing a name with other labels", mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	for _, name := range []string{"portcullis_milter_messages_total", "portcullis_milter_refused_total", "portcullis_milter_protocol_errors_total", "portcullis_milter_connections"} {
		if !seen[name] {
			t.Errorf("%s never recorded", name)
		}
	}
}

func TestListenUnixReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "milter.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false) // as after a crash
	stale.Close()
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv, err := New(Config{begin: (&fakeBegin{}).begin})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	c := milter.NewClientWithOptions("unix", path, milter.ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ActionMask: milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if act, err := s.Conn("local", milter.FamilyUnix, 0, "/run/x"); err != nil || act.Code != milter.ActContinue {
		t.Fatalf("connect over unix socket: %v %v", act, err)
	}
	// A regular file at the path is not removed.
	file := filepath.Join(t.TempDir(), "not-a-socket")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := Listen("unix:" + file); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
}
