package drills

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 7: a remote configuration error, "554 Relay access denied".
// A permanent failure: one attempt per message, a DSN to the sender with
// the remote reason, no retry storm.
func TestIncident07(t *testing.T) {
	testsvc.Integration(t)
	var rcpts atomic.Int64
	bt := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(string) error {
		rcpts.Add(1)
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "<>: Relay access denied"}
	}})
	senders := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	cfg := baseConfig(t)
	cfg.Relay.Routes = map[string]config.Route{"example.org": routeTo(senders.Addr), "bt.example": routeTo(bt.Addr)}
	g := start(t, cfg)

	n := 30
	names := ids(7, n)
	var msgs []mail
	for _, id := range names {
		msgs = append(msgs, mail{from: "sender@example.org", to: []string{"customer@bt.example"}, data: text(id, "your order has shipped")})
	}
	l := newLedger()
	for i, r := range sendAll(g.smtp, msgs, 6) {
		l.note(names[i], r)
		if r.code != 250 {
			t.Errorf("%s: %v, want 250", names[i], r)
		}
	}
	poll(t, 30*time.Second, "a DSN per message", func() (bool, string) {
		got, _ := dsnIDs(senders)
		return len(got) >= n, fmt.Sprintf("%d DSNs", len(got))
	})
	poll(t, 10*time.Second, "the queue empty", func() (bool, string) {
		d := metric(g.metrics(), "portcullis_queue_depth")
		return d == 0, fmt.Sprintf("depth %v", d)
	})
	bounced, dsns := dsnIDs(senders)
	for _, d := range dsns {
		if !strings.Contains(d, "554") || !strings.Contains(d, "Relay access denied") {
			t.Errorf("DSN does not quote the remote reply:\n%.3000s", d)
			break
		}
	}
	m := g.metrics()
	if v := metric(m, "portcullis_queue_retries_total"); v != 0 {
		t.Errorf("%v retries of a permanent failure", v)
	}
	if v := metric(m, "portcullis_queue_bounces_total"); v != float64(n) {
		t.Errorf("portcullis_queue_bounces_total = %v, want %d", v, n)
	}
	if v := rcpts.Load(); v != int64(n) {
		t.Errorf("the remote was asked %d times for %d messages: a retry storm", v, n)
	}
	if c := g.countLines("delivery attempt", "Relay access denied"); c != n {
		t.Errorf("%d attempt lines quote the remote reply, want %d", c, n)
	}
	r := account(l, tally(bt), nil, bounced)
	r.Incident, r.Fault = 7, "next hop answers 554 5.0.0 Relay access denied"
	if r.Bounced != n {
		t.Errorf("bounced %d of %d", r.Bounced, n)
	}
	report(t, r)
}
