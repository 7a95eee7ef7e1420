package icap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

// c-icap judges the preview's file type against virus_scan.ScanFileTypes
// and answers 204 at once for a type it does not scan: the rest is never
// read, so the answer is a partial scan, not clean.
func TestRealUnscannedTypeIsPartial(t *testing.T) {
	s := testsvc.SharedICAP(t)
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"), bytes.Repeat([]byte{0}, 8<<10)...)
	png = append(png, testsvc.Eicar()...)
	trusting := newClient(t, Config{URL: s.URL, TrustPreview: true})
	if res, err := trusting.Scan(t.Context(), bytes.NewReader(png)); err != nil || res.Infected() {
		t.Fatalf("c-icap now scans PNGs whole (%v %v): revisit the test", res, err)
	}
	c := newClient(t, Config{URL: s.URL})
	if res, err := c.Scan(t.Context(), bytes.NewReader(png)); !errors.Is(err, scanner.ErrSizeLimit) || res.Infected() {
		t.Fatalf("png with eicar, 204 to the preview: %v %v, want ErrSizeLimit", res, err)
	}
	// Through Multi the partial scan is a failure, never clean.
	m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Scan(t.Context(), bytes.NewReader(png), int64(len(png)))
	if err != nil || !v.Partial() || v.Clean() {
		t.Fatalf("multi: %+v %v, want partial", v, err)
	}
}

// Verdict headers and answers that are not "clean" although the ICAP
// status says 200 and the body may come back unchanged.
func TestFakeVerdictHeaders(t *testing.T) {
	withBody := func(h string, body []byte, extra string) string {
		return "ICAP/1.0 200 OK\r\n" + extra + "Encapsulated: res-hdr=0, res-body=" + strconv.Itoa(len(h)) + "\r\n\r\n" + h + chunked(body)
	}
	ok := "HTTP/1.1 200 OK\r\n\r\n"
	blocked := func(want string) func(scanner.Result, error) bool {
		return func(r scanner.Result, err error) bool {
			return err == nil && len(r.Signatures) == 1 && strings.Contains(r.Signatures[0], want)
		}
	}
	clean := func(r scanner.Result, err error) bool { return err == nil && !r.Infected() }
	cases := []struct {
		name  string
		reply func(body []byte) string
		check func(scanner.Result, error) bool
	}{
		{"x-blocked-reason echoed", func(b []byte) string { return withBody(ok, b, "X-Blocked-Reason: Infected\r\n") }, blocked("x-blocked-reason Infected")},
		{"x-response-info blocked", func(b []byte) string { return withBody(ok, b, "X-Response-Info: Blocked\r\n") }, blocked("x-response-info Blocked")},
		{"x-response-info odd", func(b []byte) string { return withBody(ok, b, "X-Response-Info: Quarantined\r\n") }, blocked("Quarantined")},
		{"x-virus-name", func(b []byte) string { return withBody(ok, b, "X-Virus-Name: Bad.Thing\r\n") }, blocked("Bad.Thing")},
		{"x-blocked in the http head", func(b []byte) string {
			return withBody("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Blocked: policy\r\n\r\n", b, "")
		}, blocked("x-blocked policy")},
		{"threat in the http head", func(b []byte) string {
			return withBody("HTTP/1.1 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Head.Threat;\r\n\r\n", b, "")
		}, blocked("Head.Threat")},
		{"x-infection-found without threat", func(b []byte) string { return withBody(ok, b, "X-Infection-Found: Type=2; Resolution=0;\r\n") }, blocked("x-infection-found")},
		{"x-violations-found unnamed", func(b []byte) string { return withBody(ok, b, "X-Violations-Found: 1\r\n") }, blocked("x-violations-found")},
		{"null body", func([]byte) string { return "ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n\r\n" }, blocked("no body")},
		{"http head, null body", func([]byte) string {
			return "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=" + strconv.Itoa(len(ok)) + "\r\n\r\n" + ok
		}, blocked("no body")},
		{"no encapsulated", func([]byte) string { return "ICAP/1.0 200 OK\r\n\r\n" },
			func(_ scanner.Result, err error) bool { return errors.Is(err, scanner.ErrProtocol) }},
		// Informational headers and explicit clean values are not blocks.
		{"allowed echoed", func(b []byte) string { return withBody(ok, b, "X-Response-Info: Allowed\r\nX-ICAP-Profile: Mail\r\n") }, clean},
		{"scanned-by echoed", func(b []byte) string {
			return withBody(ok, b, "X-Virus-Scanned: by Vendor 1.2\r\nX-Virus-Status: Clean\r\n")
		}, clean},
		{"zero violations echoed", func(b []byte) string { return withBody(ok, b, "X-Violations-Found: 0\r\n") }, clean},
	}
	for _, data := range [][]byte{[]byte("0123456789 the scanned bytes"), []byte("abc"), {}} {
		for _, tc := range cases {
			f := startFake(t, func(c net.Conn, br *bufio.Reader, head string) bool {
				body, ok := previewThenAll(c, br, head)
				if !ok {
					return false
				}
				io.WriteString(c, tc.reply(body))
				return true
			})
			c := newClient(t, Config{URL: f.url})
			for range 2 {
				res, err := c.Scan(t.Context(), bytes.NewReader(data))
				if !tc.check(res, err) {
					t.Errorf("%s (%q): %v %v", tc.name, data, res, err)
				}
			}
		}
	}
}

// A server that answers the preview without asking for the rest has not
// read the rest: a partial scan unless TrustPreview, however it answers
// "clean" (204, or 200 echoing the preview).
func TestFakeAnswerToPreview(t *testing.T) {
	for _, reply := range []func([]byte) string{
		func([]byte) string { return "ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n" },
		func(b []byte) string {
			h := "HTTP/1.1 200 OK\r\n\r\n"
			return "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=" + strconv.Itoa(len(h)) + "\r\n\r\n" + h + chunked(b)
		},
	} {
		f := startFake(t, func(c net.Conn, br *bufio.Reader, head string) bool {
			body, _, err := readPreview(br)
			if err != nil {
				return false
			}
			io.WriteString(c, reply(body))
			return false // the rest of the body is never read
		})
		long := []byte("0123456789 more than the 4-byte preview")
		c := newClient(t, Config{URL: f.url})
		if res, err := c.Scan(t.Context(), bytes.NewReader(long)); !errors.Is(err, scanner.ErrSizeLimit) || res.Infected() {
			t.Errorf("answer to the preview: %v %v, want ErrSizeLimit", res, err)
		}
		// The whole input inside the preview ("0; ieof"): judged whole.
		if res, err := c.Scan(t.Context(), strings.NewReader("abc")); err != nil || res.Infected() {
			t.Errorf("all in the preview: %v %v, want clean", res, err)
		}
		trusting := newClient(t, Config{URL: f.url, TrustPreview: true})
		if res, err := trusting.Scan(t.Context(), bytes.NewReader(long)); err != nil || res.Infected() {
			t.Errorf("TrustPreview: %v %v, want clean", res, err)
		}
	}
}
