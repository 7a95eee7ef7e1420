package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// saResult is what SpamAssassin found in one message.
type saResult struct {
	Index int // the message's place in the input
	Score float64
	Hits  map[string]float64 // rule → score, rules SpamAssassin reports (score ≠ 0)
}

// saHarnessCF makes spamassassin add one header listing every rule that
// hit with its score, and leave the message otherwise as it was.
const saHarnessCF = `report_safe 0
clear_headers
add_header all Tests _SCORE_ _TESTSSCORES(,)_
`

// spamassassin runs "spamassassin -L -t --mbox" once over msgs with the
// rule files given (in that order, as SpamAssassin's rule directory) and
// the site configuration Debian installs (/etc/spamassassin: the .pre
// files that load the plugins), and returns one result per message.
// Messages are passed as an mbox: "From " lines in them must already be
// escaped (see mboxEscape) so that both sides see the same bytes.
func spamassassin(t testing.TB, files []string, msgs [][]byte) []saResult {
	t.Helper()
	bin := testsvc.LookPath(t, "spamassassin", "apt-get install -y spamassassin")
	dir := t.TempDir()
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		// A numbered name keeps the order; SpamAssassin reads a directory's
		// .cf files sorted by name.
		if err := os.Symlink(abs, filepath.Join(dir, strconv.Itoa(10000+i)+"_"+filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "99999_harness.cf"), []byte(saHarnessCF), 0o644); err != nil {
		t.Fatal(err)
	}
	prefs := filepath.Join(dir, "user_prefs")
	if err := os.WriteFile(prefs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for i, m := range msgs {
		// spamassassin takes an mbox's messages in no fixed order; the
		// separator, which rules do not see, says which one this is.
		fmt.Fprintf(&in, "From harness-%d@example.invalid Thu Jan  1 00:00:00 1970\n", i)
		in.Write(m)
		if !bytes.HasSuffix(m, []byte("\n")) {
			in.WriteByte('\n')
		}
	}
	cmd := exec.Command(bin, "-L", "-t", "--mbox", "--siteconfigpath=/etc/spamassassin", "-C", dir, "-p", prefs)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spamassassin: %v\n%s", err, stderr.String())
	}
	got := parseSATests(out)
	res := make([]saResult, len(msgs))
	seen := 0
	for _, r := range got {
		if r.Index < 0 || r.Index >= len(msgs) || res[r.Index].Hits != nil {
			t.Fatalf("spamassassin's output has message %d twice or out of range", r.Index)
		}
		res[r.Index] = r
		seen++
	}
	if seen != len(msgs) {
		t.Fatalf("spamassassin reported on %d of %d messages\n%s", seen, len(msgs), stderr.String())
	}
	return res
}

// parseSATests reads the X-Spam-Tests headers of spamassassin's output in
// order.
func parseSATests(out []byte) []saResult {
	var res []saResult
	var cur *strings.Builder
	index := -1
	flush := func() {
		if cur == nil {
			return
		}
		f := strings.Fields(cur.String())
		r := saResult{Index: index, Hits: map[string]float64{}}
		if len(f) > 0 {
			r.Score, _ = strconv.ParseFloat(f[0], 64)
		}
		for _, f := range f[1:] {
			for _, kv := range strings.Split(f, ",") {
				name, score, ok := strings.Cut(kv, "=")
				if !ok {
					continue // "none"
				}
				r.Hits[name], _ = strconv.ParseFloat(score, 64)
			}
		}
		res = append(res, r)
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "From harness-"); ok {
			flush()
			index = -1
			if i := strings.IndexByte(n, '@'); i > 0 {
				index, _ = strconv.Atoi(n[:i])
			}
			continue
		}
		switch {
		case cur != nil && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			cur.WriteString(line)
		case strings.HasPrefix(line, "X-Spam-Tests: "):
			flush()
			cur = &strings.Builder{}
			cur.WriteString(strings.TrimPrefix(line, "X-Spam-Tests: "))
		default:
			flush()
		}
	}
	flush()
	return res
}

// mboxEscape makes a message safe to put in an mbox: LF line ends, a
// leading mbox "From " line dropped (as spamassassin drops it from a
// file), and "From " at the start of a line quoted as ">From ".
func mboxEscape(raw []byte) []byte {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) {
			lines[i] = append([]byte(">"), l...)
		}
	}
	return bytes.Join(lines, nil)
}
