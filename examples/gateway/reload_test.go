package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// SIGHUP re-reads the dns section: new sessions ask the new lists, a
// session begun before keeps working on the old ones, and a file that no
// longer parses refuses the reload and keeps the lists serving.
func TestReloadSwapsDNSLists(t *testing.T) {
	dns := testsvc.StartRBLDNSD(t,
		testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:listed\n127.0.0.2\n127.0.0.77\n"},
		testsvc.RBLZone{Name: "bl2.test", Type: "ip4set", Data: ":127.0.0.2:listed\n127.0.0.2\n127.0.0.78\n"})
	dir := t.TempDir()
	conf := func(list string) string {
		return fmt.Sprintf("dns:\n  resolvers: [%q]\n  dnsbl: [\"%s=20\"]\n  lookup_non_public: [\"127.0.0.0/8\"]\n", dns.Addr, list)
	}
	cfg := writeFile(t, dir, "gateway.yaml", conf("bl.test"))
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	g := startGateway(t, gatewayArgs(t, sink.Addr, "-config", cfg)...)
	waitReady(t, g)
	from := func(ip string) *net.TCPAddr { return &net.TCPAddr{IP: net.ParseIP(ip)} }
	expect := func(ip string, want int, when string) {
		t.Helper()
		if r := sendFrom(from(ip), g.smtp, "a@example.org", []string{"b@example.net"}, message("from "+ip, "hi")); r.code != want {
			t.Errorf("%s: client %s got %+v, want %d", when, ip, r, want)
		}
	}
	expect("127.0.0.77", 554, "before the reload")
	expect("127.0.0.78", 250, "before the reload")

	// A session that begins before the reload.
	d := net.Dialer{LocalAddr: from("127.0.0.78"), Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", g.smtp)
	if err != nil {
		t.Fatal(err)
	}
	old := smtp.NewClient(conn)
	defer old.Close()
	if err := old.Hello("client.test"); err != nil {
		t.Fatal(err)
	}

	writeFile(t, dir, "gateway.yaml", conf("bl2.test"))
	g.signal(syscall.SIGHUP)
	if _, ok := g.waitLine("dns lists reloaded", 30*time.Second); !ok {
		t.Fatalf("no reload of the lists:\n%s", g.output())
	}
	expect("127.0.0.78", 554, "after the reload")
	expect("127.0.0.77", 250, "after the reload")

	// The old session finishes on the lists it began with.
	if err := old.Mail("a@example.org", nil); err != nil {
		t.Fatalf("old session MAIL: %v", err)
	}
	if err := old.Rcpt("b@example.net", nil); err != nil {
		t.Fatalf("old session RCPT: %v", err)
	}
	w, err := old.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(message("old session", "received from 127.0.0.78 before the reload")))
	if err := w.Close(); err != nil {
		t.Errorf("old session DATA: %v, want 250", err)
	}
	old.Quit()

	// A broken file: refused, counted, the new lists keep serving.
	if err := os.WriteFile(cfg, []byte(strings.Replace(conf("bl.test"), "dnsbl:", "dnsbll:", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.signal(syscall.SIGHUP)
	line, ok := g.waitLine("reload refused", 60*time.Second)
	if !ok || !strings.Contains(line, "what=config") || !strings.Contains(line, "dnsbll") {
		t.Fatalf("refusal not logged with its reason: %q\n%s", line, g.output())
	}
	expect("127.0.0.78", 554, "after a refused reload")
	expect("127.0.0.77", 250, "after a refused reload")
	m := httpGet(t, "http://"+g.admin+"/metrics", 200)
	for _, want := range []string{`portcullis_gateway_reloads_total{result="refused"} 1`, `portcullis_gateway_reloads_total{result="ok"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A dns section that checks but cannot be built (an unparsable list) is refused too.
	writeFile(t, dir, "gateway.yaml", conf("bl3.test=notascore"))
	g.signal(syscall.SIGHUP)
	if _, ok := g.waitLine("what=dns", 60*time.Second); !ok {
		t.Errorf("a bad list was not refused:\n%s", g.output())
	}
	expect("127.0.0.78", 554, "after a refused dns reload")
}
