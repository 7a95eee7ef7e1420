package rules

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// specScanMultipart is scanMultipart as first written, over a slice of
// the part's lines: the reference the one-line-at-a-time version must
// agree with.
func specScanMultipart(body []byte, boundary string, pf *parseFlags) {
	open, closing := "--"+boundary, "--"+boundary+"--"
	var lines []string
	for len(body) > 0 {
		n := bytes.IndexByte(body[:min(len(body), maxPartLine)], '\n') + 1
		if n == 0 {
			n = min(len(body), maxPartLine)
		}
		lines = append(lines, strings.TrimRight(string(body[:n]), "\r\n"))
		body = body[n:]
	}
	i := 0
	for ; i < len(lines); i++ {
		if strings.TrimRight(lines[i], " \t") == open {
			break
		}
	}
	if i == len(lines) {
		return
	}
	closed := false
	for i < len(lines) {
		if i+1 < len(lines) && !saFieldLine.MatchString(lines[i+1]) {
			pf.missingMIMEHeaders = true
		}
		i++
		inHeader := true
		for ; i < len(lines); i++ {
			l := strings.TrimRight(lines[i], " \t")
			if l == open || l == closing {
				break
			}
			if inHeader {
				if lines[i] == "" {
					inHeader = false
				} else if lines[i][0] != ' ' && lines[i][0] != '\t' && !saHeaderLine.MatchString(lines[i]) {
					pf.missingMIMEHeadBodySep = true
					inHeader = false
				}
			}
		}
		if i < len(lines) && strings.TrimRight(lines[i], " \t") == closing {
			closed = true
			for _, l := range lines[i+1:] {
				if strings.ContainsFunc(l, func(r rune) bool { return r != '.' && r != ' ' && r != '\t' && r != '\r' }) {
					pf.mimeEpilogue = true
					break
				}
			}
			break
		}
	}
	if !closed {
		pf.missingBoundary = true
	}
}

var (
	specQPEncoded  = regexp.MustCompile(`=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])`)
	specQPTrailing = regexp.MustCompile(`((?:=09|=20)+)\s*$`)
)

// specQPCount is MIMEEval's count of needless encodings in a line, by
// its regular expressions.
func specQPCount(line []byte) int {
	n := len(specQPEncoded.FindAll(line, -1))
	if n > 0 {
		if m := specQPTrailing.FindSubmatch(line); m != nil {
			n -= len(m[1]) / 3
		}
	}
	return n
}

func qpCount(line []byte) int {
	n := qpEncodedCount(line)
	if n > 0 {
		n -= qpTrailingBlanks(line)
	}
	return n
}

func checkScanMultipart(t *testing.T, body []byte, boundary string) {
	t.Helper()
	var got, want parseFlags
	scanMultipartBody(body, boundary, &got)
	specScanMultipart(body, boundary, &want)
	if got != want {
		t.Fatalf("boundary %q, body %q:\ngot  %+v\nwant %+v", boundary, trimForLog(body), got, want)
	}
}

func trimForLog(b []byte) []byte {
	if len(b) > 400 {
		return b[:400]
	}
	return b
}

var boundaryParam = regexp.MustCompile(`(?i)boundary="?([^";\r\n]+)`)

// multipartSamples are the corpora's messages with each boundary they
// declare, and generated bodies made of the lines that matter to the
// scan: delimiters with and without blanks, header fields good and bad,
// continuations, empty lines, dots and long lines.
func multipartSamples(t *testing.T) (bodies [][]byte, boundaries []string) {
	msgs := groupCorpus(t)
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for _, f := range files {
		if raw, err := os.ReadFile(f); err == nil {
			msgs = append(msgs, raw)
		}
	}
	for _, m := range msgs {
		for _, sm := range boundaryParam.FindAllSubmatch(m, -1) {
			bodies, boundaries = append(bodies, m), append(boundaries, string(sm[1]))
		}
	}
	rng := rand.New(rand.NewPCG(28, 29))
	pieces := []string{"--b", "--b--", "--b \t", "--b-- ", "--b\r", "--bb", "-b", "--b--x",
		"Content-Type: text/plain", "X-A : v", " folded", "\tfolded", "no field here", "",
		"...", ". .", ".", "x", "epilogue", ":bad", "a:b", strings.Repeat("y", maxPartLine+3)}
	ends := []string{"\r\n", "\n", "\r\r\n", ""}
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			b.WriteString(ends[rng.IntN(len(ends))])
		}
		bd := "b"
		if rng.IntN(8) == 0 {
			bd = "b "
		}
		bodies, boundaries = append(bodies, []byte(b.String())), append(boundaries, bd)
	}
	return bodies, boundaries
}

// The multipart scan, one line at a time, sets the flags the first
// version set, on real mail and on generated bodies.
func TestScanMultipartAgainstSpec(t *testing.T) {
	bodies, boundaries := multipartSamples(t)
	seen := map[parseFlags]bool{}
	for i, b := range bodies {
		checkScanMultipart(t, b, boundaries[i])
		var pf parseFlags
		scanMultipartBody(b, boundaries[i], &pf)
		seen[pf] = true
	}
	// The samples reach every flag, so agreement means something.
	var all parseFlags
	for pf := range seen {
		all.missingMIMEHeaders = all.missingMIMEHeaders || pf.missingMIMEHeaders
		all.missingMIMEHeadBodySep = all.missingMIMEHeadBodySep || pf.missingMIMEHeadBodySep
		all.mimeEpilogue = all.mimeEpilogue || pf.mimeEpilogue
		all.missingBoundary = all.missingBoundary || pf.missingBoundary
	}
	if !all.missingMIMEHeaders || !all.missingMIMEHeadBodySep || !all.mimeEpilogue || !all.missingBoundary {
		t.Errorf("samples set only %+v", all)
	}
}

func FuzzScanMultipart(f *testing.F) {
	f.Add([]byte("pre\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b--\r\n.\r\n"), "b")
	f.Add([]byte("--b \r\nno header\r\n--b\r\n\r\n--b-- \r\nepilogue"), "b")
	f.Add([]byte("--x y\r\nA: b\r\n c\r\nbad line\r\n--x y--"), "x y")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		if boundary == "" {
			return
		}
		checkScanMultipart(t, body, boundary)
	})
}

// The QP counts agree with MIMEEval's regular expressions.
func TestQPCountsAgainstRegexps(t *testing.T) {
	lines := [][]byte{
		[]byte("plain\r\n"), []byte("=3D=3d=3E=20\r\n"), []byte("a=20=09 \t\r\n"),
		[]byte("==20"), []byte("=2"), []byte("=7F=7E=0A=09=1F=41"), []byte("x=20y=20\n\f"),
		[]byte("=20=20=20"), []byte("=\r\n"), []byte("=2=20"),
	}
	rng := rand.New(rand.NewPCG(30, 31))
	alpha := "=0923DEF7A \t\r\nx"
	for range 50000 {
		b := make([]byte, rng.IntN(16))
		for i := range b {
			b[i] = alpha[rng.IntN(len(alpha))]
		}
		lines = append(lines, b)
	}
	nonzero := 0
	for _, l := range lines {
		got, want := qpCount(l), specQPCount(l)
		if got != want {
			t.Fatalf("%q: %d, want %d", l, got, want)
		}
		if want > 0 && qpTrailingBlanks(l) > 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Error("no sample has trailing encoded blanks")
	}
}

func FuzzQPCounts(f *testing.F) {
	f.Add([]byte("=3D=3E=20=09 \r\n"))
	f.Add([]byte("==20=7F=7E"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if got, want := qpCount(line), specQPCount(line); got != want {
			t.Fatalf("%q: %d, want %d", line, got, want)
		}
	})
}
