package rules_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

// A rule file with one rule of most kinds, and a meta rule over them; then
// a file with a misspelt key, refused with its line.
func Example_ruleFile() {
	dir, _ := os.MkdirTemp("", "rules-format")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "local.yaml")
	os.WriteFile(file, []byte(`
thresholds: {add-header: 4, reject: 10}
rules:
  - {name: NO_DATE, kind: header, field: Date, test: absent, score: 1}
  - {name: LIST_UNSUB_MISSING, kind: header, field: List-Unsubscribe, regex: '^$', if-unset: '', score: 0.5}
  - {name: PRIZE, kind: body, literal: "you have won", nocase: true, score: 2}
  - {name: SHORT_LINK, kind: uri, field: host, domains: [bit.ly], score: 1.5}
  - {name: EXE_ATTACHED, kind: attachment, field: name, regex: '(?i)\.exe$', score: 3}
  - {name: FROM_TESTNET, kind: envelope, field: ip, cidr: [192.0.2.0/24], score: 0.5}
  - {name: PRIZE_COMBO, kind: meta, expr: '(NO_DATE + PRIZE + SHORT_LINK) >= 2', score: 2,
     description: a prize claim with another sign}
`), 0o644)
	e, err := rules.Load(file)
	if err != nil {
		fmt.Println(err)
		return
	}
	raw := "From: a@example.net\r\nSubject: hello\r\n\r\nYou have WON! Claim at https://bit.ly/x\r\n"
	env := filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.7")}
	res, _ := e.Check(context.Background(), filter.NewMessageBytes(env, []byte(raw), filter.Limits{}))
	for _, s := range res.Symbols {
		fmt.Printf("%s %.1f\n", s.Name, s.Score)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: X\n    kind: body\n    regexp: 'x'\n"), 0o644)
	_, err = rules.Load(bad)
	fmt.Println(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	// Output:
	// NO_DATE 1.0
	// LIST_UNSUB_MISSING 0.5
	// PRIZE 2.0
	// SHORT_LINK 1.5
	// FROM_TESTNET 0.5
	// PRIZE_COMBO 2.0
	// bad.yaml:4: rules: syntax error: unknown key "regexp"
}
