package milterd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// fakeTx is a scripted transaction: a verdict per stage (rcpt verdicts by
// recipient), the DATA verdict computed from the raw message.
type fakeTx struct {
	b      *fakeBegin
	id     string
	env    filter.Envelope
	raw    []byte
	msg    *filter.Message
	resets int
	closed int
}

type fakeBegin struct {
	mu       sync.Mutex
	connect  filter.Verdict
	helo     filter.Verdict
	mail     filter.Verdict
	rcpt     map[string]filter.Verdict
	data     func(raw []byte) filter.Verdict
	maxBytes int64 // DATA size limit; 0 none
	txs      []*fakeTx
	raws     [][]byte
	calls    []string
	n        int
}

func (b *fakeBegin) begin(env filter.Envelope) txn {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	tx := &fakeTx{b: b, id: fmt.Sprintf("tx%d", b.n), env: env}
	b.txs = append(b.txs, tx)
	return tx
}

func (b *fakeBegin) call(s string) {
	b.mu.Lock()
	b.calls = append(b.calls, s)
	b.mu.Unlock()
}

func (b *fakeBegin) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *fakeBegin) Raws() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.raws...)
}

// open counts transactions not closed.
func (b *fakeBegin) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, tx := range b.txs {
		if tx.closed == 0 {
			n++
		}
	}
	return n
}

func (t *fakeTx) ID() string { return t.id }
func (t *fakeTx) Connect(ctx context.Context) filter.Verdict {
	t.b.call("connect " + t.env.ClientIP.String())
	return t.b.connect
}
func (t *fakeTx) Helo(ctx context.Context, name string) filter.Verdict {
	t.b.call("helo " + name)
	return t.b.helo
}
func (t *fakeTx) SetAuth(user string) { t.env.AuthUser = user }
func (t *fakeTx) SetTLS(on bool)      { t.env.TLS = on }
func (t *fakeTx) Mail(ctx context.Context, from string) filter.Verdict {
	t.b.call("mail " + from)
	return t.b.mail
}
func (t *fakeTx) Rcpt(ctx context.Context, to string) filter.Verdict {
	t.b.call("rcpt " + to)
	return t.b.rcpt[to]
}
func (t *fakeTx) Data(ctx context.Context, r io.Reader) (filter.Verdict, error) {
	if t.b.maxBytes > 0 {
		r = io.LimitReader(r, t.b.maxBytes+1)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.b.call("data error")
		return filter.Verdict{}, err
	}
	if t.b.maxBytes > 0 && int64(len(raw)) > t.b.maxBytes {
		t.b.call("data too big")
		return filter.Verdict{}, &filter.LimitError{Limit: filter.LimitMessageBytes, Max: t.b.maxBytes}
	}
	t.b.call("data")
	t.raw = raw
	t.msg = filter.NewMessageBytes(t.env, raw, filter.Limits{})
	t.b.mu.Lock()
	t.b.raws = append(t.b.raws, raw)
	t.b.mu.Unlock()
	if t.b.data == nil {
		return filter.Verdict{}, nil
	}
	return t.b.data(raw), nil
}
func (t *fakeTx) Message() *filter.Message { return t.msg }
func (t *fakeTx) Reset() {
	t.b.mu.Lock()
	t.resets++
	t.b.mu.Unlock()
}
func (t *fakeTx) Close() error {
	t.b.mu.Lock()
	t.closed++
	t.b.mu.Unlock()
	return nil
}

// countMetrics records counters so tests can assert on them (panics).
type countMetrics struct {
	mu sync.Mutex
	c  map[string]float64
}

func (m *countMetrics) Add(name string, d float64, labels ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		m.c = map[string]float64{}
	}
	m.c[name+"{"+strings.Join(labels, ",")+"}"] += d
	m.c[name] += d
}
func (m *countMetrics) Set(string, float64, ...string)     {}
func (m *countMetrics) Observe(string, float64, ...string) {}
func (m *countMetrics) Get(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c[name]
}

type harness struct {
	t       *testing.T
	b       *fakeBegin
	srv     *Server
	addr    string
	metrics *countMetrics
}

// startFake serves the milter with a fake transaction on a loopback port.
func startFake(t *testing.T, b *fakeBegin, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, b: b, metrics: &countMetrics{}}
	cfg := Config{begin: b.begin, Metrics: h.metrics, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.addr = srv, ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if n := h.metrics.Get("portcullis_milter_panics_total"); n != 0 {
			t.Errorf("%v panics recovered", n)
		}
		if n := b.open(); n != 0 {
			t.Errorf("%d transactions left open", n)
		}
	})
	return h
}

func (h *harness) session() *milter.ClientSession {
	h.t.Helper()
	c := milter.NewClientWithOptions("tcp", h.addr, milter.ClientOptions{
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ActionMask:   milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine | milter.OptAddRcpt | milter.OptChangeBody,
		ProtocolMask: milter.OptNoUnknown | milter.OptNoData | milter.OptSkip,
	})
	s, err := c.Session()
	if err != nil {
		h.t.Fatalf("milter session: %v", err)
	}
	h.t.Cleanup(func() { s.Close() })
	return s
}

// must(t)(s.Conn(...)) fails the test on an error.
func must(t *testing.T) func(*milter.Action, error) *milter.Action {
	return func(act *milter.Action, err error) *milter.Action {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return act
	}
}

func wantCode(t *testing.T, what string, act *milter.Action, code milter.ActionCode) {
	t.Helper()
	if act.Code != code {
		t.Fatalf("%s: action %q (%d %s), want %q", what, act.Code, act.SMTPCode, act.SMTPText, code)
	}
}

// envelope sends connect, helo, mail and the recipients, expecting continue.
func envelope(t *testing.T, s *milter.ClientSession, rcpts ...string) {
	t.Helper()
	wantCode(t, "connect", must(t)(s.Conn("client.example", milter.FamilyInet, 4242, "192.0.2.7")), milter.ActContinue)
	wantCode(t, "helo", must(t)(s.Helo("client.example")), milter.ActContinue)
	wantCode(t, "mail", must(t)(s.Mail("a@example.org", nil)), milter.ActContinue)
	for _, r := range rcpts {
		wantCode(t, "rcpt "+r, must(t)(s.Rcpt(r, nil)), milter.ActContinue)
	}
}

// message sends headers (name, value pairs) and a body; returns the
// end-of-message modifications and action.
func message(t *testing.T, s *milter.ClientSession, body string, hdrs ...string) ([]milter.ModifyAction, *milter.Action) {
	t.Helper()
	for i := 0; i+1 < len(hdrs); i += 2 {
		wantCode(t, "header "+hdrs[i], must(t)(s.HeaderField(hdrs[i], hdrs[i+1])), milter.ActContinue)
	}
	wantCode(t, "eoh", must(t)(s.HeaderEnd()), milter.ActContinue)
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mods, act
}
