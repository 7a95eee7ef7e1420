package drills

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 6: the DNS resolvers went flaky and spam passed the lighter
// path unnoticed. The first resolver goes silent, then returns garbage,
// then the second one goes silent too: lookups fail over, a listed client
// is still refused while one resolver answers, unknown results are
// visible as a symbol in the delivered mail's headers and as a metric,
// and resolver latency and health are exported.
func TestIncident06(t *testing.T) {
	testsvc.Integration(t)
	bl := testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.drill.test", Type: "ip4set",
		Data: ":127.0.0.2:listed for abuse\n127.0.0.2\n127.0.1.0/24\n"})
	r1 := startFaultDNS(t, bl.Addr, dnsForward)
	r2 := startFaultDNS(t, bl.Addr, dnsForward)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	cfg.DNS.Resolvers = []string{r1.Addr, r2.Addr}
	cfg.DNS.DNSBL = []string{"bl.drill.test=20"}
	cfg.DNS.LookupNonPublic = []string{"127.0.0.0/8"}
	cfg.DNS.QueryTimeout = config.Duration(500 * time.Millisecond) // shorter flakes on a loaded 2-core CI machine
	cfg.DNS.HealthInterval = config.Duration(200 * time.Millisecond)
	g := start(t, cfg)
	waitReady(t, g)

	l := newLedger()
	host := 0 // every attempt from a new address: answers are cached
	attempt := func(phase string, listed bool, want ...int) reply {
		t.Helper()
		host++
		ip, kind := fmt.Sprintf("127.0.2.%d", host), "clean"
		if listed {
			ip, kind = fmt.Sprintf("127.0.1.%d", host), "listed"
		}
		id := fmt.Sprintf("drill-06-%s-%s-%d", phase, kind, host)
		r := send(g.smtp, mail{local: &net.TCPAddr{IP: net.ParseIP(ip)}, from: "sender@example.org", to: []string{"user@example.net"}, data: text(id, "hello")})
		l.note(id, r)
		for _, w := range want {
			if r.code == w {
				return r
			}
		}
		t.Errorf("%s from %s: %v, want %v", id, ip, r, want)
		for _, line := range strings.Split(g.output(), "\n") {
			if strings.Contains(line, "rbl") || strings.Contains(line, ip+" ") || strings.Contains(line, "verdict") {
				t.Log(line)
			}
		}
		return r
	}
	round := func(phase string, listedWant, pairs int) {
		t.Helper()
		for range pairs {
			attempt(phase, true, listedWant)
			attempt(phase, false, 250)
		}
	}
	round("healthy", 554, 4)

	r1.set(dnsSilent)
	round("silent", 554, 4)
	m := g.metrics()
	if v := metric(m, "portcullis_rbl_failovers_total", "resolver="+r1.Addr); v < 1 {
		t.Errorf("no failover away from the silent resolver counted")
	}
	r1.set(dnsGarbage)
	round("garbage", 554, 4)
	poll(t, 10*time.Second, "the broken resolver reported down", func() (bool, string) {
		m := g.metrics()
		up1, up2 := metric(m, "portcullis_rbl_resolver_up", "resolver="+r1.Addr), metric(m, "portcullis_rbl_resolver_up", "resolver="+r2.Addr)
		return up1 == 0 && up2 == 1, fmt.Sprintf("up r1 %v r2 %v", up1, up2)
	})

	// No resolver answers: lookups are unknown, never "not listed".
	r2.set(dnsSilent)
	round("none", 250, 2)
	poll(t, 30*time.Second, "the mail judged without DNS delivered", func() (bool, string) {
		n := 0
		for id := range tally(sink) {
			if strings.Contains(id, "-none-") {
				n++
			}
		}
		return n == 4, fmt.Sprint(n, " of 4")
	})
	logged := false
	for _, msg := range sink.Messages() {
		if !strings.Contains(subject(msg.Data), "-none-") {
			continue
		}
		h := header(string(msg.Data))
		if first, _, _ := strings.Cut(h, "\r\n"); !logged {
			logged = true
			t.Logf("judged without DNS: %s ...", first)
		}
		if !strings.Contains(h, "FAIL") {
			t.Errorf("mail judged while no resolver answered carries no unknown-lookup symbol:\n%s", h)
			break
		}
	}
	m = g.metrics()
	if v := metric(m, "portcullis_rbl_unknown_total"); v < 4 {
		t.Errorf("portcullis_rbl_unknown_total = %v, want >= 4", v)
	}
	for _, r := range []*faultDNS{r1, r2} {
		if v := metric(m, "portcullis_rbl_resolver_seconds_count", "resolver="+r.Addr); v == 0 {
			t.Errorf("no latency exported for resolver %s", r.Addr)
		}
		if v := metric(m, "portcullis_rbl_resolver_errors_total", "resolver="+r.Addr); v == 0 {
			t.Errorf("no errors counted for resolver %s", r.Addr)
		}
	}

	// Both come back: the health check returns them, listed is refused.
	r1.set(dnsForward)
	r2.set(dnsForward)
	poll(t, 10*time.Second, "both resolvers back", func() (bool, string) {
		m := g.metrics()
		up1, up2 := metric(m, "portcullis_rbl_resolver_up", "resolver="+r1.Addr), metric(m, "portcullis_rbl_resolver_up", "resolver="+r2.Addr)
		return up1 == 1 && up2 == 1, fmt.Sprintf("up r1 %v r2 %v", up1, up2)
	})
	round("recovered", 554, 4)
	if n := g.countLines("rbl resolver failed health check"); n == 0 {
		t.Errorf("no log line says a resolver failed its health check")
	}

	sink.Wait(len(l.ackedIDs()), 30*time.Second)
	r := account(l, tally(sink), nil, nil)
	r.Incident, r.Fault = 6, "resolver 1 silent, then garbage; then both silent"
	report(t, r)
}
