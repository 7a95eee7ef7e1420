package drills

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 10: archives falsely classed dangerous were removed. Doubtful
// archives (encrypted, uninspectable) are held, never deleted; released
// through the admin API they arrive intact, byte for byte.
func TestIncident10(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	g := start(t, cfg)

	zipped := exeInZip(t)
	truncated := append([]byte(nil), zipped[:len(zipped)/2]...) // a zip cut short: cannot be opened
	kinds := []struct {
		name, file, ctype string
		data              []byte
	}{
		{"enc7z", "figures.7z", "application/x-7z-compressed", testdata(t, "archive/testdata/encrypted-headers.7z")},
		{"enczip", "payroll.zip", "application/zip", encryptedZip(t)},
		{"truncated", "statement.zip", "application/zip", truncated},
	}
	const per = 3
	l := newLedger()
	sent := map[string]string{}
	for _, k := range kinds {
		for i := range per {
			id := fmt.Sprintf("drill-10-%s-%d", k.name, i)
			data := withAttachment(id, k.file, k.ctype, k.data)
			sent[id] = data
			r := send(g.smtp, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: data})
			l.note(id, r)
			if r.code != 250 || !strings.Contains(strings.ToLower(r.text), "held") {
				t.Errorf("%s: %v, want 250 held", id, r)
			}
		}
	}
	held := g.held("")
	for id := range sent {
		it, ok := held[id]
		if !ok {
			t.Errorf("%s not in the quarantine", id)
			continue
		}
		if it.Action != "quarantine" {
			t.Errorf("%s held with action %q", id, it.Action)
		}
	}
	if t.Failed() {
		t.Fatalf("log:\n%s", g.output())
	}
	if n := len(g.held("&symbol=ARCHIVE*")); n != len(sent) {
		t.Errorf("the API lists %d held archives by symbol ARCHIVE*, want %d", n, len(sent))
	}
	m := g.metrics()
	if v := metric(m, "portcullis_quarantine_size"); v != float64(len(sent)) {
		t.Errorf("portcullis_quarantine_size = %v, want %d", v, len(sent))
	}
	if v := metric(m, "portcullis_quarantine_deleted_total") + metric(m, "portcullis_quarantine_expired_total"); v != 0 {
		t.Errorf("%v held messages deleted", v)
	}
	// The raw held message is the one sent.
	for id, it := range held {
		raw := g.raw(it.ID)
		if !bytes.Contains(raw, []byte(body(sent[id]))) {
			t.Errorf("%s: the held copy's body differs from the one sent", id)
		}
	}
	// A re-scan keeps them: still doubtful, still held, none deleted.
	var rs struct {
		Total, Kept, Released, Failed int
	}
	if code := g.api("POST", "/api/quarantine/rescan?symbol=ARCHIVE*", &rs); code != 200 || rs.Kept != len(sent) || rs.Released != 0 {
		t.Errorf("re-scan: %d %+v, want all %d kept", code, rs, len(sent))
	}
	// Released one by one, they arrive intact.
	for _, it := range held {
		var out struct {
			QueueID string `json:"queue_id"`
		}
		if code := g.api("POST", "/api/quarantine/"+it.ID+"/release", &out); code != 200 || out.QueueID == "" {
			t.Errorf("release %s: %d %+v", it.ID, code, out)
		}
	}
	got := sink.Wait(len(sent), 30*time.Second)
	for _, msg := range got {
		id := subject(msg.Data)
		want, ok := sent[id]
		if !ok {
			t.Errorf("unexpected delivery %q", id)
			continue
		}
		if body(string(msg.Data)) != body(want) {
			t.Errorf("%s arrived changed:\n got %q\nwant %q", id, body(string(msg.Data)), body(want))
		}
		for _, h := range strings.Split(header(want), "\r\n") {
			if !strings.Contains(header(string(msg.Data)), h) {
				t.Errorf("%s lost its header line %q", id, h)
			}
		}
	}
	if n := len(g.held("")); n != 0 {
		t.Errorf("%d still held after release", n)
	}
	r := account(l, tally(sink), nil, nil)
	r.Incident, r.Fault = 10, "encrypted and truncated archives (doubtful)"
	if r.Delivered != len(sent) {
		t.Errorf("delivered %d of %d released", r.Delivered, len(sent))
	}
	report(t, r)
}

func header(msg string) string { h, _, _ := strings.Cut(msg, "\r\n\r\n"); return h }
func body(msg string) string   { _, b, _ := strings.Cut(msg, "\r\n\r\n"); return b }
