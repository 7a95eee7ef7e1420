package drills

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 2: recipients' blocklists refused relayed mail (550 5.7.1,
// 521, 571). The primary route answers each of those replies; the
// fallback route delivers; where the fallback refuses too, the sender
// gets a DSN quoting the remote reply.
func TestIncident02(t *testing.T) {
	testsvc.Integration(t)
	refusals := map[string]*smtp.SMTPError{
		"dnsbl.example":   {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Access denied by DNSBL"},
		"att.example":     {Code: 521, EnhancedCode: smtp.NoEnhancedCode, Message: "DNSRBL: Blocked for abuse"},
		"verizon.example": {Code: 571, EnhancedCode: smtp.NoEnhancedCode, Message: "Email from 192.0.2.1 is currently blocked by Verizon Online's anti-spam system"},
		"strict.example":  {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Access denied by DNSBL"},
	}
	domainOf := func(to string) string { _, d, _ := strings.Cut(to, "@"); return d }
	primary := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(to string) error {
		if e := refusals[domainOf(to)]; e != nil {
			return e
		}
		return nil
	}})
	fallback := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(to string) error {
		if domainOf(to) == "strict.example" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Fallback relay 198.51.100.7 listed at bl.strict.example"}
		}
		return nil
	}})
	senders := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})

	cfg := baseConfig(t)
	cfg.Relay.Routes = map[string]config.Route{"example.org": {Hosts: []string{senders.Addr}}}
	for d := range refusals {
		cfg.Relay.Routes[d] = config.Route{Hosts: []string{primary.Addr}, Fallback: []string{fallback.Addr}}
	}
	g := start(t, cfg)

	const perDomain = 10
	var msgs []mail
	var names []string
	strict := map[string]bool{}
	for _, d := range []string{"dnsbl.example", "att.example", "verizon.example", "strict.example"} {
		for i := range perDomain {
			id := fmt.Sprintf("drill-02-%s-%d", strings.TrimSuffix(d, ".example"), i)
			names = append(names, id)
			if d == "strict.example" {
				strict[id] = true
			}
			msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@" + d}, data: text(id, "quarterly figures attached")})
		}
	}
	l := newLedger()
	for i, r := range sendAll(g.smtp, msgs, 8) {
		l.note(names[i], r)
		if r.code != 250 {
			t.Errorf("%s: %v, want 250", names[i], r)
		}
	}
	want := len(msgs) - len(strict)
	fallback.Wait(want, 30*time.Second)
	poll(t, 30*time.Second, "a DSN for each message the fallback refused too", func() (bool, string) {
		got, _ := dsnIDs(senders)
		return len(got) >= len(strict), fmt.Sprintf("%d DSNs", len(got))
	})

	delivered := tally(fallback)
	if n := len(tally(primary)); n != 0 {
		t.Errorf("the refusing primary got %d messages", n)
	}
	bounced, dsns := dsnIDs(senders)
	for id := range strict {
		if delivered[id] > 0 {
			t.Errorf("%s delivered though both routes refuse", id)
		}
		if bounced[id] != 1 {
			t.Errorf("%s: %d DSNs, want 1", id, bounced[id])
		}
	}
	for id, n := range bounced {
		if !strict[id] {
			t.Errorf("%s bounced (%d) though the fallback accepts it", id, n)
		}
	}
	for _, d := range dsns {
		if !strings.Contains(d, "Fallback relay 198.51.100.7 listed at bl.strict.example") || !strings.Contains(d, "550") {
			t.Errorf("DSN does not quote the remote reply:\n%.3000s", d)
			break
		}
	}
	m := g.metrics()
	if v := metric(m, "portcullis_queue_fallback_total"); v < float64(len(msgs)) {
		t.Errorf("portcullis_queue_fallback_total = %v, want >= %d", v, len(msgs))
	}
	if v := metric(m, "portcullis_queue_bounces_total"); v != float64(len(strict)) {
		t.Errorf("portcullis_queue_bounces_total = %v, want %d", v, len(strict))
	}
	if n := g.countLines("using fallback"); n == 0 {
		t.Errorf("no log line says the fallback was used:\n%s", g.output())
	}
	r := account(l, delivered, nil, bounced)
	r.Incident, r.Fault = 2, "primary route refuses 550 5.7.1 / 521 / 571; fallback refuses one domain too"
	if r.Delivered != want || r.Bounced != len(strict) {
		t.Errorf("delivered %d (want %d), bounced %d (want %d)", r.Delivered, want, r.Bounced, len(strict))
	}
	report(t, r)
}
