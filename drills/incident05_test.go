package drills

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// clamdFlags asks clamd directly (INSTREAM) whether it flags data.
func clamdFlags(t testing.TB, addr string, data []byte) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	c.Write([]byte("zINSTREAM\x00"))
	c.Write(n[:])
	c.Write(data)
	c.Write([]byte{0, 0, 0, 0})
	line, err := bufio.NewReader(c).ReadString(0)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(line, "FOUND")
}

// Incident 5: a faulty AV update flagged clean mail. clamd-1's database
// gains a signature that matches ordinary business mail: every message it
// flags is held, never rejected or bounced; the guard marks the engine
// suspect. The database fixed, one bulk re-scan through the admin API
// releases every falsely held message; real malware stays held.
func TestIncident05(t *testing.T) {
	testsvc.Integration(t)
	c1 := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	c2 := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	cfg.AV.Clamd = []string{c1.Addr, c2.Addr}
	cfg.AV.OnInfected = filter.Quarantine // held mail can be re-scanned; rejected mail is gone
	cfg.AV.Guard.Window, cfg.AV.Guard.MinScans = 20, 10
	cfg.Quarantine.RescanRate = 1000
	g := start(t, cfg)

	business := func(id string) string {
		return text(id, "Hello Alice,\r\n\r\nyour order ships today.\r\n\r\nKind regards\r\nPartner")
	}
	l := newLedger()
	seq := 0
	sendOne := func(kind string, data func(id string) string) (string, reply) {
		t.Helper()
		id := fmt.Sprintf("drill-05-%s-%d", kind, seq)
		seq++
		r := send(g.smtp, mail{from: "orders@partner.example", to: []string{"alice@example.net"}, data: data(id)})
		l.note(id, r)
		return id, r
	}
	eicar := func(id string) string { return withAttachment(id, "eicar.txt", "text/plain", testsvc.Eicar()) }

	// Normal traffic: business mail delivered, EICAR held.
	for range 15 {
		if id, r := sendOne("before", business); r.code != 250 || !strings.Contains(r.text, "queued") {
			t.Fatalf("%s: %v, want queued", id, r)
		}
	}
	if id, r := sendOne("eicar", eicar); r.code != 250 || !strings.Contains(strings.ToLower(r.text), "held") {
		t.Fatalf("%s: %v, want held", id, r)
	}

	// The faulty update reaches clamd-1.
	faulty := filepath.Join(c1.DBDir, "faulty-update.ndb")
	if err := os.WriteFile(faulty, []byte("Faulty.Update.Regards:0:*:"+hex.EncodeToString([]byte("Kind regards"))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c1.Reload(); err != nil {
		t.Fatal(err)
	}
	probe := []byte(business("probe"))
	poll(t, 30*time.Second, "clamd-1 loaded the faulty update", func() (bool, string) { return clamdFlags(t, c1.Addr, probe), "" })
	update := time.Now().UTC()
	n := *burst / 4
	falsely := map[string]bool{}
	for range n {
		id, r := sendOne("flagged", business)
		falsely[id] = true
		if r.code != 250 || !strings.Contains(strings.ToLower(r.text), "held") {
			t.Errorf("%s during the faulty update: %v, want 250 held", id, r)
		}
	}
	sendOne("eicar", eicar)

	held := g.held("&symbol=AV_CLAMD_1_INFECTED&since=" + url.QueryEscape(update.Add(-time.Second).Format(time.RFC3339)))
	suspect := 0
	for id := range falsely {
		it, ok := held[id]
		if !ok {
			t.Errorf("%s not held under AV_CLAMD_1_INFECTED", id)
			continue
		}
		for _, s := range it.Symbols {
			if s.Name == "AV_SUSPECT_ENGINE" {
				suspect++
				break
			}
		}
	}
	m := g.metrics()
	if suspect == 0 || metric(m, "portcullis_scanner_suspect", "engine=clamd-1") != 1 {
		t.Errorf("the guard did not mark clamd-1 suspect: %d held with AV_SUSPECT_ENGINE, gauge %v", suspect, metric(m, "portcullis_scanner_suspect", "engine=clamd-1"))
	}
	if v := metric(m, "portcullis_scanner_suspect", "engine=clamd-2"); v != 0 {
		t.Errorf("clamd-2 suspect = %v", v)
	}
	if v := metric(m, "portcullis_router_messages_total", "action=reject"); v != 0 {
		t.Errorf("%v messages rejected during the faulty update", v)
	}

	// The vendor fixes the database; one bulk re-scan releases the mail.
	os.Remove(faulty)
	if err := c1.Reload(); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "clamd-1 loaded the fixed database", func() (bool, string) { return !clamdFlags(t, c1.Addr, probe), "" })
	var rs struct {
		Total, Scanned, Released, Kept, Failed int
		State                                  string
	}
	q := "/api/quarantine/rescan?symbol=AV_CLAMD_1_INFECTED&since=" + url.QueryEscape(update.Add(-time.Second).Format(time.RFC3339))
	if code := g.api("POST", q, &rs); code != 200 {
		t.Fatalf("re-scan: %d", code)
	}
	t.Logf("re-scan: %+v", rs)
	// The window may reach back to the EICAR sent just before the update.
	if rs.Released != n || rs.Kept < 1 || rs.Kept > 2 || rs.Total != rs.Released+rs.Kept || rs.Failed != 0 {
		t.Errorf("re-scan released %d (want %d), kept %d (want the EICAR only), of %d, failed %d", rs.Released, n, rs.Kept, rs.Total, rs.Failed)
	}
	sink.Wait(15+n, 60*time.Second)
	still := g.held("")
	for id := range falsely {
		if _, ok := still[id]; ok {
			t.Errorf("%s still held after the re-scan", id)
		}
	}
	if len(still) != 2 {
		t.Errorf("%d held after the re-scan, want the 2 EICAR messages", len(still))
	}
	r := account(l, tally(sink), heldSet(still), nil)
	r.Incident, r.Fault = 5, "clamd-1 DB gains a signature matching business mail; fixed; bulk re-scan"
	if r.Delivered != 15+n || r.Duplicates != 0 {
		t.Errorf("delivered %d (want %d), %d duplicates", r.Delivered, 15+n, r.Duplicates)
	}
	report(t, r)
}
