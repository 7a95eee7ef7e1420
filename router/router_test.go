package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

// seq orders events across the fakes and the test: a store's return and
// Route's return each take the next number.
var seq atomic.Int64

// fakeStore is an in-memory Queue and Holder. It records a message only
// when it returns nil, as a durable store acknowledges only what it kept.
type fakeStore struct {
	mu       sync.Mutex
	err      error
	entered  chan struct{} // closed when a store call starts, if set
	release  chan struct{} // a store call waits for it, if set
	bodies   [][]byte
	envs     []filter.Envelope
	verdicts []filter.Verdict
	msgids   []string
	returned int64 // seq at the last return
}

func (f *fakeStore) store(ctx context.Context, env filter.Envelope, body io.Reader, v filter.Verdict) (string, error) {
	if f.entered != nil {
		close(f.entered)
	}
	if f.release != nil {
		<-f.release
	}
	b, err := io.ReadAll(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() { f.returned = seq.Add(1) }()
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if f.err != nil {
		return "", f.err
	}
	f.bodies = append(f.bodies, b)
	f.envs = append(f.envs, env)
	f.verdicts = append(f.verdicts, v)
	f.msgids = append(f.msgids, filter.MessageIDOf(ctx))
	return fmt.Sprintf("id%d", len(f.bodies)), nil
}

func (f *fakeStore) Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (queue.ID, error) {
	id, err := f.store(ctx, env, body, filter.Verdict{})
	return queue.ID(id), err
}

func (f *fakeStore) Hold(ctx context.Context, m *filter.Message, v filter.Verdict) (quarantine.ID, error) {
	id, err := f.store(ctx, m.Envelope, m.Reader(), v)
	return quarantine.ID(id), err
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

func (f *fakeStore) body(t *testing.T) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) != 1 {
		t.Fatalf("store holds %d messages, want 1", len(f.bodies))
	}
	return string(f.bodies[0])
}

// fakeMetrics counts Add calls by name and labels.
type fakeMetrics struct {
	filter.NopMetrics
	mu sync.Mutex
	n  map[string]float64
}

func (m *fakeMetrics) Add(name string, d float64, labels ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]float64{}
	}
	m.n[name+"{"+strings.Join(labels, ",")+"}"] += d
}

func (m *fakeMetrics) get(key string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[key]
}

const raw = "X-Spam-Status: No, forged\r\n" +
	"From: a@example.org\r\n" +
	"x-portcullis-verdict: accept;\r\n  score=-100\r\n" +
	"Subject: hi\r\n" +
	"\r\n" +
	"X-Spam-Status: in the body stays\r\n"

var env = filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}}

func message() *filter.Message { return filter.NewMessageBytes(env, []byte(raw), filter.Limits{}) }

func verdict(a filter.Action, s filter.Stage) filter.Verdict {
	v := filter.DefaultPolicy().Decide(s, []filter.Symbol{{Name: "T", Score: 1}}, a)
	return v
}

func newRouter(t *testing.T, cfg Config) (*Router, *fakeStore, *fakeStore, *fakeMetrics) {
	t.Helper()
	q, h, m := &fakeStore{}, &fakeStore{}, &fakeMetrics{}
	cfg.Queue, cfg.Quarantine, cfg.Metrics = q, h, m
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, q, h, m
}

func TestNewRefusesMissingStores(t *testing.T) {
	if _, err := New(Config{Quarantine: &fakeStore{}}); !errors.Is(err, ErrNoQueue) {
		t.Errorf("no queue: %v, want ErrNoQueue", err)
	}
	if _, err := New(Config{Queue: &fakeStore{}}); !errors.Is(err, ErrNoQuarantine) {
		t.Errorf("no quarantine: %v, want ErrNoQuarantine", err)
	}
}

func TestActions(t *testing.T) {
	stripped := "From: a@example.org\r\nSubject: hi\r\n\r\nX-Spam-Status: in the body stays\r\n"
	tests := []struct {
		name         string
		cfg          Config
		action       filter.Action
		stage        filter.Stage
		code         int
		text         string // prefix of the reply text
		queued, held int
		body         string // the stored body, after any verdict headers
		headers      bool   // verdict headers prepended
		outcome      string
	}{
		{name: "accept strips forged headers", action: filter.Accept, stage: filter.Data,
			code: 250, text: "OK: queued as id1", queued: 1, body: stripped, outcome: "queued"},
		{name: "accept with headers", cfg: Config{HeadersOnAccept: true}, action: filter.Accept, stage: filter.Data,
			code: 250, text: "OK: queued as id1", queued: 1, body: stripped, headers: true, outcome: "queued"},
		{name: "add-header", action: filter.AddHeader, stage: filter.Data,
			code: 250, text: "OK: queued", queued: 1, body: stripped, headers: true, outcome: "queued"},
		{name: "quarantine keeps the message as received", action: filter.Quarantine, stage: filter.Data,
			code: 250, text: filter.ReplyFor(filter.Quarantine, filter.Data).Text, held: 1, body: raw, outcome: "held"},
		{name: "discard drops", action: filter.Discard, stage: filter.Data, code: 250, outcome: "discarded"},
		{name: "discard kept", cfg: Config{KeepDiscarded: true}, action: filter.Discard, stage: filter.Data,
			code: 250, held: 1, body: raw, outcome: "discarded"},
		{name: "tempfail", action: filter.Tempfail, stage: filter.Data, code: 451, outcome: "refused"},
		{name: "reject at data", action: filter.Reject, stage: filter.Data, code: 550, outcome: "refused"},
		{name: "reject at connect", action: filter.Reject, stage: filter.Connect, code: 554, outcome: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, q, h, m := newRouter(t, tt.cfg)
			v := verdict(tt.action, tt.stage)
			rep := r.route(context.Background(), "tx1", env, message(), v)
			if rep.Code != tt.code || !strings.HasPrefix(rep.Text, tt.text) {
				t.Errorf("reply %v, want %d %q...", rep, tt.code, tt.text)
			}
			if q.count() != tt.queued || h.count() != tt.held {
				t.Fatalf("queued %d held %d, want %d and %d", q.count(), h.count(), tt.queued, tt.held)
			}
			var got string
			switch {
			case tt.queued == 1:
				got = q.body(t)
				if q.msgids[0] != "tx1" {
					t.Errorf("the queue was told message ID %q, want tx1", q.msgids[0])
				}
				if q.envs[0].MailFrom != env.MailFrom || len(q.envs[0].RcptTo) != 1 {
					t.Errorf("queued envelope %+v", q.envs[0])
				}
			case tt.held == 1:
				got = h.body(t)
				if h.verdicts[0].Action != tt.action {
					t.Errorf("held with verdict %v, want %v", h.verdicts[0].Action, tt.action)
				}
			}
			prefix, ok := strings.CutSuffix(got, tt.body)
			if !ok {
				t.Fatalf("stored body:\n%q\ndoes not end with:\n%q", got, tt.body)
			}
			if !tt.headers && prefix != "" {
				t.Errorf("unexpected headers %q", prefix)
			}
			if tt.headers {
				for _, hd := range v.Headers {
					if strings.Count(strings.ToLower(prefix), strings.ToLower(hd.Name)+":") != 1 || !strings.Contains(prefix, hd.Name+": "+hd.Value) {
						t.Errorf("headers %q lack %s: %s once", prefix, hd.Name, hd.Value)
					}
				}
			}
			key := "portcullis_router_messages_total{action," + tt.action.String() + ",outcome," + tt.outcome + "}"
			if m.get(key) != 1 {
				t.Errorf("metric %s = %v, want 1", key, m.get(key))
			}
		})
	}
}

// TestReplyAfterStore proves that Route answers only once the store has
// returned: the store blocks until the test releases it, and the order of
// the two returns is recorded.
func TestReplyAfterStore(t *testing.T) {
	for _, a := range []filter.Action{filter.Accept, filter.AddHeader, filter.Quarantine} {
		t.Run(a.String(), func(t *testing.T) {
			r, q, h, _ := newRouter(t, Config{})
			s := q
			if a == filter.Quarantine {
				s = h
			}
			s.entered, s.release = make(chan struct{}), make(chan struct{})
			done := make(chan int64)
			go func() {
				rep := r.route(context.Background(), "tx1", env, message(), verdict(a, filter.Data))
				n := seq.Add(1)
				if rep.Code != 250 {
					t.Errorf("reply %v", rep)
				}
				done <- n
			}()
			<-s.entered
			close(s.release)
			replied := <-done
			s.mu.Lock()
			stored := s.returned
			s.mu.Unlock()
			if replied < stored {
				t.Fatalf("Route returned (seq %d) before the store did (seq %d)", replied, stored)
			}
		})
	}
}

type replyErr struct{ r filter.Reply }

func (e replyErr) Error() string       { return e.r.String() }
func (e replyErr) Reply() filter.Reply { return e.r }

func TestStoreFailureIsTemporary(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	errs := []struct {
		name string
		ctx  context.Context
		err  error
		code int
	}{
		{"EIO", context.Background(), &os.PathError{Op: "write", Path: "seg-1.log", Err: syscall.EIO}, 451},
		{"disk full", context.Background(), fmt.Errorf("fsync: %w", syscall.ENOSPC), 451},
		{"busy", context.Background(), replyErr{filter.Reply{Code: 451, Enhanced: "4.3.2", Text: "Queue busy"}}, 451},
		{"disk busy", context.Background(), replyErr{filter.Reply{Code: 452, Enhanced: "4.3.1", Text: "No space"}}, 452},
		{"closed", context.Background(), queue.ErrClosed, 451},
		{"queue full", context.Background(), fmt.Errorf("enqueue: %w", &queue.BusyError{Reason: queue.BusyDepth}), 451},
		{"queue disk full", context.Background(), &queue.BusyError{Reason: queue.BusyDisk}, 452},
		{"replier claiming success", context.Background(), replyErr{filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "fine"}}, 451},
		{"canceled", canceled, nil, 451},
	}
	for _, a := range []filter.Action{filter.Accept, filter.AddHeader, filter.Quarantine, filter.Discard} {
		for _, e := range errs {
			t.Run(a.String()+"/"+e.name, func(t *testing.T) {
				r, q, h, m := newRouter(t, Config{KeepDiscarded: true})
				q.err, h.err = e.err, e.err
				rep := r.route(e.ctx, "tx1", env, message(), verdict(a, filter.Data))
				if rep.Code != e.code || !rep.Temporary() {
					t.Errorf("reply %v, want %d", rep, e.code)
				}
				if q.count()+h.count() != 0 {
					t.Errorf("a failed store kept %d messages", q.count()+h.count())
				}
				key := "portcullis_router_messages_total{action," + a.String() + ",outcome,failed}"
				if m.get(key) != 1 {
					t.Errorf("metric %s = %v, want 1", key, m.get(key))
				}
			})
		}
	}
}

func TestNoMessageOrUnknownAction(t *testing.T) {
	r, q, h, _ := newRouter(t, Config{})
	if rep := r.route(context.Background(), "tx1", env, nil, verdict(filter.Accept, filter.Data)); rep.Code != 451 {
		t.Errorf("no message: %v, want 451", rep)
	}
	envOnly := filter.NewMessage(env, nil, 0, filter.Limits{})
	if rep := r.route(context.Background(), "tx1", env, envOnly, verdict(filter.Accept, filter.Data)); rep.Code != 451 {
		t.Errorf("message without body: %v, want 451", rep)
	}
	v := verdict(filter.Accept, filter.Data)
	v.Action = filter.Action(42)
	if rep := r.route(context.Background(), "tx1", env, message(), v); rep.Code != 451 {
		t.Errorf("unknown action: %v, want 451", rep)
	}
	if q.count()+h.count() != 0 {
		t.Errorf("stored %d", q.count()+h.count())
	}
}

// A refusing verdict whose reply does not match its action (a 250 for a
// reject) gets the action's reply: the verdict cannot turn a refusal into
// an acknowledgment.
func TestRefusalReplyMatchesAction(t *testing.T) {
	r, _, _, _ := newRouter(t, Config{})
	for _, a := range []filter.Action{filter.Tempfail, filter.Reject} {
		v := verdict(a, filter.Data)
		v.Reply = filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}
		rep := r.route(context.Background(), "tx1", env, message(), v)
		if rep.Code == 250 {
			t.Errorf("%v with a 250 reply answered %v", a, rep)
		}
	}
	v := verdict(filter.Reject, filter.Data)
	v.Reply = filter.Reply{Code: 554, Enhanced: "5.7.1", Text: "Listed"}
	if rep := r.route(context.Background(), "tx1", env, message(), v); rep != v.Reply {
		t.Errorf("reject kept %v, want its own reply %v", rep, v.Reply)
	}
}

// The body after the header is passed on byte for byte, however long.
func TestBodyUnchanged(t *testing.T) {
	r, q, _, _ := newRouter(t, Config{})
	body := bytes.Repeat([]byte("line of body text\r\n"), 100000)
	msg := append([]byte("Subject: x\r\n\r\n"), body...)
	m := filter.NewMessageBytes(env, msg, filter.Limits{})
	if rep := r.route(context.Background(), "tx1", env, m, verdict(filter.Accept, filter.Data)); rep.Code != 250 {
		t.Fatal(rep)
	}
	if got := q.body(t); got != string(msg) {
		t.Errorf("body changed: %d bytes, want %d", len(got), len(msg))
	}
}
