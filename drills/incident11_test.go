package drills

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// faultyEngine is a command-line engine that chokes on a corrupt part:
// it reports the part unscannable (a content error) and from then on
// hangs on every file, as an engine wedged by a bad update does.
const faultyEngine = `f="$1"; s="$2"
if grep -q CORRUPT-PART-MARKER "$f"; then touch "$s/broken"; echo "faulty: cannot parse part" >&2; exit 2; fi
if [ -e "$s/broken" ]; then sleep 10; fi
exit 0
`

// Incident 11: an engine error on a corrupt part caused a backlog. The
// part is escalated to the stricter path (held, never passed); the
// engine, wedged from then on, times out until its breaker opens; clamd
// keeps scanning alone (malware still caught) and the backlog drains
// within the SLA the drill sets.
func TestIncident11(t *testing.T) {
	testsvc.Integration(t)
	clam := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	state := t.TempDir()
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	cfg.AV.Clamd = []string{clam.Addr}
	cfg.AV.Command = []config.Command{{Name: "vendor-x", Path: "/bin/sh", Args: []string{"-c", faultyEngine, "sh", "{}", state},
		// 1 s: the engine, a shell and grep, must answer the corrupt part
		// itself on a loaded machine, not be cut off first.
		Timeout: config.Duration(time.Second)}}
	cfg.AV.Breaker = config.Breaker{Failures: 3, Cooldown: config.Duration(time.Hour)}
	cfg.AV.Cache.Entries = -1
	cfg.Queue.Workers = 8
	g := start(t, cfg)

	l := newLedger()
	business := func(id string) string { return text(id, "Please find the figures below.\r\n\r\nBest,\r\nBob") }

	// The corrupt part: the engine cannot scan it; the message is held.
	corrupt := "drill-11-corrupt-0"
	r := send(g.smtp, mail{from: "sender@example.org", to: []string{"user@example.net"},
		data: withAttachment(corrupt, "data.txt", "text/plain", []byte("header CORRUPT-PART-MARKER \x00\x01 trailer"))})
	l.note(corrupt, r)
	if r.code != 250 || !strings.Contains(strings.ToLower(r.text), "held") {
		t.Fatalf("corrupt part: %v, want 250 held (escalated, never passed)\n%s", r, g.output())
	}
	if _, err := os.Stat(filepath.Join(state, "broken")); err != nil {
		t.Fatalf("the faulty engine never saw the corrupt part: %v", err)
	}

	// The backlog: the engine now hangs on everything.
	n := *burst / 2
	names := ids(11, n)
	var msgs []mail
	for _, id := range names {
		msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: business(id)})
	}
	const sla = 10 * time.Second // without a breaker: 1 s a message, 8 at once, 12.5 s for 100
	begin := time.Now()
	for i, r := range sendAll(g.smtp, msgs, 8) {
		l.note(names[i], r)
		if r.code != 250 {
			t.Errorf("%s: %v, want 250", names[i], r)
		}
	}
	sink.Wait(n, sla)
	drained := time.Since(begin)
	t.Logf("backlog of %d drained in %v (SLA %v)", n, drained.Round(time.Millisecond), sla)
	if drained > sla {
		t.Errorf("backlog drained in %v, over the %v SLA", drained, sla)
	}
	m := g.metrics()
	if v := metric(m, "portcullis_scanner_breaker_state", "engine=vendor-x"); v != 2 {
		t.Errorf("vendor-x breaker state %v, want 2 (open)", v)
	}
	if v := metric(m, "portcullis_scanner_breaker_state", "engine=clamd-1"); v != 0 {
		t.Errorf("clamd-1 breaker state %v, want 0 (closed)", v)
	}
	if v := metric(m, "portcullis_scanner_scans_total", "engine=clamd-1"); v < float64(n) {
		t.Errorf("clamd-1 scanned %v times, want >= %d", v, n)
	}
	// clamd alone still catches malware.
	eicar := "drill-11-eicar-0"
	r = send(g.smtp, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: withAttachment(eicar, "eicar.txt", "text/plain", testsvc.Eicar())})
	l.note(eicar, r)
	if r.code != 550 {
		t.Errorf("EICAR with vendor-x's breaker open: %v, want 550", r)
	}
	items := g.held("")
	if it, ok := items[corrupt]; !ok {
		t.Errorf("the corrupt part's message is not held")
	} else if !strings.Contains(fmt.Sprint(it.Symbols), "AV_FAIL") {
		t.Errorf("the corrupt part is held without AV_FAIL: %+v", it.Symbols)
	}
	held := heldSet(items)
	rr := account(l, tally(sink), held, nil)
	rr.Incident, rr.Fault = 11, "vendor-x fails on a corrupt part, then hangs (breaker opens)"
	report(t, rr)
}
