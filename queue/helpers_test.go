package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// recMetrics records metrics for assertions.
type recMetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func newRecMetrics() *recMetrics { return &recMetrics{m: map[string]float64{}} }

func (r *recMetrics) key(name string, labels []string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}
func (r *recMetrics) Add(name string, d float64, labels ...string) {
	r.mu.Lock()
	r.m[r.key(name, labels)] += d
	r.mu.Unlock()
}
func (r *recMetrics) Set(name string, v float64, labels ...string) {
	r.mu.Lock()
	r.m[r.key(name, labels)] = v
	r.mu.Unlock()
}
func (r *recMetrics) Observe(name string, v float64, labels ...string) {
	r.mu.Lock()
	r.m[r.key(name+"_count", labels)]++
	r.m[r.key(name+"_sum", labels)] += v
	r.mu.Unlock()
}

// get sums a metric over all its label sets.
func (r *recMetrics) get(name string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum float64
	for k, v := range r.m {
		if strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}

var bg = context.Background()

func testEnv(rcpts ...string) filter.Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"rcpt@example.net"}
	}
	return filter.Envelope{MailFrom: "sender@example.org", RcptTo: rcpts, Helo: "client.example.org"}
}

func testMsg(subject string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\nHello " + subject + ".\r\n"
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shutdown closes a queue at the end of a test.
func shutdown(t *testing.T, q *Queue) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if err := q.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// fastCfg retries quickly.
func fastCfg(d Deliverer, m filter.Metrics) Config {
	return Config{Deliverer: d, StoreOnly: d == nil, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Metrics: m, MinFreeBytes: 1, Hostname: "gw.test"}
}

// one returns one metric with exact labels.
func (r *recMetrics) one(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[key]
}

func (r *recMetrics) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.m)
}

// openTest opens a queue over a fresh spool, shut down when the test ends.
func openTest(t *testing.T, cfg Config) *Queue {
	t.Helper()
	q, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, q)
	return q
}

// remoteErr is a next hop's reply, as relay.ReplyError carries one.
type remoteErr struct {
	host  string
	reply filter.Reply
}

func remote(host string, code int, enhanced, text string) error {
	return &remoteErr{host, filter.Reply{Code: code, Enhanced: enhanced, Text: text}}
}

func (e *remoteErr) Error() string             { return e.host + ": " + diagnostic(e.reply) }
func (e *remoteErr) RemoteHost() string        { return e.host }
func (e *remoteErr) RemoteReply() filter.Reply { return e.reply }
