package jetstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
	"github.com/portcullis-mail/portcullis/queue/queuetest"
	"github.com/portcullis-mail/portcullis/relay"
)

var bg = context.Background()

func testEnv(rcpts ...string) filter.Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"rcpt@example.net"}
	}
	return filter.Envelope{MailFrom: "sender@example.org", RcptTo: rcpts, Helo: "client.example.org"}
}

func testMsg(subject string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: " + subject + "\r\n\r\nHello " + subject + ".\r\n"
}

func openStore(t *testing.T, url, name string) *jetstream.Store {
	t.Helper()
	s, err := jetstream.Open(bg, url, jetstream.Config{Name: name})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func startQueue(t *testing.T, s *jetstream.Store, cfg jetstream.QueueConfig) *jetstream.Queue {
	t.Helper()
	q, err := jetstream.NewQueue(bg, s, cfg)
	if err != nil {
		t.Fatalf("new queue: %v", err)
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

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliveries records who delivered what.
type deliveries struct {
	mu  sync.Mutex
	by  map[queue.ID][]int
	all int
}

func (d *deliveries) deliverer(gw int, fail func(m *queue.Outgoing) error) queue.Deliverer {
	return queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		if _, err := io.ReadAll(m.Body()); err != nil {
			return []error{err}
		}
		if fail != nil {
			if err := fail(m); err != nil {
				out := make([]error, len(m.To))
				for i := range out {
					out[i] = err
				}
				return out
			}
		}
		d.mu.Lock()
		if d.by == nil {
			d.by = map[queue.ID][]int{}
		}
		d.by[m.ID] = append(d.by[m.ID], gw)
		d.all++
		d.mu.Unlock()
		return make([]error, len(m.To))
	})
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.by)
}

// TestSharedQueueDeliversOnce runs three gateways on one queue: every
// message enqueued by any of them is delivered exactly once (nothing
// failed, so nothing is redelivered), and the work is spread.
func TestSharedQueueDeliversOnce(t *testing.T) {
	srv := natstest.Start(t)
	name := freshName()
	var d deliveries
	var qs []*jetstream.Queue
	var stores []*jetstream.Store
	m := queuetest.NewMetrics()
	for gw := range 3 {
		s := openStore(t, srv.URL, name)
		stores = append(stores, s)
		qs = append(qs, startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d.deliverer(gw, nil), Workers: 4, Metrics: m}}))
	}
	const n = 120
	start := time.Now()
	ids := map[queue.ID]bool{}
	for i := range n {
		id, err := qs[i%3].Enqueue(bg, testEnv(), strings.NewReader(testMsg(fmt.Sprint("m", i))))
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		ids[id] = true
	}
	t.Logf("enqueued %d in %v", n, time.Since(start))
	eventually(t, "every message delivered", func() bool { return d.count() == n })
	t.Logf("delivered in %v", time.Since(start))
	eventually(t, "the store emptied", func() bool {
		es, err := stores[0].Entries(bg)
		return err == nil && len(es) == 0
	})
	if got := m.Get("portcullis_queue_delivered_total"); got != n {
		t.Errorf("delivered metric %v, want %d", got, n)
	}
	if got := m.Get("portcullis_queue_enqueued_total"); got != n {
		t.Errorf("enqueued metric %v, want %d", got, n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	gws := map[int]int{}
	for id, by := range d.by {
		if !ids[id] {
			t.Errorf("delivered unknown id %s", id)
		}
		if len(by) != 1 {
			t.Errorf("%s delivered %d times by %v", id, len(by), by)
		}
		gws[by[0]]++
	}
	if d.all != n {
		t.Errorf("%d deliveries for %d messages", d.all, n)
	}
	t.Logf("deliveries per gateway: %v", gws)
}

// TestSharedQueueRetryAndBounce: a temporary failure is retried with
// backoff through JetStream, and a permanent one bounces to the sender
// through the shared queue.
func TestSharedQueueRetryAndBounce(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t, srv.URL, freshName())
	var d deliveries
	var mu sync.Mutex
	tries := map[string]int{}
	fail := func(m *queue.Outgoing) error {
		mu.Lock()
		defer mu.Unlock()
		tries[m.To[0]]++
		switch {
		case m.To[0] == "later@example.net" && tries[m.To[0]] < 3:
			return &relay.ReplyError{Host: "mx.test:25", Command: "RCPT", Reply: filter.Reply{Code: 451, Text: "try later"}}
		case m.To[0] == "gone@example.net":
			return &relay.ReplyError{Host: "mx.test:25", Command: "RCPT", Reply: filter.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}}
		}
		return nil
	}
	q := startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{
		Deliverer: d.deliverer(0, fail), RetryBase: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond, Hostname: "gw.test",
	}})
	later, err := q.Enqueue(bg, testEnv("later@example.net"), strings.NewReader(testMsg("later")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(bg, testEnv("gone@example.net"), strings.NewReader(testMsg("gone"))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retried message and bounce delivered", func() bool { return d.count() == 2 })
	d.mu.Lock()
	_, ok := d.by[later]
	d.mu.Unlock()
	if !ok {
		t.Fatal("the retried message was not delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	if tries["later@example.net"] != 3 || tries["sender@example.org"] != 1 {
		t.Errorf("tries %v: want 3 for the retried message and one bounce to the sender", tries)
	}
}

const helperEnv = "PORTCULLIS_JS_HELPER"

// TestHelperGateway is the child of TestKilledGatewayRedelivers: a gateway
// that enqueues one message, claims it and hangs in delivery until killed.
func TestHelperGateway(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		// Not a missing component: this test only runs as the child that
		// TestKilledGatewayRedelivers re-executes; under CI it is that child or a no-op.
		t.Skip("helper process for TestKilledGatewayRedelivers")
	}
	// Exit when the parent is gone (its end of our stdin closes), even if
	// it died without killing us: an orphan would run forever.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(4)
	}()
	url, name, _ := strings.Cut(arg, " ")
	s, err := jetstream.Open(bg, url, jetstream.Config{Name: name})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	hang := queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		fmt.Printf("CLAIMED %s\n", m.ID)
		select {} // killed here, mid-delivery
	})
	q, err := jetstream.NewQueue(bg, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: hang}, AckWait: 2 * time.Second})
	if err != nil {
		fmt.Println("queue:", err)
		os.Exit(3)
	}
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("claimed"))); err != nil {
		fmt.Println("enqueue:", err)
		os.Exit(3)
	}
	select {}
}

// TestKilledGatewayRedelivers kills a gateway process with SIGKILL while it
// delivers a message; another gateway delivers it after AckWait.
func TestKilledGatewayRedelivers(t *testing.T) {
	srv := natstest.Start(t)
	name := freshName()
	// The child's own timeout bounds it should it outlive us after all.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperGateway$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), helperEnv+"="+srv.URL+" "+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Open until the test ends or this process dies: the child watches it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	claimed := make(chan queue.ID, 1)
	scanned := make(chan struct{})
	// Wait (which closes out once the child is dead) ends the scan: no
	// t.Logf after the test.
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait(); <-scanned })
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "CLAIMED "); ok {
				claimed <- queue.ID(id)
				return
			}
			t.Logf("helper: %s", sc.Text())
		}
	}()
	var id queue.ID
	select {
	case id = <-claimed:
	case <-time.After(30 * time.Second):
		t.Fatal("the helper gateway never claimed its message")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s := openStore(t, srv.URL, name)
	var d deliveries
	startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d.deliverer(1, nil)}, AckWait: 2 * time.Second})
	eventually(t, "the killed gateway's message delivered by another", func() bool { return d.count() == 1 })
	d.mu.Lock()
	got := d.by[id]
	d.mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("message %s delivered %d times by the survivor, want 1 (deliveries %v)", id, len(got), d.by)
	}
	eventually(t, "the store emptied", func() bool {
		es, err := s.Entries(bg)
		return err == nil && len(es) == 0
	})
}

func TestSharedQueueErrors(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t, srv.URL, freshName())
	// A producer only (no Deliverer): it enqueues, never delivers.
	m := queuetest.NewMetrics()
	q := startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true, MaxMessageBytes: 100, Metrics: m}})
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the one message waiting in the lag", func() bool {
		l, err := q.Lag(bg)
		return err == nil && l.Waiting == 1 && l.InDelivery == 0
	})
	eventually(t, "the lag gauge", func() bool { return m.Get("portcullis_jetstream_consumer_lag") == 1 })
	if _, err := q.Enqueue(bg, filter.Envelope{MailFrom: "a@example.org"}, strings.NewReader("x")); !errors.Is(err, queue.ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
	var le *filter.LimitError
	if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(strings.Repeat("x", 101))); !errors.As(err, &le) {
		t.Errorf("101 bytes over a limit of 100: %v, want *filter.LimitError", err)
	}
	// A delivering gateway joins and takes the waiting message.
	var d deliveries
	startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{Deliverer: d.deliverer(1, nil)}})
	eventually(t, "the producer's message delivered by another", func() bool { return d.count() == 1 })
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.by[id]) != 1 {
		t.Errorf("deliveries %v", d.by)
	}
}

// TestSharedQueueMaxDeliver: a message that keeps failing temporarily is
// held when JetStream has handed it out MaxDeliver times — kept, never
// dropped — and Release puts it back.
func TestSharedQueueMaxDeliver(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t, srv.URL, freshName())
	var tries atomic.Int64
	var fail atomic.Bool
	fail.Store(true)
	var d deliveries
	q := startQueue(t, s, jetstream.QueueConfig{MaxDeliver: 3, Delivery: queue.Config{
		RetryBase: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		Deliverer: d.deliverer(0, func(*queue.Outgoing) error {
			tries.Add(1)
			if fail.Load() {
				return &relay.ReplyError{Host: "mx.test:25", Command: "RCPT", Reply: filter.Reply{Code: 451, Text: "later"}}
			}
			return nil
		}),
	}})
	id, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("stubborn")))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the message held at MaxDeliver", func() bool {
		es, err := s.Entries(bg)
		return err == nil && len(es) == 1 && es[0].State == queue.Held
	})
	if n := tries.Load(); n != 3 {
		t.Errorf("%d attempts, want MaxDeliver = 3", n)
	}
	fail.Store(false)
	if err := q.Release(bg, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the released message delivered", func() bool { return d.count() == 1 })
}

// TestSharedQueueBusy: Enqueue refuses with a *queue.BusyError once
// MaxDepth messages wait.
func TestSharedQueueBusy(t *testing.T) {
	srv := natstest.Start(t)
	s := openStore(t, srv.URL, freshName())
	q := startQueue(t, s, jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true, MaxDepth: 2}}) // a producer only
	for i := range 2 {
		if _, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg(fmt.Sprint(i)))); err != nil {
			t.Fatalf("enqueue %d under the limit: %v", i, err)
		}
	}
	eventually(t, "backpressure at MaxDepth", func() bool {
		_, err := q.Enqueue(bg, testEnv(), strings.NewReader(testMsg("over")))
		var be *queue.BusyError
		if errors.As(err, &be) {
			if filter.ErrorReply(err).Code != 451 {
				t.Errorf("busy reply %v, want 451", filter.ErrorReply(err))
			}
			return true
		}
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		return false
	})
}
