package main

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// gatewayArgs are the flags of a gateway on free loopback ports with its
// own data directory, relaying to relay.
func gatewayArgs(t testing.TB, relay string, extra ...string) []string {
	return append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-relay", relay, "-data", filepath.Join(t.TempDir(), "data")}, extra...)
}

func attachment(name, contentType string, content []byte) string {
	b64 := base64.StdEncoding.EncodeToString(content)
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BOUND\r\n\r\n" +
		"--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--BOUND\r\nContent-Type: " + contentType + "; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n") + "\r\n--BOUND--\r\n"
}

func mimeMessage(subject, mime string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\nSubject: " + subject + "\r\n" + mime
}

func exeInZip(t testing.TB) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("invoice.exe")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), bytes.Repeat([]byte{0}, 200)...))
	zw.Close()
	return buf.Bytes()
}

func TestEndToEnd(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	data := filepath.Join(t.TempDir(), "data")
	g := startGateway(t, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-relay", sink.Addr, "-data", data)

	// Clean mail is delivered with the verdict headers, the forged one gone.
	if r := send(g.smtp, message("clean one", "Hello, this is a normal message.")); r.code != 250 || !strings.Contains(r.text, "queued") {
		t.Fatalf("clean: %+v", r)
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("sink has %d messages:\n%s", len(got), g.output())
	}
	d := string(got[0].Data)
	if !strings.Contains(d, "X-Spam-Status: No") || !strings.Contains(d, "X-Portcullis-Verdict: accept") || strings.Contains(d, "forged by the sender") {
		t.Errorf("delivered message headers:\n%s", d)
	}
	if !strings.HasSuffix(d, "\r\n\r\nHello, this is a normal message.\r\n") {
		t.Errorf("body changed:\n%q", d)
	}

	// An executable in a zip is refused at DATA.
	r := send(g.smtp, mimeMessage("zip", attachment("invoice.zip", "application/zip", exeInZip(t))))
	if r.code != 550 {
		t.Errorf("exe in zip: %+v, want 550", r)
	}
	// GTUBE is refused.
	if r := send(g.smtp, message("gtube", gtube)); r.code != 550 {
		t.Errorf("GTUBE: %+v, want 550", r)
	}
	// An encrypted archive is held.
	enc, err := os.ReadFile("../../archive/testdata/encrypted-headers.7z")
	if err != nil {
		t.Fatal(err)
	}
	r = send(g.smtp, mimeMessage("encrypted", attachment("secret.7z", "application/x-7z-compressed", enc)))
	if r.code != 250 || !strings.Contains(strings.ToLower(r.text), "held") {
		t.Errorf("encrypted archive: %+v, want 250 held", r)
	}

	// Health, readiness and metrics on the admin listener.
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `portcullis_router_messages_total{action="quarantine",outcome="held"} 1`,
	} {
		body := httpGet(t, "http://"+g.admin+path, 200)
		if !strings.Contains(body, want) {
			t.Errorf("%s lacks %q:\n%.2000s", path, want, body)
		}
	}
	if m := httpGet(t, "http://"+g.admin+"/metrics", 200); !strings.Contains(m, `portcullis_router_messages_total{action="reject",outcome="refused"} 2`) {
		t.Errorf("metrics do not count the two refusals:\n%.3000s", m)
	}
	// Plain SMTP from a client that waits for the 354: every message's
	// DATA was read in bulk, not through go-smtp's byte-at-a-time reader.
	if m := httpGet(t, "http://"+g.admin+"/metrics", 200); !strings.Contains(m, `portcullis_smtpd_data_total{reader="bulk"} 4`) {
		t.Errorf("metrics do not count four DATA read in bulk:\n%s", grepLines(m, "portcullis_smtpd_data"))
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink has %d messages, want only the clean one", n)
	}

	// The held message through the operator commands: listed, shown,
	// re-scanned (still encrypted: kept), released and delivered.
	op := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, append(append([]string{"quarantine"}, args[:1]...), append([]string{"-admin", g.admin, "-data", data}, args[1:]...)...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gateway quarantine %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := op("list", "-symbol", "ARCHIVE*")
	if !strings.Contains(list, "1 shown, 1 matched") || !strings.Contains(list, "encrypted") {
		t.Fatalf("quarantine list:\n%s", list)
	}
	id := strings.Fields(list)[0]
	if show := op("show", id); !strings.Contains(show, "secret.7z") {
		t.Errorf("quarantine show %s:\n%s", id, show)
	}
	if rs := op("rescan", "-since", "1h"); !strings.Contains(rs, "1 messages, 0 released, 1 kept") {
		t.Errorf("quarantine rescan:\n%s", rs)
	}
	if rel := op("release", id); !strings.Contains(rel, "released "+id) {
		t.Errorf("quarantine release:\n%s", rel)
	}
	got = sink.Wait(2, 20*time.Second)
	if len(got) != 2 || !strings.Contains(string(got[1].Data), "Subject: encrypted") {
		t.Errorf("released message not delivered: sink has %d", len(got))
	}
	if list := op("list"); !strings.Contains(list, "0 shown, 0 matched") {
		t.Errorf("quarantine after release:\n%s", list)
	}

	// SIGTERM: a clean exit.
	g.signal(syscall.SIGTERM)
	if code := g.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM:\n%s", code, g.output())
	}
}

func httpGet(t testing.TB, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d:\n%s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

// A client listed in a real rbldnsd is refused when it greets.
func TestListedClientRefused(t *testing.T) {
	dns := testsvc.StartRBLDNSD(t, testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:listed\n127.0.0.2\n127.0.0.77\n"})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf("dns:\n  resolvers: [%q]\n  dnsbl: [\"bl.test=20\"]\n  lookup_non_public: [\"127.0.0.0/8\"]\n", dns.Addr))
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	waitReady(t, g)

	listed := &net.TCPAddr{IP: net.ParseIP("127.0.0.77")}
	if r := sendFrom(listed, g.smtp, "a@example.org", []string{"b@example.net"}, message("listed", "hi")); r.code != 554 {
		t.Errorf("listed client: %+v, want 554", r)
	}
	clean := &net.TCPAddr{IP: net.ParseIP("127.0.0.78")}
	if r := sendFrom(clean, g.smtp, "a@example.org", []string{"b@example.net"}, message("not listed", "hi")); r.code != 250 {
		t.Errorf("unlisted client: %+v, want 250\n%s", r, g.output())
	}
}

// waitReady waits until /readyz says ready (the DNS health check runs in
// the background after start).
func waitReady(t testing.TB, g *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + g.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 20 s:\n%s", g.output())
		}
		time.Sleep(50 * time.Millisecond) // polling an HTTP endpoint, not synchronising goroutines
	}
}

// A queue over its depth answers 451 4.3.2; what it accepted before stays.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", "queue:\n  max_depth: 2\n  retry_base: 1h\n")
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	for i := range 2 {
		if r := send(g.smtp, message(fmt.Sprint("queued ", i), "hi")); r.code != 250 {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	r := send(g.smtp, message("third", "hi"))
	if r.code != 451 || r.enh[1] != 3 || r.enh[2] != 2 {
		t.Fatalf("over the depth: %+v, want 451 4.3.2", r)
	}
}

// SIGHUP with a broken rule file keeps the old rules serving.
func TestReloadKeepsOldRules(t *testing.T) {
	dir := t.TempDir()
	rules := writeFile(t, dir, "local.yaml", "rules:\n  - name: LOCAL_WORD\n    kind: body\n    literal: \"frobnicate-now\"\n    score: 20\n")
	cfg := writeFile(t, dir, "gateway.yaml", "rules:\n  files: ["+rules+"]\n")
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	if r := send(g.smtp, message("local", "please frobnicate-now")); r.code != 550 {
		t.Fatalf("local rule: %+v, want 550", r)
	}
	writeFile(t, dir, "local.yaml", "rules:\n  - name: BROKEN\n    kind: nonsense\n")
	g.signal(syscall.SIGHUP)
	if _, ok := g.waitLine("reload refused", 60*time.Second); !ok {
		t.Fatalf("no refusal logged:\n%s", g.output())
	}
	if r := send(g.smtp, message("local again", "please frobnicate-now")); r.code != 550 {
		t.Errorf("after a refused reload: %+v, want 550 (old rules)", r)
	}
	if m := httpGet(t, "http://"+g.admin+"/metrics", 200); !strings.Contains(m, `portcullis_gateway_reloads_total{result="refused"} 1`) {
		t.Errorf("refused reload not counted")
	}
}

func TestSecondInstanceRefused(t *testing.T) {
	args := gatewayArgs(t, "127.0.0.1:1")
	startGateway(t, args...)
	_, err := tryStart(t, args...)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second instance: %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errs bytes.Buffer
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "smtp:\n  listen: 127.0.0.1:2600\n")
	if code := run([]string{"-check-config", good}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "listen: 127.0.0.1:2600") || !strings.Contains(out.String(), "retry_base: 1m0s") {
		t.Errorf("effective configuration:\n%s", out.String())
	}
	bad := writeFile(t, dir, "bad.yaml", "smtp:\n  listen: 127.0.0.1:2600\n  lisen: x\n")
	out.Reset()
	errs.Reset()
	if code := run([]string{"-check-config", bad}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "line 3") {
		t.Errorf("bad key: exit %d, %q", code, errs.String())
	}
}

// With clamd stopped, mail is tempfailed at DATA, never accepted unscanned.
func TestClamdDownTempfails(t *testing.T) {
	clam := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf("av:\n  clamd: [%q]\n  breaker: {failures: 1000}\n", clam.Addr))
	g := startGateway(t, gatewayArgs(t, sink.Addr, "-config", cfg)...)

	if r := send(g.smtp, mimeMessage("virus", attachment("eicar.txt", "application/octet-stream", testsvc.Eicar()))); r.code != 550 {
		t.Errorf("EICAR: %+v, want 550", r)
	}
	if r := send(g.smtp, message("clean before", "hello")); r.code != 250 {
		t.Fatalf("clean with clamd up: %+v", r)
	}
	clam.Stop()
	for i := range 3 {
		if r := send(g.smtp, message(fmt.Sprint("clean after ", i), "hello")); r.code != 451 {
			t.Errorf("clamd down: %+v, want 451", r)
		}
	}
	got := sink.Wait(1, 20*time.Second)
	m := httpGet(t, "http://"+g.admin+"/metrics", 200)
	if len(got) != 1 || !strings.Contains(m, `portcullis_router_messages_total{action="tempfail",outcome="refused"} 3`) {
		t.Errorf("sink has %d (want 1); metrics:\n%.3000s", len(got), m)
	}
}

// A spool disk below its free-space floor answers 452 4.3.1.
func TestDiskFullIs452(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", "queue:\n  min_free_bytes: 1000000000000000000\n")
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	r := send(g.smtp, message("no room", "hi"))
	if r.code != 452 || r.enh[1] != 3 || r.enh[2] != 1 {
		t.Fatalf("disk full: %+v, want 452 4.3.1", r)
	}
}

// While the DNS lists' first health round is pending, the gateway is not
// ready: /readyz answers 503 and mail is tempfailed.
func TestNotReadyTempfails(t *testing.T) {
	// A resolver that never answers: the health round waits for timeouts.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf("dns:\n  resolvers: [%q]\n  dnsbl: [\"zen\"]\n", pc.LocalAddr().String()))
	g, err := tryListen(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(field(g.lineWith("gateway started"), "ready"), "not ready") {
		t.Errorf("start-up line does not say not ready: %s", g.lineWith("gateway started"))
	}
	httpGet(t, "http://"+g.admin+"/readyz", 503)
	if r := send(g.smtp, message("early", "hi")); r.code != 451 {
		t.Errorf("mail while not ready: %+v, want 451", r)
	}
}

// SIGTERM while clients send: every 250 is delivered after a restart, and
// the exit is clean.
func TestGracefulShutdownLosesNothing(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	addr := "127.0.0.1:" + fmt.Sprint(testsvc.FreePort(t))
	cfg := writeFile(t, dir, "gateway.yaml", "queue:\n  retry_base: 20ms\n  retry_max: 100ms\n")
	args := []string{"-config", cfg, "-listen", addr, "-admin", "off", "-relay", "127.0.0.1:1", "-data", filepath.Join(dir, "data")}
	g := startGateway(t, args...)
	acked := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; n < 1000; n++ {
			id := fmt.Sprint("graceful-", n)
			r := send(addr, message(id, "hi"))
			if r.code == 250 {
				acked <- id
			} else if r.err != nil {
				return // the listener is closed
			}
			if n == 20 {
				g.signal(syscall.SIGTERM)
			}
		}
	}()
	if code := g.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, g.output())
	}
	<-done
	close(acked)
	want := map[string]bool{}
	for id := range acked {
		want[id] = true
	}
	args[7] = sink.Addr // now relay to the sink
	startGateway(t, args...)
	got := sink.Wait(len(want), 30*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		if s := subjectLine(m.Data); s != "" {
			seen[s] = true
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("%s acknowledged before SIGTERM, not delivered after restart", id)
		}
	}
	if len(want) < 21 {
		t.Errorf("only %d messages acknowledged", len(want))
	}
}

func subjectLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\r\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
	}
	return ""
}

// Two gateways on one JetStream queue: mail accepted by either is
// delivered once the shared queue hands it out, and a message held by one
// is in the quarantine both see.
func TestSharedJetStreamQueue(t *testing.T) {
	n := natstest.Start(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf("queue:\n  backend: jetstream\n  url: %q\n", n.URL))
	a := startGateway(t, gatewayArgs(t, sink.Addr, "-config", cfg)...)
	b := startGateway(t, gatewayArgs(t, sink.Addr, "-config", cfg)...)
	for i, g := range []*proc{a, b} {
		if r := send(g.smtp, message(fmt.Sprint("shared ", i), "hello")); r.code != 250 {
			t.Fatalf("gateway %d: %+v\n%s", i, r, g.output())
		}
	}
	enc, err := os.ReadFile("../../archive/testdata/encrypted-headers.7z")
	if err != nil {
		t.Fatal(err)
	}
	if r := send(a.smtp, mimeMessage("held in a", attachment("secret.7z", "application/x-7z-compressed", enc))); r.code != 250 {
		t.Fatalf("hold: %+v", r)
	}
	if got := sink.Wait(2, 30*time.Second); len(got) != 2 {
		t.Fatalf("sink has %d messages, want 2", len(got))
	}
	tokenB, err := os.ReadFile(filepath.Join(filepath.Dir(field(b.lineWith("gateway started"), "token")), "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+b.admin+"/api/quarantine", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tokenB)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"subject": "held in a"`) {
		t.Errorf("gateway b does not see the message held by a: %.600s", body)
	}
}

// After SIGTERM the gateway is draining: a session still open gets 451
// 4.3.2 to a new MAIL, and the exit waits for that session to end.
func TestDrainingRefusesNewMail(t *testing.T) {
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1")...)
	c, err := smtp.Dial(g.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	g.signal(syscall.SIGTERM)
	if _, ok := g.waitLine("shutting down", 10*time.Second); !ok {
		t.Fatalf("no shutdown line:\n%s", g.output())
	}
	err = c.Mail("a@example.org", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 2}) {
		t.Fatalf("MAIL while draining: %v, want 451 4.3.2", err)
	}
	c.Quit()
	if code := g.wait(30 * time.Second); code != 0 {
		t.Errorf("exit %d:\n%s", code, g.output())
	}
}

// A gateway whose rule file is still arriving (a FIFO nobody has written
// yet) listens at once but is not ready: /readyz 503 saying the rules are
// loading, 451 to mail, nothing accepted unfiltered; once the file is in,
// ready, clean mail delivered and the new rule applied.
func TestRulesLoadingTempfails(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	fifo := filepath.Join(dir, "rules-syncing.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "gateway.yaml", fmt.Sprintf("rules:\n  files: [%q]\n", fifo))
	g, err := tryListen(t, gatewayArgs(t, sink.Addr, "-config", cfg)...)
	if err != nil {
		t.Fatal(err)
	}
	if ready := field(g.lineWith("gateway started"), "ready"); !strings.Contains(ready, "rules: loading") {
		t.Errorf("start-up line says ready=%q, want rules: loading", ready)
	}
	for i := range 3 {
		if body := httpGet(t, "http://"+g.admin+"/readyz", 503); !strings.Contains(body, "rules: loading") {
			t.Errorf("/readyz while loading: %q", body)
		}
		if r := send(g.smtp, message(fmt.Sprint("early ", i), "hi")); r.code != 451 {
			t.Errorf("mail while the rules load: %+v, want 451", r)
		}
	}

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("rules:\n  - name: SYNCED_MARKER\n    kind: body\n    literal: \"synced-marker\"\n    score: 20\n")
	w.Close()
	if _, ok := g.waitLine("rules: first load done", 30*time.Second); !ok {
		t.Fatalf("rules did not load:\n%s", g.output())
	}
	httpGet(t, "http://"+g.admin+"/readyz", 200)
	if r := send(g.smtp, message("after", "hi")); r.code != 250 {
		t.Errorf("clean mail after the load: %+v, want 250", r)
	}
	if r := send(g.smtp, message("marked", "synced-marker")); r.code/100 != 5 {
		t.Errorf("mail hitting the loaded rule: %+v, want 5xx", r)
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: after") {
		t.Errorf("sink got %d messages, want only the one sent after the load", len(got))
	}
}
