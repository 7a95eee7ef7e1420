package drills

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// malformed returns a message with one kind of damage (k), keeping the
// Subject so the drill can find it again.
func malformed(id string, k int) string {
	hdr := "From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: " + id + "\r\n"
	switch k % 8 {
	case 0: // bare LF line endings throughout
		return strings.ReplaceAll(hdr+"MIME-Version: 1.0\r\n\r\nline one\r\nline two\r\n", "\r\n", "\n")
	case 1: // NUL and 8-bit garbage in the body
		return hdr + "\r\nbody \x00\x00\x01 with \xff\xfe bytes\r\n"
	case 2: // a multipart whose boundary never closes, with a part lacking headers
		return hdr + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\r\n--XX\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBAo="
	case 3: // invalid base64
		return hdr + "MIME-Version: 1.0\r\nContent-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!! not base64 ****\r\n===\r\n"
	case 4: // a header line without a colon and a header with 8-bit bytes
		return hdr + "this is not a header\r\nX-Junk: \xc3\x28\xa0\xa1\r\n\r\nbody\r\n"
	case 5: // multipart without a boundary parameter
		return hdr + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n--\r\nhello\r\n"
	case 6: // a very long header line (folded nowhere)
		return hdr + "X-Long: " + strings.Repeat("a", 1500) + "\r\n\r\nbody\r\n"
	default: // deeply nested message/rfc822 parts with a bad encoding name
		var b strings.Builder
		b.WriteString(hdr)
		for range 40 {
			b.WriteString("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n")
		}
		b.WriteString("inner\r\n")
		return b.String()
	}
}

// Incident 12: corrupt queue files from a customer's malfunctioning
// server; the queue was flushed. Corrupt data is written into the live
// spool (a foreign file while running; a torn record and a garbage
// segment across a crash) and a client sends malformed mail at volume:
// the damage is moved aside to corrupt/ with a metric, all other mail is
// delivered, nobody flushes anything.
func TestIncident12(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	sink.Stop() // mail stays in the spool while it is damaged
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	cfg.Queue.SweepInterval = config.Duration(100 * time.Millisecond)
	g := start(t, cfg)
	spool := filepath.Join(cfg.DataDir, "queue")

	l := newLedger()
	var msgs []mail
	var names []string
	nBad := max(*burst/2, 80)
	for i := range 30 {
		id := fmt.Sprintf("drill-12-good-%d", i)
		names = append(names, id)
		msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: text(id, "invoice attached")})
	}
	for i := range nBad {
		id := fmt.Sprintf("drill-12-bad-%d", i)
		names = append(names, id)
		msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: malformed(id, i)})
	}
	replies := sendAll(g.smtp, msgs, 10)
	codes := map[int]int{}
	for i, r := range replies {
		l.note(names[i], r)
		codes[r.code]++
		if r.err != nil {
			t.Errorf("%s: no SMTP reply: %v", names[i], r.err)
		}
		if strings.Contains(names[i], "good") && r.code != 250 {
			t.Errorf("%s: %v, want 250", names[i], r)
		}
		if r.code >= 500 && r.code != 550 && r.code != 554 && r.code != 552 && r.code != 500 {
			t.Errorf("%s: unexpected %v", names[i], r)
		}
	}
	t.Logf("malformed mail at volume: replies by code %v", codes)

	// A foreign file dropped into the live spool is swept aside.
	segDir := segmentsDir(t, spool)
	if err := os.WriteFile(filepath.Join(segDir, "customer-0001.qf"), []byte("HELO garbage\x00\x01\x02 from a broken server"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the foreign file moved to corrupt/", func() (bool, string) {
		m := g.metrics()
		v := metric(m, "portcullis_queue_corrupt_total", "reason=foreign")
		_, err := os.Stat(filepath.Join(segDir, "customer-0001.qf"))
		return v >= 1 && os.IsNotExist(err), fmt.Sprintf("corrupt_total{foreign} %v, still there: %v", v, err == nil)
	})

	// A crash, then a torn record at the end of the live segment and a
	// garbage segment: recovery moves both aside and keeps every entry.
	g.kill()
	segs, _ := filepath.Glob(filepath.Join(segDir, "seg-*.log"))
	sort.Strings(segs)
	if len(segs) == 0 {
		t.Fatalf("no segments in %s", segDir)
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("\x50\x43\x51\x31 torn record from a malfunctioning writer \xde\xad\xbe\xef"))
	f.Close()
	garbage := filepath.Join(segDir, "seg-00000000000000f0.log")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("\xffcorrupt queue file ", 200)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.run()
	m := g.metrics()
	if v := metric(m, "portcullis_queue_corrupt_total"); v < 2 {
		t.Errorf("after recovery portcullis_queue_corrupt_total = %v, want >= 2 (torn tail, garbage segment):\n%s", v, g.output())
	}
	if n := g.countLines("corrupt spool data moved aside"); n < 2 {
		t.Errorf("%d log lines say what was moved aside, want >= 2", n)
	}
	aside, _ := os.ReadDir(filepath.Join(spool, "corrupt"))
	if len(aside) < 3 {
		t.Errorf("corrupt/ holds %d files, want >= 3", len(aside))
	}
	// The gateway keeps serving: more mail after the recovery.
	for i := range 20 {
		id := fmt.Sprintf("drill-12-after-%d", i)
		r := send(g.smtp, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: text(id, "after the recovery")})
		l.note(id, r)
		if r.code != 250 {
			t.Errorf("%s: %v", id, r)
		}
	}
	held := heldSet(g.held(""))
	sink.Start()
	sink.Wait(len(l.ackedIDs())-len(held), 60*time.Second)
	poll(t, 30*time.Second, "the queue drained", func() (bool, string) {
		d := metric(g.metrics(), "portcullis_queue_depth")
		return d == 0, fmt.Sprintf("depth %v", d)
	})
	r := account(l, tally(sink), held, nil)
	r.Incident, r.Fault = 12, "foreign file, torn record, garbage segment in the live spool; malformed mail at volume"
	report(t, r)
}

// segmentsDir is where the spool keeps its segment files.
func segmentsDir(t testing.TB, spool string) string {
	t.Helper()
	for _, d := range []string{filepath.Join(spool, "spool"), spool} {
		if m, _ := filepath.Glob(filepath.Join(d, "seg-*.log")); len(m) > 0 {
			return d
		}
	}
	t.Fatalf("no segment files under %s", spool)
	return ""
}
