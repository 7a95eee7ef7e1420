package drills

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// arrivals records when a sink accepted each message.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivals) hook(testsvc.SMTPMessage) error {
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
	return nil
}

// maxInWindow is the most arrivals within any window of length w.
func (a *arrivals) maxInWindow(w time.Duration) int {
	a.mu.Lock()
	at := append([]time.Time(nil), a.at...)
	a.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	best, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// Incident 1: an outbound load balancer failed, throttling backed the
// queues up. Half the next hops die under a burst: the queue absorbs it
// (451 4.3.2 when its configured depth is reached, and the senders retry),
// delivery spreads over the live hops, the per-host throttle and
// connection bound hold, everything drains after, nothing is lost.
func TestIncident01(t *testing.T) {
	testsvc.Integration(t)
	// The throttle is set well below what even a loaded machine's senders
	// offer (16 of them), so the queue reaches max_depth and backpressure
	// is certain, not a race between senders and the two live hops.
	const (
		perHost  = 20.0 // transactions per second to one next hop
		conns    = 2
		maxDepth = 30
	)
	var arr [4]*arrivals
	var relays [4]*testsvc.SMTPSink
	var hosts []string
	for i := range relays {
		arr[i] = &arrivals{}
		relays[i] = testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnData: arr[i].hook})
		hosts = append(hosts, relays[i].Addr)
	}
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = config.Route{Hosts: hosts}
	cfg.Relay.RatePerHost = perHost
	cfg.Relay.MaxConnsPerHost = conns
	cfg.Queue.MaxDepth = maxDepth
	cfg.Queue.Workers = 16
	g := start(t, cfg)

	// The load balancer fails: half the next hops are gone.
	relays[2].Stop()
	relays[3].Stop()

	n := *burst
	names := ids(1, n)
	l := newLedger()
	var busy, other int
	var mu sync.Mutex
	begin := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := mail{from: "sender@example.org", to: []string{"user@example.net"}, data: text(names[i], "statement")}
				// A sending MTA: retries a 4xx with backoff, up to a deadline.
				wait, deadline := 10*time.Millisecond, time.Now().Add(90*time.Second)
				for {
					r := send(g.smtp, m)
					if r.code == 250 || time.Now().After(deadline) || (r.code >= 500 && r.code < 600) {
						l.note(names[i], r)
						break
					}
					mu.Lock()
					if r.code == 451 && r.enh == [3]int{4, 3, 2} {
						busy++
					} else {
						other++
						t.Logf("%s: %v", names[i], r)
					}
					mu.Unlock()
					time.Sleep(wait) // the sender's retry interval, not a synchronisation
					wait = min(2*wait, 250*time.Millisecond)
				}
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	acked := len(l.ackedIDs())
	if acked != n {
		t.Errorf("%d of %d acknowledged in the end", acked, n)
	}
	poll(t, 90*time.Second, "the queue drained", func() (bool, string) {
		got := len(tally(relays[0], relays[1]))
		return got >= acked, fmt.Sprintf("%d of %d delivered", got, acked)
	})
	took := time.Since(begin)
	t.Logf("%d messages, %d answered 451 4.3.2 on the way, drained in %v", n, busy, took.Round(time.Millisecond))

	m := g.metrics()
	if busy == 0 || metric(m, "portcullis_queue_busy_total", "reason=depth") < float64(busy) {
		t.Errorf("backpressure: %d 451 4.3.2 replies, busy_total{depth} %v", busy, metric(m, "portcullis_queue_busy_total", "reason=depth"))
	}
	if other != 0 {
		t.Errorf("%d other temporary replies", other)
	}
	d0, d1 := len(relays[0].Messages()), len(relays[1].Messages())
	if d0 < acked/4 || d1 < acked/4 {
		t.Errorf("delivery not spread over the live next hops: %d and %d", d0, d1)
	}
	for i := range 2 {
		if s := relays[i].MaxSessions(); s > conns {
			t.Errorf("next hop %d saw %d sessions at once, bound %d", i, s, conns)
		}
		if w := arr[i].maxInWindow(time.Second); float64(w) > perHost+2 {
			t.Errorf("next hop %d got %d messages within one second, throttle %v/s", i, w, perHost)
		}
	}
	// The throttle is what bounded the drain: two live hops at perHost each.
	if min := time.Duration(float64(acked)/(2*perHost)*0.8) * time.Second; took < min {
		t.Errorf("drained in %v, faster than two throttled hops allow (%v)", took, min)
	}
	if d := metric(m, "portcullis_queue_depth"); d != 0 {
		t.Errorf("queue depth %v after the drain", d)
	}
	r := account(l, tally(relays[0], relays[1]), nil, nil)
	r.Incident, r.Fault = 1, fmt.Sprintf("2 of 4 next hops die under a burst of %d; throttle %v/s/host; max_depth %d", n, perHost, maxDepth)
	report(t, r)
}

// Incident 1 on a fleet: the other server. Two gateways share one
// JetStream queue; half the next hops die and then gateway B dies
// (SIGKILL) in the middle of the burst. The senders fail over to A (as to
// a second MX); A delivers everything B had acknowledged, its claims
// taken over after queue.ack_wait: at least once, duplicates counted,
// none lost.
func TestIncident01Fleet(t *testing.T) {
	testsvc.Integration(t)
	const perHost = 40.0
	nats := natstest.Start(t)
	var arr [4]*arrivals
	var relays [4]*testsvc.SMTPSink
	var hosts []string
	for i := range relays {
		arr[i] = &arrivals{}
		relays[i] = testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnData: arr[i].hook})
		hosts = append(hosts, relays[i].Addr)
	}
	node := func() *gateway {
		cfg := baseConfig(t)
		cfg.Queue.Backend, cfg.Queue.URL = "jetstream", nats.URL
		cfg.Queue.AckWait = config.Duration(time.Second)
		cfg.Relay.Routes["*"] = config.Route{Hosts: hosts}
		cfg.Relay.RatePerHost = perHost
		cfg.Relay.MaxConnsPerHost = 2
		return start(t, cfg)
	}
	a, b := node(), node()
	relays[2].Stop()
	relays[3].Stop()

	n := *burst
	names := ids(1, n)
	for i := range names {
		names[i] = strings.Replace(names[i], "drill-01-", "drill-01-fleet-", 1)
	}
	l := newLedger()
	var viaB atomic.Int64
	var killOnce sync.Once
	var wg sync.WaitGroup
	next := make(chan int)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := mail{from: "sender@example.org", to: []string{"user@example.net"}, data: text(names[i], "statement")}
				mx := []*gateway{a, b}[i%2:] // half the senders prefer B, all fall back to A
				if i%2 == 1 {
					mx = append(mx, a)
				}
				var r reply
				for _, g := range mx {
					if r = send(g.smtp, m); r.code == 250 {
						if g == b && viaB.Add(1) == int64(n/6) {
							killOnce.Do(func() { go b.kill() })
						}
						break
					}
				}
				l.note(names[i], r)
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	killOnce.Do(b.kill)
	acked := len(l.ackedIDs())
	if acked != n {
		t.Errorf("%d of %d acknowledged by the fleet", acked, n)
	}
	poll(t, 120*time.Second, "A delivered everything the fleet acknowledged", func() (bool, string) {
		got := len(tally(relays[0], relays[1]))
		return got >= acked, fmt.Sprintf("%d of %d", got, acked)
	})
	t.Logf("B acknowledged %d before it was killed", viaB.Load())
	if viaB.Load() < int64(n/6) {
		t.Errorf("B acknowledged only %d", viaB.Load())
	}
	for i := range 2 {
		// Each gateway throttles on its own: two nodes, twice the rate.
		if w := arr[i].maxInWindow(time.Second); float64(w) > 2*perHost+2 {
			t.Errorf("next hop %d got %d messages within one second, throttle %v/s per gateway", i, w, perHost)
		}
		if s := relays[i].MaxSessions(); s > 4 {
			t.Errorf("next hop %d saw %d sessions at once, bound 2 per gateway", i, s)
		}
	}
	r := account(l, tally(relays[0], relays[1]), nil, nil)
	r.Incident, r.Variant = 1, "fleet"
	r.Fault = fmt.Sprintf("JetStream fleet of 2: 2 of 4 next hops die, then gateway B is killed mid-burst of %d", n)
	report(t, r)
}
