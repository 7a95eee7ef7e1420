// Command rulecheck runs the rules regression gate from the command line,
// for rule authors and their CI: it compiles a candidate rule set, scores
// every sample of its corpus, and fails when any sample's action is not
// the one expected, naming the rules that made the difference.
//
//	rulecheck [-default] [-corpus manifest.yaml]... [-base FILE]... [-v] [-slow N] FILE...
//	rulecheck publish -nats URL [-bucket NAME] [-corpus manifest.yaml]... FILE...
//	rulecheck publish-zone -nats URL -zone NAME [-bucket NAME] [-max-bytes N] FILE
//
// FILE are rule files (".cf" for SpamAssassin, else YAML); their corpus:
// sections and each -corpus manifest make the corpus. With -base, the
// rules currently deployed, each change lists the rules that hit
// differently. Exit status: 0 every verdict as expected, 1 a verdict
// changed, 2 the set or corpus did not load.
//
// publish runs the same gate and, only when it passes, publishes the rule
// files and their corpus samples to the fleet's JetStream KV bucket
// (package fleet), where every gateway with rules.source nats picks the
// new version up, gates it again and swaps it in.
//
// publish-zone reads FILE as an rbldnsd ip4set zone and, only when it
// reads whole, publishes it as the zone NAME to the fleet's object store
// (package fleet), where every gateway whose dns.zones lists NAME loads
// it and answers that dnsbl list from memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "publish" {
		return publish(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "publish-zone" {
		return publishZone(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("rulecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var corpora, base list
	withDefault := fs.Bool("default", false, "include the embedded default rule set")
	fs.Var(&corpora, "corpus", "corpus manifest (YAML with a corpus: list); repeatable")
	fs.Var(&base, "base", "rule file of the set currently deployed, to name what changed; repeatable")
	verbose := fs.Bool("v", false, "print every sample's score, action and hits")
	slow := fs.Int("slow", 0, "print the N rules that took longest over the corpus")
	usage := func() {
		fmt.Fprint(stderr, `usage: rulecheck [-default] [-corpus manifest.yaml]... [-base FILE]... [-v] [-slow N] FILE...

Compiles a candidate rule set (FILE: YAML rule files, or SpamAssassin .cf),
scores every sample of its corpus (the files' corpus: sections and each
-corpus manifest), and fails when a sample's action is not the one expected.

Flags:
`)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fmt.Fprint(stderr, `
Exit status:
  0  every sample's verdict as expected
  1  a verdict changed (the rules that made the difference are named)
  2  the set or the corpus did not load, or a bad command line

Example:
  rulecheck -default -base /etc/portcullis/local.yaml -corpus corpus/manifest.yaml local.yaml

To the fleet (rulecheck publish -h, rulecheck publish-zone -h):
  rulecheck publish -nats nats://127.0.0.1:4222 local.yaml
  rulecheck publish-zone -nats nats://127.0.0.1:4222 -zone bl.example bl.example.zone
`)
	}
	// Parse quietly, then say a bad flag once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return 0
		}
		fmt.Fprintf(stderr, "rulecheck: %v (rulecheck -h lists the flags)\n", err)
		return 2
	}
	if fs.NArg() == 0 && !*withDefault {
		usage()
		return 2
	}
	cand, err := rules.Build(rules.Config{Files: fs.Args(), Default: *withDefault})
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: candidate set refused:\n%v\n", err)
		return 2
	}
	if rep := cand.Report(); rep.Imported > 0 || len(rep.Skipped) > 0 {
		fmt.Fprintln(stdout, rep)
	}
	corpus := cand.Corpus()
	for _, c := range corpora {
		samples, err := rules.ReadCorpus(c)
		if err != nil {
			fmt.Fprintf(stderr, "rulecheck: %v\n", err)
			return 2
		}
		corpus = append(corpus, samples...)
	}
	if len(corpus) == 0 {
		fmt.Fprintln(stderr, "rulecheck: no corpus: list samples in a corpus: section or give -corpus")
		return 2
	}
	var current *rules.Set
	if len(base) > 0 {
		if current, err = rules.Build(rules.Config{Files: base, Default: *withDefault}); err != nil {
			fmt.Fprintf(stderr, "rulecheck: base set refused:\n%v\n", err)
			return 2
		}
	}
	ctx := context.Background()
	if *verbose {
		for _, s := range corpus {
			ev, err := cand.Evaluate(ctx, filter.NewMessageBytes(s.Envelope, s.Raw, filter.Limits{}))
			if err != nil {
				fmt.Fprintf(stderr, "rulecheck: %v\n", err)
				return 2
			}
			fmt.Fprintf(stdout, "%-40s %8.2f %-10s (expect %s)", s.Name, ev.Score, ev.Action, s.Expect)
			for _, sym := range ev.Symbols {
				fmt.Fprintf(stdout, " %s", sym.Name)
			}
			fmt.Fprintln(stdout)
		}
	}
	rep, err := rules.Gate(ctx, current, cand, corpus)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	if *slow > 0 {
		fmt.Fprintln(stdout, "slowest rules:")
		for i, st := range cand.Stats() {
			if i >= *slow {
				break
			}
			fmt.Fprintf(stdout, "  %-40s %10v %6d runs %6d hits\n", st.Name, st.Time, st.Evaluations, st.Hits)
		}
	}
	fmt.Fprintln(stdout, rep)
	if !rep.OK() {
		return 1
	}
	return 0
}
