package rules

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestCutPart(t *testing.T) {
	for _, tc := range []struct {
		name, t string
		n       int
		seps    string
		want    string
	}{
		{"short", "abc", 5, "\n ", "abc"},
		{"exact", "abcde", 5, "\n ", "abcde"},
		{"off", "abcdefgh", 0, "\n ", "abcdefgh"},
		{"newline after n", "abcd efg\nhij", 3, "\n ", "abcd efg\n"},
		{"newline at n", "abc\ndef", 3, "\n ", "abc\n"},
		{"space when no newline", "abcd efghij", 3, "\n ", "abcd "},
		{"raw tries > before space", "ab cd>ef gh", 3, "\n> ", "ab cd>"},
		{"hard cut", "abcdefghij", 3, "\n ", "abc"},
		{"newline beyond the slack", "abc" + strings.Repeat("x", partScanSlack+1) + "\n", 3, "\n", "abc"},
		{"newline at the slack's edge", "abc" + strings.Repeat("x", partScanSlack) + "\nrest", 3, "\n", "abc" + strings.Repeat("x", partScanSlack) + "\n"},
	} {
		if got := cutPart(tc.t, tc.n, tc.seps); got != tc.want {
			t.Errorf("%s: cutPart(%.20q, %d) = %.40q, want %.40q", tc.name, tc.t, tc.n, got, tc.want)
		}
	}
}

// scanSizeMessage is a plain-text message whose one part is longer than
// SpamAssassin's body scan size: zqxearly on its first line, zqxnear on
// the line that holds byte 50,000 of the part (after that byte, before the
// line's end, where the cut falls), zqxlate some 4 KB beyond the cut.
func scanSizeMessage() string {
	line := strings.Repeat("hay ", 14) + "hay\n" // 60 bytes
	var b strings.Builder
	b.WriteString("From: a@example.org\nTo: b@example.net\nSubject: scan size\nDate: Tue, 1 Dec 2026 08:00:00 +0000\nMessage-ID: <scan@example.org>\n\n")
	for i := range 1000 {
		switch i {
		case 0:
			b.WriteString("zqxearly" + line[8:])
		case DefaultBodyPartScanBytes / len(line):
			b.WriteString(line[:40] + "zqxnear" + line[47:])
		case 900:
			b.WriteString("zqxlate" + line[7:])
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

const scanSizeRules = `body SCAN_EARLY /zqxearly/
score SCAN_EARLY 1
body SCAN_NEAR /zqxnear/
score SCAN_NEAR 1
body SCAN_LATE /zqxlate/
score SCAN_LATE 1
rawbody RAW_LATE /zqxlate/
score RAW_LATE 1
`

// TestBodyPartScanSize: a part longer than body_part_scan_size is cut for
// body rules where SpamAssassin cuts it, not for raw-body rules (their
// size is ten times larger); the .cf directive and Limits change it.
func TestBodyPartScanSize(t *testing.T) {
	raw := scanSizeMessage()
	for _, tc := range []struct {
		name  string
		extra string
		lim   Limits
		want  []string
	}{
		{"defaults", "", Limits{}, []string{"RAW_LATE", "SCAN_EARLY", "SCAN_NEAR"}},
		{"cf off", "body_part_scan_size 0\n", Limits{}, []string{"RAW_LATE", "SCAN_EARLY", "SCAN_LATE", "SCAN_NEAR"}},
		{"cf small", "body_part_scan_size 1000\nrawbody_part_scan_size 1000\n", Limits{}, []string{"SCAN_EARLY"}},
		{"limits off", "body_part_scan_size 1000\n", Limits{BodyPartScanBytes: -1}, []string{"RAW_LATE", "SCAN_EARLY", "SCAN_LATE", "SCAN_NEAR"}},
		{"limits small", "", Limits{BodyPartScanBytes: 1000, RawBodyPartScanBytes: 1000}, []string{"SCAN_EARLY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "scan.cf")
			if err := os.WriteFile(file, []byte(scanSizeRules+tc.extra), 0o644); err != nil {
				t.Fatal(err)
			}
			ev := eval(t, mustBuild(t, Config{Files: []string{file}, Limits: tc.lim}), filter.Envelope{}, raw)
			if got := names(ev); !slices.Equal(got, tc.want) {
				t.Fatalf("hits %v, want %v", got, tc.want)
			}
			if ev.Has(TruncatedSymbol) {
				t.Fatal("a part scan cut reported as truncation")
			}
		})
	}
}

// TestBodyPartScanSizeSpamAssassin: spamassassin -L cuts the same message
// where Portcullis does, with its default scan sizes and with the body's
// turned off.
func TestBodyPartScanSizeSpamAssassin(t *testing.T) {
	raw := scanSizeMessage()
	for _, extra := range []string{"", "body_part_scan_size 0\n"} {
		file := filepath.Join(t.TempDir(), "scan.cf")
		if err := os.WriteFile(file, []byte(scanSizeRules+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		sa := spamassassin(t, []string{file}, [][]byte{[]byte(raw)})[0]
		var want []string
		for name := range maps.Keys(sa.Hits) {
			if strings.HasPrefix(name, "SCAN_") || strings.HasPrefix(name, "RAW_") {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		if len(want) < 2 {
			t.Fatalf("%q: spamassassin found %v: the test message is wrong", extra, sa.Hits)
		}
		got := names(eval(t, mustBuild(t, Config{Files: []string{file}}), filter.Envelope{}, raw))
		if !slices.Equal(got, want) {
			t.Errorf("%q: Portcullis hits %v, spamassassin %v", extra, got, want)
		}
	}
}
