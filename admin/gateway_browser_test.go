package admin

import (
	"bufio"
	"context"
	"encoding/base64"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// encryptedMail is a message whose attachment, an encrypted 7z archive,
// the gateway's default configuration holds.
func encryptedMail(t *testing.T, subject, name string) []byte {
	t.Helper()
	enc, err := os.ReadFile(filepath.Join("..", "archive", "testdata", "encrypted-headers.7z"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte("From: billing@example.org\r\nTo: alice@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <" + strconv.FormatInt(time.Now().UnixNano(), 36) + "@example.org>\r\nSubject: " + subject + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/x-7z-compressed; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(enc) + "\r\n--b--\r\n")
}

// TestBrowserGateway drives Chromium through the console of the real
// gateway binary (examples/gateway on its embedded default): mail sent
// to it over SMTP is held, shown inert, released from the page and
// delivered to an SMTP sink; a bulk re-scan runs to its report.
func TestBrowserGateway(t *testing.T) {
	testsvc.Integration(t)
	exe := testsvc.LookPath(t, "chromium", "apt-get install chromium", "/usr/bin")
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	buildStart := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/gateway").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("gateway built in %v", time.Since(buildStart))
	start := time.Now()

	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	smtpAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	adminAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	cmd := exec.Command(bin, "-listen", smtpAddr, "-admin", adminAddr, "-relay", sink.Addr, "-data", filepath.Join(dir, "data"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	startLine := make(chan string, 1)
	var lines []string
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "portcullis gateway started") {
				startLine <- sc.Text()
			}
		}
		_ = cmd.Wait()
	}()
	var line string
	select {
	case line = <-startLine:
	case <-exited:
		t.Fatalf("the gateway exited:\n%s", strings.Join(lines, "\n"))
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not start in 30 s")
	}
	// Rules load in the background: until they are in, the gateway
	// answers 451 and /readyz 503. Wait for ready, as a load balancer does.
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway was not ready in 60 s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable state, with a deadline
	}
	m := regexp.MustCompile(`token=("[^"]*"|\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no token file in the start-up line: %s", line)
	}
	tokenFile, _ := strconv.Unquote(m[1])
	if tokenFile == "" {
		tokenFile = m[1]
	}
	token, err := LoadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	// Three messages held: one carries the payloads.
	for _, msg := range [][]byte{
		encryptedMail(t, "Scan from MFP-4", "scan.7z"),
		encryptedMail(t, "Quarterly statement", "statement.7z"),
		encryptedMail(t, xssSubject, `<svg onload=window.__pwned=1>.7z`),
	} {
		if err := smtp.SendMail(smtpAddr, nil, "billing@example.org", []string{"alice@example.net"}, msg); err != nil {
			t.Fatalf("sending to the gateway: %v", err)
		}
	}

	root, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	alloc, cancel := chromedp.NewExecAllocator(root,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(filepath.Join(dir, "chromium")), chromedp.WindowSize(1280, 800))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	pwned := func(where string) {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`typeof window.__pwned`))
		must("reading window.__pwned", err)
		if v != "undefined" {
			t.Fatalf("%s: a payload ran", where)
		}
	}
	base := "http://" + adminAddr
	must("open", chromedp.Do(ctx, chromedp.Navigate(base+"/quarantine")))
	_, err = chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), token),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	must("log in", err)
	must("the list", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table.held"))))
	pwned("list")
	matched, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("matched")))
	must("the count", err)
	if matched != "3" {
		t.Fatalf("the console shows %s held, want 3", matched)
	}
	// Newest first: the payload message is the first row.
	link := chromedp.CSS(`table.held tbody tr:first-child td.subject a`)
	text, err := chromedp.Run(ctx, chromedp.Text(link))
	must("the subject", err)
	if text != xssSubject {
		t.Fatalf("the subject shows as %q", text)
	}
	_, err = chromedp.RunResponse(ctx, chromedp.Click(link))
	must("open the message", err)
	pwned("message view")
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("ul.mime .fname")))
	must("the attachment name", err)
	if name != `<svg onload=window.__pwned=1>.7z` {
		t.Fatalf("the attachment name shows as %q", name)
	}
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("release")))
	must("release", err)
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: "+xssSubject) {
		t.Fatalf("the SMTP sink has %d messages", len(got))
	}

	// A bulk re-scan: the archives are still encrypted, so both stay.
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("rescan-filter")))
	must("start the re-scan", err)
	must("the end of the re-scan", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#state[data-state="done"]`))))
	total, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("total")))
	must("the report", err)
	kept, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("kept")))
	must("the report", err)
	if total != "2" || kept != "2" {
		t.Errorf("re-scan report: total %s, kept %s", total, kept)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("the re-scan delivered: the sink has %d messages", n)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("the browser test took %v; it must stay under 60 s", d)
	}
	t.Logf("browser test against the gateway took %v", time.Since(start))
}
