package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// words is the vocabulary of generated rules and messages.
var genWords = func() []string {
	r := rand.New(rand.NewPCG(42, 42))
	out := make([]string, 3000)
	for i := range out {
		n := 4 + r.IntN(6)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		out[i] = string(b)
	}
	return out
}()

// generatedRules returns n rules in the shapes real rule sets use:
// phrases, alternations, case-insensitive words with gaps, character
// classes; one in noLiteralEvery (0: none) has no literal and so runs on
// every line of every message.
func generatedRules(n int, seed uint64, noLiteralEvery int) (string, int) {
	r := rand.New(rand.NewPCG(seed, 1))
	w := func() string { return genWords[r.IntN(len(genWords))] }
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		var re string
		switch i % 6 {
		case 0:
			re = fmt.Sprintf(`(?i)\b%s %s\b`, w(), w())
		case 1:
			re = fmt.Sprintf(`\b(?:%s|%s|%s)\b`, w(), w(), w())
		case 2:
			re = fmt.Sprintf(`(?i)%s\W{0,3}%s`, w(), w())
		case 3:
			x := w()
			re = fmt.Sprintf(`%s[0-9]{2,4}%s`, x[:2], w())
		case 4:
			re = fmt.Sprintf(`(?i)%s(?:ing|ed|s)?\b`, w())
		case 5:
			if noLiteralEvery > 0 && i%noLiteralEvery == 5 {
				re = `\b[A-Z]{20,}\b` // no literal: always runs
			} else {
				re = fmt.Sprintf(`%s.{0,20}%s`, w(), w())
			}
		}
		fmt.Fprintf(&b, "  - {name: GEN_%05d, kind: body, regex: '%s', score: 0.1}\n", i, re)
	}
	return b.String(), n
}

// textWords is the vocabulary of ordinary text, apart from the rules'.
var textWords = func() []string {
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]string, 5000)
	for i := range out {
		n := 2 + r.IntN(8)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		out[i] = string(b)
	}
	return out
}()

// generatedMessage is a text/plain message of about size bytes: lines of
// 70 characters in paragraphs of five lines, ordinary words with one in
// ruleShare drawn from the rules' vocabulary (so some rules hit, as on
// real mail, where most text is not what rules look for).
func generatedMessage(size int, seed uint64) string { return generatedMessageShare(size, seed, 25) }

// generatedMessageShare is generatedMessage with one word in ruleShare
// from the rules' vocabulary.
func generatedMessageShare(size int, seed uint64, ruleShare int) string {
	r := rand.New(rand.NewPCG(seed, 2))
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nTo: b@example.net\r\nSubject: generated\r\nDate: Mon, 3 Mar 2025 09:00:00 +0000\r\nMessage-ID: <g@example.com>\r\n\r\n")
	col, lines := 0, 0
	for b.Len() < size {
		word := textWords[r.IntN(len(textWords))]
		if r.IntN(ruleShare) == 0 {
			word = genWords[r.IntN(len(genWords))]
		}
		if r.IntN(20) == 0 {
			word = strings.ToUpper(word)
		}
		b.WriteString(word)
		col += len(word) + 1
		if col > 70 {
			b.WriteString("\r\n")
			col = 0
			if lines++; lines%5 == 0 {
				b.WriteString("\r\n")
			}
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteString("\r\n")
	return b.String()
}
