package drills

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// fleetConfig is one node of a fleet sharing the JetStream queue at url,
// with a DNS list at resolver.
func fleetConfig(t testing.TB, url, resolver, sink string) *config.Config {
	cfg := baseConfig(t)
	cfg.Queue.Backend = "jetstream"
	cfg.Queue.URL = url
	cfg.Relay.Routes["*"] = routeTo(sink)
	cfg.DNS.Resolvers = []string{resolver}
	cfg.DNS.DNSBL = []string{"bl.drill.test=20"}
	cfg.DNS.LookupNonPublic = []string{"127.0.0.0/8"}
	return cfg
}

var (
	listedClient = &net.TCPAddr{IP: net.ParseIP("127.0.0.77")}
	cleanClient  = &net.TCPAddr{IP: net.ParseIP("127.0.0.78")}
)

func startBlocklist(t testing.TB) *testsvc.RBLDNSD {
	return testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.drill.test", Type: "ip4set", Data: ":127.0.0.2:listed for abuse\n127.0.0.2\n127.0.0.77\n"})
}

// Incident 8: new nodes joined before their rules loaded and junk went
// through. Node A serves; node B joins the fleet (same JetStream queue)
// with a rule file that takes its time (a FIFO nobody has written yet):
// B listens at once but answers 451 to everything and /readyz 503
// ("rules: loading") until its rules are in, and never accepts
// unfiltered mail. (The lists' first health round, the other not-ready
// window, is examples/gateway's TestNotReadyTempfails.)
func TestIncident08(t *testing.T) {
	testsvc.Integration(t)
	nats := natstest.Start(t)
	bl := startBlocklist(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	a := start(t, fleetConfig(t, nats.URL, bl.Addr, sink.Addr))
	waitReady(t, a)

	fifo := filepath.Join(t.TempDir(), "rules-being-synced.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	bcfg := fleetConfig(t, nats.URL, bl.Addr, sink.Addr)
	bcfg.Rules.Files = []string{fifo}
	bSMTP := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	bAdmin := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	bcfg.SMTP.Listen, bcfg.Admin.Listen = bSMTP, bAdmin
	b := launch(t, bcfg)

	l := newLedger()
	n := 0
	try := func(g string, addr string, from net.Addr, data func(id string) string, want ...int) reply {
		t.Helper()
		id := fmt.Sprintf("drill-08-%s-%d", g, n)
		n++
		r := send(addr, mail{local: from, from: "sender@example.org", to: []string{"user@example.net"}, data: data(id)})
		l.note(id, r)
		for _, w := range want {
			if r.code == w {
				return r
			}
		}
		t.Errorf("%s via %s: %v, want %v", id, g, r, want)
		return r
	}
	clean := func(id string) string { return text(id, "Quarterly report") }
	junk := func(id string) string { return text(id, gtube) }

	// While B's rules are loading: B listens, says so, and tempfails
	// mail, clean or junk (its lists, ready, still refuse a listed
	// client at connect); A serves.
	b.waitListening()
	if ready := field(b.lineWith("portcullis gateway started"), "ready"); !strings.Contains(ready, "rules: loading") {
		t.Errorf("node B's start-up line says ready=%q, want rules: loading", ready)
	}
	if code, why := b.status("/readyz"); code != 503 || !strings.Contains(why, "rules: loading") {
		t.Errorf("node B /readyz while its rules load: %d %q, want 503 naming the rules", code, why)
	}
	for range 3 {
		try("b-loading", b.smtp, cleanClient, clean, 451)
		try("b-loading-junk", b.smtp, cleanClient, junk, 451)
		try("b-loading-listed", b.smtp, listedClient, clean, 554) // the lists are up: refusing is never unfiltered
		try("a", a.smtp, cleanClient, clean, 250)
	}
	if code, _ := b.status("/readyz"); code != 503 {
		t.Errorf("node B's /readyz answered %d before its rules were loaded", code)
	}

	// The rules arrive: B is ready and filters like A.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("rules:\n  - name: DRILL_SYNCED\n    kind: body\n    literal: \"synced-rule-marker\"\n    score: 20\n")
	w.Close()
	if _, ok := b.waitLine("rules: first load done", 30*time.Second); !ok {
		t.Fatalf("node B's rules did not load:\n%s", b.output())
	}
	waitReady(t, b)
	for range 3 {
		try("b", b.smtp, cleanClient, clean, 250)
		try("b-junk", b.smtp, cleanClient, junk, 550)
		try("b-synced", b.smtp, cleanClient, func(id string) string { return text(id, "synced-rule-marker") }, 550)
		try("b-listed", b.smtp, listedClient, clean, 554)
		try("a-listed", a.smtp, listedClient, clean, 554)
	}
	for _, id := range l.ackedIDs() {
		if !strings.Contains(id, "-a-") && !strings.Contains(id, "-b-") {
			t.Errorf("%s was acknowledged", id)
		}
	}
	acked := len(l.ackedIDs())
	sink.Wait(acked, 30*time.Second)
	m := b.metrics()
	if v := metric(m, "portcullis_smtpd_replies_total", "class=4xx"); v != 6 {
		t.Errorf("node B counted %v 4xx replies while its rules loaded, want 6", v)
	}
	r := account(l, tally(sink), nil, nil)
	r.Incident, r.Fault = 8, "node joins with its rule file still syncing (a FIFO)"
	if r.Duplicates != 0 {
		t.Errorf("%d duplicates through the shared queue", r.Duplicates)
	}
	report(t, r)
}

// waitReady polls /readyz until it answers 200.
func waitReady(t testing.TB, g *gateway) {
	t.Helper()
	poll(t, 30*time.Second, "/readyz 200", func() (bool, string) {
		code, body := g.status("/readyz")
		return code == 200, fmt.Sprint(code, " ", body)
	})
}
