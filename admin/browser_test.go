package admin

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
)

// The payloads set window.__pwned if any of them ever runs.
const (
	xssSubject = `<img src=x onerror="window.__pwned=1"> Invoice <script>window.__pwned=1</script>`
	xssName    = `<svg onload=window.__pwned=1>.exe`
)

func xssMessage() string {
	return "From: \"Billing <script>window.__pwned=1</script>\" <billing@example.org>\r\nTo: alice@example.net\r\n" +
		"Subject: " + xssSubject + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease open the attached invoice\u202Efdp.exe today.\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body onload=\"window.__pwned=1\"><a href=\"javascript:window.__pwned=1\">pay</a>" +
		"<img src=\"http://192.0.2.1/track.gif\"></body></html>\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=\"" + xssName + "\"\r\n" +
		"Content-Disposition: attachment; filename=\"" + xssName + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
}

// screenshotDir is where the console's screenshots go: docs/img under
// CI (kept as artifacts) or when PORTCULLIS_SCREENSHOTS names a
// directory (to refresh the committed ones), a temporary directory
// otherwise, so that a test run leaves the work tree alone.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("PORTCULLIS_SCREENSHOTS"); d != "" {
		return d
	}
	if testsvc.InCI() {
		return filepath.Join("..", "docs", "img")
	}
	return t.TempDir()
}

// TestBrowser drives Debian's headless Chromium through the console: log
// in, see a held message whose subject and attachment name are XSS
// payloads shown as text with no script run, release it and see it
// arrive at an SMTP sink through a real queue,
// run a bulk re-scan and follow its progress to the report, and take
// screenshots of the list and the message view at desktop and phone
// width.
func TestBrowser(t *testing.T) {
	testsvc.Integration(t)
	exe := testsvc.LookPath(t, "chromium", "apt-get install chromium", "/usr/bin")
	start := time.Now()
	// Released mail goes through a real queue and the SMTP client to an
	// SMTP sink.
	smtpSink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	rl, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{smtpSink.Addr}}}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.TempDir(), queue.Config{Deliverer: rl, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	e := newEnvQueue(t, q)
	e.hold("ap@supplier.example", []string{"alice@example.net"}, plainMsg("Quarterly statement", "EICAR-LIKE"))
	e.hold("news@shop.example", []string{"alice@example.net", "bob@example.net"}, plainMsg("50% off everything, today only", "BUY NOW"),
		filter.Symbol{Name: "RULE_DISCOUNT_SHOUTING", Score: 4.5, Detail: "rules: 3 matches"},
		filter.Symbol{Name: "RBL_URIBL_BLACK", Score: 2, Detail: "shop.example listed"})
	e.hold("it@corp.example", []string{"bob@example.net"}, plainMsg("Password expiry notice", "EICAR-LIKE"))
	e.hold("scanner@printer.example", []string{"alice@example.net"}, plainMsg("Scan from MFP-4 (3 pages)", "EICAR-LIKE"))
	xss := e.hold("billing@example.org", []string{"alice@example.net"}, xssMessage(),
		filter.Symbol{Name: "ARCHIVE_BANNED_EXE", Score: 10, Detail: "archive: " + xssName + " is an executable"},
		filter.Symbol{Name: "AV_SUSPECT_ENGINE", Score: 0, Detail: "clamd-1: Win.Trojan.Agent-1 in 3 (detection rate 0.40, baseline 0.01)"})
	dir := screenshotDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	// The whole browser lives under the test's time bound.
	root, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	alloc, cancel := chromedp.NewExecAllocator(root, opts...)
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
			t.Fatalf("%s: a payload ran (window.__pwned is %s)", where, v)
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img, main svg, main iframe, main script, main object, main [onload], main [onerror]").length`))
		must("counting elements", err)
		if n != 0 {
			t.Fatalf("%s: %d elements from the message in the page", where, n)
		}
	}
	shot := func(name string, width, height int64) {
		t.Helper()
		must("viewport", chromedp.Do(ctx, chromedp.EmulateViewport(width, height)))
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		must("screenshot", err)
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil || int64(cfg.Width) != width || int64(cfg.Height) != height {
			t.Fatalf("screenshot %s: %v, %dx%d", name, err, cfg.Width, cfg.Height)
		}
		must("saving a screenshot", os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}

	// Every request the page makes is recorded: none may leave the console.
	var mu sync.Mutex
	var requests []string
	must("listening", chromedp.Listen(ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, r.Request.URL)
			mu.Unlock()
		}
	}))

	// Log in with the admin token.
	must("open", chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/quarantine")))
	_, err = chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testToken),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	must("log in", err)
	must("the list", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table.held"))))
	pwned("list")
	link := chromedp.CSS(`a[href="/quarantine/m/` + string(xss) + `"]`)
	text, err := chromedp.Run(ctx, chromedp.Text(link))
	must("the subject", err)
	if text != xssSubject {
		t.Fatalf("the subject shows as %q", text)
	}
	shot("console-list-desktop.png", 1280, 800)
	shot("console-list-phone.png", 390, 844)

	// The message view.
	_, err = chromedp.RunResponse(ctx, chromedp.Click(link))
	must("open the message", err)
	pwned("message view")
	names, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("ul.mime .fname")))
	must("the attachment name", err)
	if names != xssName {
		t.Fatalf("the attachment name shows as %q", names)
	}
	marker, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("section.text .ctl")))
	must("the RTLO marker", err)
	if marker != "U+202E" {
		t.Errorf("the RTLO shows as %q", marker)
	}
	shot("console-message-phone.png", 390, 844)
	shot("console-message-desktop.png", 1280, 1100)

	// Release it: the sink gets it.
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("release")))
	must("release", err)
	note, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("p.note")))
	must("the note", err)
	if !strings.Contains(note, "Released") {
		t.Errorf("after release: %q", note)
	}
	got := smtpSink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: "+xssSubject) || got[0].To[0] != "alice@example.net" {
		t.Fatalf("the SMTP sink has %d messages", len(got))
	}

	// The vendor fixed the signature: re-scan everything, watch the
	// progress, read the report.
	e.dirty.Store(false)
	open := e.holdScans()
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("rescan-filter")))
	must("start the re-scan", err)
	must("progress", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#state[data-state="running"]`)), chromedp.WaitVisible(chromedp.ID("progress"))))
	total, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("total")))
	must("the total", err)
	if total != "4" {
		t.Errorf("re-scan of %s messages, want 4", total)
	}
	open()
	must("the end of the re-scan", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#state[data-state="done"]`))))
	released, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("released")))
	must("the report", err)
	kept, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("kept")))
	must("the report", err)
	// Three were clean now; the newsletter still scores on its rules.
	if released != "3" || kept != "1" {
		t.Errorf("report: released %s, kept %s", released, kept)
	}
	shot("console-rescan-desktop.png", 1280, 800)
	if n := len(smtpSink.Wait(4, 20*time.Second)); n != 4 {
		t.Errorf("the SMTP sink has %d messages after the re-scan, want 4", n)
	}
	mu.Lock()
	for _, u := range requests {
		if !strings.HasPrefix(u, e.srv.URL+"/") { // the console and the browser's own favicon.ico
			t.Errorf("the page requested %s", u)
		}
	}
	if len(requests) < 10 {
		t.Errorf("only %d requests recorded: the listener saw nothing", len(requests))
	}
	mu.Unlock()
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("the browser test took %v; it must stay under 60 s", d)
	}
	t.Logf("browser test took %v; screenshots in %s", time.Since(start), dir)
}
