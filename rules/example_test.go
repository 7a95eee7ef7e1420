package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

func Example() {
	e := rules.Default()
	raw := "From: Sender <sender@example.net>\r\nSubject: test\r\nDate: Wed, 23 Jul 2003 23:30:00 +0200\r\n" +
		"Message-ID: <gtube@example.net>\r\n\r\n" +
		"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
	m := filter.NewMessageBytes(filter.Envelope{Helo: "mail.example.net"}, []byte(raw), filter.Limits{})
	res, err := e.Check(context.Background(), m)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range res.Symbols {
		fmt.Println(s.Name, s.Score)
	}
	// Output: PC_GTUBE 1000
}

func ExampleLoad() {
	dir, _ := os.MkdirTemp("", "rules-example")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "local.yaml")
	os.WriteFile(file, []byte(`
rules:
  - name: INVOICE_ZIP
    kind: attachment
    field: name
    regex: '(?i)invoice.*\.zip$'
    score: 3
    description: a zipped "invoice"
  - name: URGENT_SUBJECT
    kind: header
    field: Subject
    regex: '(?i)\burgent\b'
    score: 1
  - name: URGENT_INVOICE
    kind: meta
    expr: INVOICE_ZIP && URGENT_SUBJECT
    score: 2
`), 0o644)
	e, err := rules.Load(file)
	if err != nil {
		fmt.Println(err)
		return
	}
	raw := "Subject: URGENT payment\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/zip; name=\"Invoice-0042.zip\"\r\n\r\nPK\r\n--b--\r\n"
	res, _ := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}))
	for _, s := range res.Symbols {
		fmt.Printf("%s %.1f\n", s.Name, s.Score)
	}
	// Output:
	// INVOICE_ZIP 3.0
	// URGENT_SUBJECT 1.0
	// URGENT_INVOICE 2.0
}

func ExampleGate() {
	dir, _ := os.MkdirTemp("", "rules-gate")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "spam.eml"), []byte("Subject: win\r\n\r\nyou have won a prize\r\n"), 0o644)
	write := func(score string) string {
		f := filepath.Join(dir, "rules.yaml")
		os.WriteFile(f, []byte(`
thresholds: {add-header: 5}
rules:
  - {name: WON, kind: body, regex: '(?i)\byou have won\b', score: `+score+`}
corpus:
  - {file: spam.eml, expect: add-header}
`), 0o644)
		return f
	}
	e := rules.New(rules.Config{Files: []string{write("6")}})
	fmt.Println("first load:", e.Reload(context.Background()))
	write("2") // an update that would let the spam through
	fmt.Println("update:", e.Reload(context.Background()))
	// Output:
	// first load: <nil>
	// update: rules: regression gate refused the set: 1 of 1 samples changed verdict:
	//   spam.eml: expected add-header, got accept (score 2.00, was 6.00); now hitting WON(2.00); no longer hitting WON(6.00)
}

// SpamAssassin rules run with SpamAssassin's semantics: here a
// look-around rule (on the backtracking engine), a rule that matches
// bytes, and one that reads the relays parsed from the Received lines.
func ExampleBuild_spamAssassin() {
	dir, _ := os.MkdirTemp("", "sa")
	defer os.RemoveAll(dir)
	cf := filepath.Join(dir, "local.cf")
	os.WriteFile(cf, []byte(`
body   CHEAP_PILLS  /\bcheap(?= pills)/
score  CHEAP_PILLS  2.5
body   ZERO_WIDTH   /zero\xe2\x80\x8bwidth/
header RDNS_NONE    X-Spam-Relays-Untrusted =~ /^[^\]]+ rdns= /
`), 0o600)
	s, err := rules.Build(rules.Config{Files: []string{cf}})
	if err != nil {
		fmt.Println(err)
		return
	}
	raw := "Received: from spammer (unknown [203.0.113.5]) by mx.example.org with SMTP id 1\r\n" +
		"Subject: hi\r\n\r\ncheap pills, zero\u200bwidth\r\n"
	ev, _ := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}))
	for _, sym := range ev.Symbols {
		fmt.Println(sym.Name, sym.Score)
	}
	// Output:
	// CHEAP_PILLS 2.5
	// ZERO_WIDTH 1
	// RDNS_NONE 1
}
