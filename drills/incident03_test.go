package drills

import (
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 3: a mailbox store was cycled in maintenance; mail waited.
// The next hop is down for a while (compressed time): the queue retries
// with backoff, bounces nothing before the queue lifetime, and delivers
// everything once the next hop is back.
func TestIncident03(t *testing.T) {
	testsvc.Integration(t)
	store := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	store.Stop() // in maintenance
	senders := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})

	cfg := baseConfig(t)
	cfg.Relay.Routes = map[string]config.Route{"example.org": {Hosts: []string{senders.Addr}}, "*": {Hosts: []string{store.Addr}}}
	cfg.Queue.MaxLifetime = config.Duration(time.Hour)
	g := start(t, cfg)

	n := 50
	names := ids(3, n)
	var msgs []mail
	for _, id := range names {
		msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: text(id, "minutes of the meeting")})
	}
	l := newLedger()
	for i, r := range sendAll(g.smtp, msgs, 8) {
		l.note(names[i], r)
		if r.code != 250 {
			t.Errorf("%s: %v, want 250 while the store is down", names[i], r)
		}
	}
	// The operator's view while the store is down: the queue holds the
	// mail, retries climb, nothing bounces.
	poll(t, 30*time.Second, "every message retried at least twice", func() (bool, string) {
		m := g.metrics()
		r := metric(m, "portcullis_queue_retries_total")
		return r >= float64(2*n), fmt.Sprintf("retries %v, depth %v", r, metric(m, "portcullis_queue_depth"))
	})
	m := g.metrics()
	if d := metric(m, "portcullis_queue_depth"); d != float64(n) {
		t.Errorf("queue depth %v while the store is down, want %d", d, n)
	}
	if b := metric(m, "portcullis_queue_bounces_total"); b != 0 {
		t.Errorf("%v bounces before the queue lifetime", b)
	}
	if g.countLines("delivery attempt") < 2*n {
		t.Errorf("fewer than %d delivery attempt lines", 2*n)
	}

	store.Start() // maintenance over
	store.Wait(n, 60*time.Second)
	poll(t, 30*time.Second, "the queue drained", func() (bool, string) {
		m := g.metrics()
		d := metric(m, "portcullis_queue_depth")
		return d == 0, fmt.Sprintf("depth %v", d)
	})
	if b := metric(g.metrics(), "portcullis_queue_bounces_total"); b != 0 {
		t.Errorf("%v bounces", b)
	}
	bounced, _ := dsnIDs(senders)
	if len(bounced) != 0 {
		t.Errorf("%d DSNs sent for mail that only waited", len(bounced))
	}
	r := account(l, tally(store), nil, bounced)
	r.Incident, r.Fault = 3, "next hop down, then back (retries with backoff)"
	if r.Delivered != n || r.Duplicates != 0 {
		t.Errorf("delivered %d of %d, %d duplicates", r.Delivered, n, r.Duplicates)
	}
	report(t, r)
}
