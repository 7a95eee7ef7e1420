package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

const testToken = "test-admin-token-0123456789abcdef"

// sink is the queue a release goes to: it records what it was given,
// and passes it on to next when set (a real queue).
type sink struct {
	mu   sync.Mutex
	msgs []sunk
	n    int
	next queue.Enqueuer
}

type sunk struct {
	Env filter.Envelope
	Raw []byte
}

func (s *sink) Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	if s.next != nil {
		id, err := s.next.Enqueue(ctx, env, bytes.NewReader(b))
		if err != nil {
			return "", err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.msgs = append(s.msgs, sunk{env, b})
		return id, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.msgs = append(s.msgs, sunk{env, b})
	return queue.ID("q" + strings.Repeat("0", 3) + string(rune('0'+s.n%10))), nil
}

func (s *sink) released() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.msgs...)
}

// counters records metric additions by name and labels.
type counters struct {
	mu sync.Mutex
	m  map[string]float64
}

func (c *counters) Add(name string, d float64, labels ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]float64{}
	}
	c.m[name+"{"+strings.Join(labels, ",")+"}"] += d
}
func (c *counters) Set(string, float64, ...string)     {}
func (c *counters) Observe(string, float64, ...string) {}

func (c *counters) get(key string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// logBuffer collects the handler's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a handler over a real quarantine on a temporary directory, a
// recording sink and a pipeline whose "av" filter flags messages that
// contain EICAR-LIKE while dirty is set, and a "rules" filter that
// always flags BUY NOW.
type env struct {
	t     *testing.T
	q     *quarantine.Manager
	sink  *sink
	h     *Handler
	srv   *httptest.Server
	log   *logBuffer
	count *counters
	dirty atomic.Bool
	pipe  *filter.Pipeline
	gate  atomic.Pointer[chan struct{}] // when set, the av filter waits for it
	clock atomic.Int64                  // Unix ms the quarantine and the handler see
}

// holdScans holds the av filter until the returned func is called.
func (e *env) holdScans() func() {
	g := make(chan struct{})
	e.gate.Store(&g)
	return func() { close(g) }
}

func (e *env) now() time.Time { return time.UnixMilli(e.clock.Load()) }

func (e *env) advance(d time.Duration) { e.clock.Add(d.Milliseconds()) }

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvQueue(t, nil, opts...)
}

// newEnvQueue is newEnv releasing into next (a real queue) as well.
func newEnvQueue(t *testing.T, next queue.Enqueuer, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, sink: &sink{next: next}, log: &logBuffer{}, count: &counters{}}
	e.dirty.Store(true)
	e.clock.Store(time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC).UnixMilli())
	store, err := quarantine.OpenDir(t.TempDir(), quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.q, err = quarantine.New(quarantine.Config{Store: store, Queue: e.sink, RescanRate: rate.Inf, Now: e.now})
	if err != nil {
		t.Fatal(err)
	}
	av := filter.Func("av", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if g := e.gate.Load(); g != nil {
			<-*g
		}
		b, _ := io.ReadAll(m.Reader())
		if e.dirty.Load() && bytes.Contains(b, []byte("EICAR-LIKE")) {
			r.Add("AV_INFECTED", 10, "clamd-1: Eicar-Like in message")
			r.Demand(filter.Quarantine)
		}
		return r, nil
	})
	rules := filter.Func("rules", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		b, _ := io.ReadAll(m.Reader())
		if bytes.Contains(b, []byte("BUY NOW")) {
			r.Add("RULE_SHOUTING", 6, "rules: BUY NOW")
			r.Demand(filter.Quarantine)
		}
		return r, nil
	})
	e.pipe = filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, av, rules)
	cfg := Config{
		Quarantine: e.q,
		Pipeline:   func() *filter.Pipeline { return e.pipe },
		Token:      testToken,
		Users: []User{
			{Name: "alice", PasswordHash: mustHash(t, "alice-pw"), Recipients: []string{"alice@example.net"}},
			{Name: "bob", PasswordHash: mustHash(t, "bob-pw"), Recipients: []string{"Bob@Example.net"}},
			{Name: "ops", PasswordHash: mustHash(t, "ops-pw"), Admin: true},
		},
		Logger:  slog.New(slog.NewTextHandler(e.log, nil)),
		Now:     e.now,
		Metrics: e.count,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(func() {
		e.srv.Close()
		e.h.Close()
	})
	return e
}

var hashes sync.Map

// mustHash hashes at the minimum cost: the tests log in often.
func mustHash(t testing.TB, pw string) string {
	if h, ok := hashes.Load(pw); ok {
		return h.(string)
	}
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(pw, string(b))
	return string(b)
}

// hold quarantines a message as a gateway would.
func (e *env) hold(from string, to []string, raw string, syms ...filter.Symbol) heldID {
	e.t.Helper()
	if len(syms) == 0 {
		syms = []filter.Symbol{{Name: "AV_INFECTED", Score: 10, Detail: "clamd-1: Eicar-Like in message"}}
	}
	m := filter.NewMessageBytes(filter.Envelope{MailFrom: from, RcptTo: to}, []byte(raw), filter.Limits{})
	id, err := e.q.Hold(context.Background(), m, filter.Verdict{Action: filter.Quarantine, Score: 10, Symbols: syms})
	if err != nil {
		e.t.Fatal(err)
	}
	e.advance(time.Second)
	return id
}

func (e *env) held() []held {
	e.t.Helper()
	p, err := e.q.List(context.Background(), query{Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Items
}

// api makes a JSON API request with the admin token (or tok when set).
func (e *env) api(method, path, tok string, body io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "-" {
		if tok == "" {
			tok = testToken
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// browser is a console client: a cookie jar and the last page's CSRF
// token.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

// post submits a form with the current CSRF token unless v sets one.
func (b *browser) post(path string, v url.Values) (*http.Response, string) {
	b.e.t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if _, ok := v["csrf"]; !ok {
		v.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) login(user, pw string) {
	b.e.t.Helper()
	b.get("/quarantine/login")
	resp, body := b.post("/quarantine/login", url.Values{"user": {user}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("login as %q: %d %s", user, resp.StatusCode, body)
	}
	b.get("/quarantine") // picks up the session's CSRF token
}

// waitJob polls a re-scan until it ends (bounded: the test's deadline).
func (e *env) waitJob(id string) jobStatus {
	e.t.Helper()
	j := e.h.jobs.get(id)
	if j == nil {
		e.t.Fatalf("no job %s", id)
	}
	select {
	case <-j.done:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("re-scan %s did not end", id)
	}
	return j.status()
}

// plainMsg is a simple message with a subject.
func plainMsg(subject, body string) string {
	return "From: Sender <s@example.org>\r\nTo: x@example.net\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
}

// The quarantine's Manager is what the binaries pass.
var _ Quarantine = (*quarantine.Manager)(nil)
