package admin

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/portcullis-mail/portcullis/filter"
)

// hostile is the catalogue: markup, script URLs, event handlers, bidi
// controls, NULs and other invisible characters, broken UTF-8, and a line
// long enough to break a layout.
var hostile = []string{
	`<script>window.__pwned=1</script>`,
	`"><img src=x onerror="window.__pwned=1">`,
	`'><svg/onload=alert(1)>`,
	`javascript:window.__pwned=1`,
	`<a href="javascript:alert(1)">click</a>`,
	`</textarea></pre></title><script>alert(1)</script>`,
	`{{.CSRF}} ${7*7} <%= 1 %>`,
	"invoice\u202Egpj.exe", // RTLO: shows as invoiceexe.jpg
	"\u2066isolate\u2069 \u2067r\u2068 \u200Fmark\u200E",
	"nul\x00byte and \x1b[31mescape\x07",
	"zero\u200Bwidth\uFEFFbom\u00ADsoft\u2028line",
	"broken \xff\xfe utf-8 \xc3",
	"tag \U000E0041\U000E0042 chars",
	strings.Repeat("A", 20000),
}

// markers are the code points that must show as a marker, never raw.
var markers = []rune{0x202E, 0x2066, 0x2069, 0x2067, 0x2068, 0x200F, 0x200E, 0x00, 0x1B, 0x07, 0x200B, 0xFEFF, 0xAD, 0x2028, 0xE0041}

// hostileMessage carries every hostile string in the subject, the From,
// a header, an attachment name, a text body and an HTML body.
func hostileMessage(s string) string {
	enc := "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
	name := strings.NewReplacer(`"`, "", "\x00", "", "\r", "", "\n", "").Replace(s)
	return "From: " + enc + " <x@example.org>\r\nTo: alice@example.net\r\nSubject: " + enc + "\r\nX-Evil: " + enc + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + s + "\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body onload=\"window.__pwned=1\">" + s + "</body></html>\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n\r\nMZ\r\n--b--\r\n"
}

// The console's markup, and nothing else, may appear in a page.
var (
	allowedTags = []string{"html", "head", "meta", "title", "link", "script", "body", "header", "a", "span", "form", "input", "button",
		"main", "p", "section", "strong", "b", "details", "summary", "label", "div", "table", "thead", "tbody", "tr", "th", "td",
		"time", "em", "nav", "h1", "h2", "h3", "dl", "dt", "dd", "code", "ul", "li", "pre", "progress"}
	allowedAttrs = []string{"charset", "name", "content", "rel", "href", "src", "defer", "lang", "class", "method", "action", "type",
		"value", "id", "aria-label", "role", "open", "maxlength", "placeholder", "disabled", "data-label", "datetime", "title",
		"data-confirm", "download", "for", "max", "data-state", "autocomplete", "required", "http-equiv"}
)

// checkInert parses a page as a browser would and fails on any element or
// attribute the console does not write, any script but its own, any URL
// that is not its own, and any hidden character shown raw.
func checkInert(t *testing.T, where, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	scripts := 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			if !slices.Contains(allowedTags, tok.Data) {
				t.Errorf("%s: element <%s> in the page", where, tok.Data)
			}
			if tok.Data == "script" {
				scripts++
			}
			for _, a := range tok.Attr {
				if !slices.Contains(allowedAttrs, a.Key) {
					t.Errorf("%s: attribute %s=%q on <%s>", where, a.Key, a.Val, tok.Data)
				}
				if (a.Key == "href" || a.Key == "src" || a.Key == "action") && !strings.HasPrefix(a.Val, "/quarantine") {
					t.Errorf("%s: %s=%q leaves the console", where, a.Key, a.Val)
				}
			}
		case html.TextToken:
			for _, r := range tok.Data {
				if r != '\n' && r != '\t' && hidden(r) {
					t.Errorf("%s: U+%04X shown raw", where, r)
				}
			}
		}
	}
	if scripts != 1 {
		t.Errorf("%s: %d script elements; the console has one", where, scripts)
	}
	if strings.Contains(page, "\x00") || !utf8.ValidString(page) {
		t.Errorf("%s: NUL or invalid UTF-8 in the page", where)
	}
}

func TestHostileContentIsInert(t *testing.T) {
	e := newEnv(t)
	var ids []heldID
	for _, s := range hostile {
		sym := filter.Symbol{Name: "AV_INFECTED", Score: 10, Detail: "clamd-1: " + s}
		rcpt := "alice@example.net"
		ids = append(ids, e.hold(s, []string{rcpt}, hostileMessage(s), sym))
	}
	b := e.browser()
	b.login("alice", "alice-pw")
	_, list := b.get("/quarantine")
	checkInert(t, "list", list)
	if !strings.Contains(list, "invoice<span class=\"ctl\">U+202E</span>gpj.exe") {
		t.Error("the RTLO subject is not shown with its marker")
	}
	if !strings.Contains(list, "&lt;script&gt;window.__pwned=1&lt;/script&gt;") {
		t.Error("the script subject is not shown as text")
	}
	if len(list) > 200<<10 {
		t.Errorf("the list is %d bytes: long subjects are not clipped", len(list))
	}
	_, filtered := b.get("/quarantine?text=%3Cscript%3E&symbol=%3Cscript%3E")
	checkInert(t, "filtered list", filtered)

	for i, id := range ids {
		resp, page := b.get("/quarantine/m/" + string(id))
		if i == 0 {
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
				resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("headers: %v", resp.Header)
			}
		}
		where := "message " + strings.ToValidUTF8(hostile[i][:min(len(hostile[i]), 20)], "?")
		checkInert(t, where, page)
		for _, r := range markers {
			if strings.ContainsRune(hostile[i], r) && !strings.Contains(page, fmt.Sprintf(`<span class="ctl">U+%04X</span>`, r)) {
				t.Errorf("%s: no marker for U+%04X", where, r)
			}
		}
	}
	// The JSON API escapes markup as well (encoding/json's HTML escaping).
	resp, body := e.api("GET", "/api/quarantine/"+string(ids[0]), "", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" || strings.Contains(string(body), "<script>") {
		t.Errorf("API: %s, raw markup in JSON", ct)
	}
}

func TestInert(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                    "plain",
		"<b>&\"'":                  "&lt;b&gt;&amp;&#34;&#39;",
		"a\u202Eb":                 `a<span class="ctl">U+202E</span>b`,
		"\x00":                     `<span class="ctl">U+0000</span>`,
		"tab\tand\nnewline":        "tab\tand\nnewline",
		"bad \xff":                 "bad \uFFFD",
		"tag \U000E0041":           `tag <span class="ctl">U+E0041</span>`,
		"real \uFFFD stays \u00e9": "real \uFFFD stays \u00e9",
	} {
		if got := string(inert(in)); got != want {
			t.Errorf("inert(%q) = %q, want %q", in, got, want)
		}
	}
	if got := plain("a\u202Eb\x00"); got != "a[U+202E]b[U+0000]" {
		t.Errorf("plain: %q", got)
	}
	if got := clip("ééééé", 3); got != "ééé…" {
		t.Errorf("clip: %q", got)
	}
}

// FuzzInert: whatever the input, inert's output parses as text and the
// console's marker spans only, and shows no hidden character raw.
func FuzzInert(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := string(inert(s))
		z := html.NewTokenizer(strings.NewReader(out))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				return
			}
			tok := z.Token()
			switch tt {
			case html.TextToken:
				for _, r := range tok.Data {
					if hidden(r) {
						t.Fatalf("inert(%q): U+%04X raw", s, r)
					}
				}
			case html.StartTagToken, html.EndTagToken:
				if tok.Data != "span" || tt == html.StartTagToken && (len(tok.Attr) != 1 || tok.Attr[0] != html.Attribute{Key: "class", Val: "ctl"}) {
					t.Fatalf("inert(%q): markup %v", s, tok)
				}
			default:
				t.Fatalf("inert(%q): token %v", s, tok)
			}
		}
	})
}

// FuzzParseFilters: any query string parses or fails cleanly, and what
// parses survives the round trip through the links and forms the
// console writes (values).
func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"", "since=2h&symbol=AV_*", "since=7d&until=2026-12-01T04:00:00Z&engine=clamd-1",
		"text=%3Cscript%3E&recipient=a@b", "since=2026-12-01T04:00", "until=-5h", "since=99999999d", "symbol=" + strings.Repeat("x", 600)} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, err := parseFilters(v, now)
		if err != nil {
			return
		}
		for _, s := range []string{fl.Symbol, fl.Engine, fl.Recipient, fl.Sender, fl.Text} {
			if len(s) > maxFilterLen {
				t.Fatalf("a filter of %d bytes passed", len(s))
			}
		}
		again, err := parseFilters(fl.values(), now)
		if err != nil {
			t.Fatalf("the console's own query %q does not parse: %v", fl.values().Encode(), err)
		}
		fl.Since, fl.Until = fl.Since.Truncate(time.Second), fl.Until.Truncate(time.Second)
		if !again.Since.Equal(fl.Since) || !again.Until.Equal(fl.Until) || again.Symbol != fl.Symbol || again.Text != fl.Text ||
			again.Engine != fl.Engine || again.Recipient != fl.Recipient || again.Sender != fl.Sender {
			t.Fatalf("round trip: %+v became %+v", fl, again)
		}
	})
}
