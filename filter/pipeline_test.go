package filter

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countMetrics counts Add calls by name and first label value.
type countMetrics struct {
	mu sync.Mutex
	n  map[string]float64
}

func (c *countMetrics) Add(name string, d float64, labels ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]float64{}
	}
	key := name
	if len(labels) >= 2 {
		key += "/" + labels[1]
	}
	c.n[key] += d
}
func (c *countMetrics) Set(string, float64, ...string)     {}
func (c *countMetrics) Observe(string, float64, ...string) {}
func (c *countMetrics) get(k string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func sym(name string, score float64) Result {
	return Result{Symbols: []Symbol{{Name: name, Score: score}}}
}

func static(name string, r Result, err error, stages ...Stage) Filter {
	return Func(name, func(context.Context, *Message) (Result, error) { return r, err }, stages...)
}

type notReady struct{ Filter }

func (notReady) Ready() error { return ErrNotReady }

var testMsg = NewMessageBytes(Envelope{MailFrom: "a@example.com"}, []byte("Subject: t\r\n\r\nbody\r\n"), Limits{})

func TestPolicyThresholds(t *testing.T) {
	p := Policy{AddHeaderScore: 5, QuarantineScore: 10, RejectScore: 15}
	tests := []struct {
		score    float64
		demanded Action
		want     Action
	}{
		{0, Accept, Accept},
		{4.99, Accept, Accept},
		{5, Accept, AddHeader},
		{10, Accept, Quarantine},
		{15, Accept, Reject},
		{-3, Accept, Accept},
		{1, Reject, Reject},
		{20, Tempfail, Reject},
		{6, Tempfail, Tempfail},
		{0, Discard, Discard},
	}
	for _, tt := range tests {
		v := p.Decide(Data, []Symbol{{Name: "X", Score: tt.score}}, tt.demanded)
		assert.Equal(t, tt.want, v.Action, "score %v demanded %v", tt.score, tt.demanded)
	}
	// The zero policy is the default one: GTUBE's 1000 points are no pass.
	assert.Equal(t, Reject, Policy{}.Decide(Data, []Symbol{{Name: "X", Score: 1000}}, Accept).Action)
	assert.Equal(t, AddHeader, Policy{OnError: FailOpen}.Decide(Data, []Symbol{{Name: "X", Score: 5}}, Accept).Action,
		"a zero threshold in a partly filled policy is the default too")
	// A negative threshold disables it: only demands count.
	off := Policy{AddHeaderScore: -1, RejectScore: -1}
	assert.Equal(t, Accept, off.Decide(Data, []Symbol{{Name: "X", Score: 1000}}, Accept).Action)
	assert.Equal(t, Quarantine, off.Decide(Data, []Symbol{{Name: "X", Score: 1000}}, Quarantine).Action)
}

func TestReplies(t *testing.T) {
	for _, a := range []Action{Accept, AddHeader, Quarantine, Tempfail, Discard, Reject} {
		for _, s := range Stages() {
			r := ReplyFor(a, s)
			switch a {
			case Tempfail:
				assert.Equal(t, 451, r.Code)
				assert.Equal(t, "4", r.Enhanced[:1], "a temporary problem is never a 5xx")
			case Reject:
				assert.GreaterOrEqual(t, r.Code, 550)
				assert.Equal(t, "5.7.1", r.Enhanced)
			case Quarantine:
				assert.Equal(t, Reply{250, "2.0.0", "Message held for inspection"}, r, "the sender learns the mail was held")
			default:
				assert.Equal(t, Reply{250, "2.0.0", "OK"}, r)
			}
		}
	}
}

func TestActionText(t *testing.T) {
	want := []string{"accept", "add-header", "quarantine", "tempfail", "discard", "reject"}
	for i, w := range want {
		b, err := json.Marshal(Action(i))
		require.NoError(t, err)
		assert.Equal(t, `"`+w+`"`, string(b))
		var a Action
		require.NoError(t, json.Unmarshal(b, &a))
		assert.Equal(t, Action(i), a)
	}
	_, err := ParseAction("bounce")
	assert.Error(t, err)
}

func TestPipelineFailureModes(t *testing.T) {
	boom := errors.New("engine down")
	tests := []struct {
		mode    FailMode
		want    Action
		failSym float64
	}{
		{FailTempfail, Tempfail, 0},
		{FailOpen, Accept, 0},
		{FailOpen, AddHeader, 6},
		{FailQuarantine, Quarantine, 0},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			pol := DefaultPolicy()
			pol.Filters = map[string]FilterPolicy{"av": {OnError: tt.mode, FailScore: tt.failSym}}
			m := &countMetrics{}
			p := NewPipeline(Options{Policy: pol, Metrics: m}, static("av", Result{}, boom), static("ok", sym("OK", 0), nil))
			v := p.Check(context.Background(), Data, testMsg)
			assert.Equal(t, tt.want, v.Action)
			require.True(t, v.Has("AV_FAIL"), "an error is never silent: %v", v.Symbols)
			assert.True(t, v.Has("OK"))
			assert.Equal(t, 1.0, m.get("portcullis_filter_failures_total/av"))
		})
	}
}

func TestPipelineConcurrentWithDeadlines(t *testing.T) {
	slow := func(name string, d time.Duration) Filter {
		return Func(name, func(ctx context.Context, _ *Message) (Result, error) {
			select {
			case <-time.After(d):
				return sym(SymbolName(name), 1), nil
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		})
	}
	// Ignores its context entirely: the deadline must hold anyway.
	stuck := Func("stuck", func(context.Context, *Message) (Result, error) {
		time.Sleep(5 * time.Second)
		return Result{}, nil
	})
	pol := DefaultPolicy()
	pol.Timeout = 2 * time.Second
	pol.Filters = map[string]FilterPolicy{"stuck": {Timeout: 100 * time.Millisecond}}
	filters := []Filter{stuck}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		filters = append(filters, slow(n, 200*time.Millisecond))
	}
	m := &countMetrics{}
	p := NewPipeline(Options{Policy: pol, Metrics: m}, filters...)
	start := time.Now()
	v := p.Check(context.Background(), Data, testMsg)
	took := time.Since(start)
	assert.Less(t, took, 1200*time.Millisecond, "8 × 200 ms filters must run concurrently")
	assert.Equal(t, Tempfail, v.Action)
	require.True(t, v.Has("STUCK_FAIL"))
	for _, s := range v.Symbols {
		if s.Name == "STUCK_FAIL" {
			assert.Equal(t, "timeout after 100ms", s.Detail)
		}
	}
	assert.Equal(t, 8.0, v.Score)
	assert.Equal(t, 1.0, m.get("portcullis_filter_failures_total/stuck"))
	assert.Zero(t, m.get("portcullis_filter_failures_total/a"))
}

// A reject gives up on a filter that ignores its context at once, not at
// its deadline, and the filter given up on is no failure.
func TestPipelineRejectGivesUpOnStuck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := Func("stuck", func(context.Context, *Message) (Result, error) {
		<-release
		return Result{}, nil
	})
	rejecter := static("virus", Result{Symbols: []Symbol{{Name: "AV_INFECTED"}}, Action: Reject}, nil)
	pol := DefaultPolicy()
	pol.Timeout = time.Hour
	m := &countMetrics{}
	p := NewPipeline(Options{Policy: pol, Metrics: m}, stuck, rejecter, static("rules", sym("R", 1), nil))
	v := p.Check(context.Background(), Data, testMsg)
	assert.Equal(t, Reject, v.Action)
	assert.False(t, v.Has("STUCK_FAIL"))
	assert.Zero(t, m.get("portcullis_filter_failures_total/stuck"))
}

func TestPipelineHardRejectCancels(t *testing.T) {
	cancelled := make(chan struct{})
	waiter := Func("waiter", func(ctx context.Context, _ *Message) (Result, error) {
		<-ctx.Done()
		close(cancelled)
		return Result{}, ctx.Err()
	})
	rejecter := static("virus", Result{Symbols: []Symbol{{Name: "AV_INFECTED", Detail: "Eicar"}}, Action: Reject}, nil)
	p := NewPipeline(Options{Policy: DefaultPolicy()}, waiter, rejecter)
	start := time.Now()
	v := p.Check(context.Background(), Data, testMsg)
	assert.Less(t, time.Since(start), 5*time.Second)
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the other filter was not cancelled")
	}
	assert.Equal(t, Reject, v.Action)
	assert.Equal(t, 550, v.Reply.Code)
	assert.False(t, v.Has("WAITER_FAIL"), "a filter cancelled by a hard reject did not fail")
}

func TestPipelinePanic(t *testing.T) {
	m := &countMetrics{}
	p := NewPipeline(Options{Policy: DefaultPolicy(), Metrics: m},
		Func("buggy", func(context.Context, *Message) (Result, error) { panic("nil map") }),
		static("ok", sym("CLEAN", -1), nil))
	v := p.Check(context.Background(), Data, testMsg)
	assert.Equal(t, Tempfail, v.Action, "a panic is never a pass")
	assert.True(t, v.Has("BUGGY_PANIC"))
	assert.EqualValues(t, 1, p.Panics())
	assert.Equal(t, 1.0, m.get("portcullis_filter_panics_total/buggy"))
}

func TestPipelineReadiness(t *testing.T) {
	ran := false
	f := Func("rules", func(context.Context, *Message) (Result, error) { ran = true; return Result{}, nil })
	p := NewPipeline(Options{Policy: DefaultPolicy()}, notReady{f}, static("other", Result{}, nil))
	require.ErrorIs(t, p.Ready(), ErrNotReady)
	v := p.Check(context.Background(), Data, testMsg)
	assert.Equal(t, Tempfail, v.Action, "not ready means tempfail, never accept")
	assert.True(t, v.Has("RULES_NOT_READY"))
	assert.False(t, ran)
	assert.Equal(t, 451, v.Reply.Code)
}

func TestPipelineStages(t *testing.T) {
	var seen sync.Map
	mk := func(name string, stages ...Stage) Filter {
		return Func(name, func(ctx context.Context, m *Message) (Result, error) {
			seen.Store(name, true)
			return sym(SymbolName(name), 1), nil
		}, stages...)
	}
	p := NewPipeline(Options{Policy: DefaultPolicy()}, mk("ip", Connect), mk("from", MailFrom, Rcpt), mk("body"))
	v := p.Check(context.Background(), Connect, NewMessage(Envelope{}, nil, 0, Limits{}))
	assert.Equal(t, []Symbol{{Name: "IP", Score: 1}}, v.Symbols)
	v = p.CheckAll(context.Background(), testMsg)
	assert.Equal(t, 4.0, v.Score, "from runs at two stages")
	assert.Equal(t, Data, v.Stage)

	// A reject at connect stops the transaction there.
	seen = sync.Map{}
	p = NewPipeline(Options{Policy: DefaultPolicy()},
		static("dnsbl", Result{Action: Reject, Symbols: []Symbol{{Name: "RBL_LISTED", Score: 10}}}, nil, Connect), mk("body"))
	v = p.CheckAll(context.Background(), testMsg)
	assert.Equal(t, Reject, v.Action)
	assert.Equal(t, Connect, v.Stage)
	assert.Equal(t, 554, v.Reply.Code)
	_, ran := seen.Load("body")
	assert.False(t, ran)
}

func TestPipelineDeterministic(t *testing.T) {
	jitter := func(name string, r Result, err error) Filter {
		return Func(name, func(context.Context, *Message) (Result, error) {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return r, err
		})
	}
	pol := DefaultPolicy()
	pol.Filters = map[string]FilterPolicy{"dns": {OnError: FailOpen, FailScore: 0.5}}
	p := NewPipeline(Options{Policy: pol},
		jitter("rules", Result{Symbols: []Symbol{{Name: "B", Score: 2}, {Name: "A", Score: 1.5, Detail: "x"}}}, nil),
		jitter("archive", Result{Symbols: []Symbol{{Name: "A", Score: 1.5, Detail: "w"}}, Action: Quarantine}, nil),
		jitter("dns", Result{}, errors.New("timeout")),
		jitter("c", sym("C", 0.1), nil),
	)
	first := p.Check(context.Background(), Data, testMsg)
	assert.Equal(t, Quarantine, first.Action)
	assert.Equal(t, 5.6, first.Score)
	for range 100 {
		require.Equal(t, first, p.Check(context.Background(), Data, testMsg))
	}
	b, err := json.Marshal(first)
	require.NoError(t, err)
	assert.JSONEq(t, `{"action":"quarantine","score":5.6,
		"symbols":[{"name":"A","score":1.5,"detail":"w"},{"name":"A","score":1.5,"detail":"x"},{"name":"B","score":2,"detail":""},{"name":"C","score":0.1,"detail":""},{"name":"DNS_FAIL","score":0.5,"detail":"timeout"}],
		"reply":{"code":250,"enhanced":"2.0.0","text":"Message held for inspection"},
		"headers":[{"name":"X-Spam-Status","value":"Yes, score=5.60 required=5.00 reject=15.00 tests=A,B,C,DNS_FAIL"},{"name":"X-Portcullis-Verdict","value":"quarantine; score=5.60"}]}`, string(b))
}

func TestParentContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := NewPipeline(Options{Policy: DefaultPolicy()}, Func("f", func(ctx context.Context, _ *Message) (Result, error) {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}))
	v := p.Check(ctx, Data, testMsg)
	assert.Equal(t, Tempfail, v.Action, "a gateway that gave up never gets a pass")
}
