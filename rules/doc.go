// Package rules scores messages with rules: regular expressions and tests
// over headers, bodies, links, attachments and the envelope, combined by
// meta rules, each hit a filter.Symbol with a score.
//
// # Rules
//
// A rule looks at one Kind of value: a named header or all of them
// (RFC 5322 fields, RFC 2047 encoded words decoded; SpamAssassin's
// ":raw", ":addr" and ":name" modifiers select the undecoded value, the
// addresses or the display names), the body (Subject plus the decoded
// text parts, HTML rendered to the text a reader sees, the lines of a
// paragraph joined), the raw body, the full raw message, the links of the
// bodies (by URL, host or registrable domain, found by the same extractor
// as the URI blocklists), attachments (by name, declared content type, or
// the type detected from their first bytes) and the envelope (MAIL FROM,
// RCPT TO, HELO, the client IP against CIDR blocks). Meta rules combine
// other rules with &&, ||, !, parentheses, sums and comparisons:
// "(A + B + C) >= 2". Rule files are YAML (below); SpamAssassin ".cf"
// files import into the same engine.
//
// # Rule files
//
// A rule file is a YAML mapping with four keys, each optional; any other
// key, and any unknown key of a rule or a sample, is refused with its file
// and line:
//
//	thresholds: {add-header: 5, quarantine: 10, reject: 15}
//	scores: {SOME_RULE: 2.5}     # change the score of a rule from any file
//	rules:
//	  - name: SUBJECT_WIN        # required, unique in the set: the symbol's name
//	    kind: header             # header body rawbody full uri attachment envelope meta
//	    field: Subject           # which value of the kind (below)
//	    regex: '(?i)\byou (have )?won\b'
//	    score: 2.5
//	    description: Subject claims a prize
//	corpus:                      # the regression gate's samples, paths relative to the file
//	  - file: corpus/prize.eml
//	    expect: add-header       # accept add-header quarantine reject ...
//	    envelope: {from: a@example.com, rcpt: [b@example.org], helo: mx.example.com, ip: 192.0.2.1}
//
// A rule's keys:
//
//   - name, kind, score, description: what every rule has. A hit is a
//     filter.Symbol named name with this score and description.
//   - field: for header, the field name ("" or "ALL": every field); for
//     uri, "url" (the default), "host" or "domain" (registrable domain);
//     for attachment, "name" (the default), "type" (detected from the
//     content) or "content-type" (declared); for envelope, "from", "rcpt",
//     "helo" or "ip". body, rawbody and full have none.
//   - regex: Go (RE2) syntax, matched against each value; or literal, a
//     plain substring. nocase: true ignores case for either.
//   - negate: true hits when no value matches (SpamAssassin's !~).
//   - test: exists or absent, instead of a match: the header, attachment
//     or envelope field is there, or is not.
//   - if-unset: for header, the value tested when the field is missing
//     (without it, a missing field matches nothing).
//   - cidr: for envelope ip, a list of blocks; hits when the client IP is
//     in one. domains: for uri host/domain and envelope from/rcpt, a list
//     of domains, matched exactly or as a parent domain.
//   - expr: for meta, an expression over other rules' names (a hit is 1,
//     a miss 0): &&, ||, !, parentheses, + and comparisons, e.g.
//     "(MISSING_DATE + MISSING_FROM) >= 2". It may name rules of other
//     files; a name no file defines, or a cycle, refuses the set.
//
// A set is the files given together (Config.Files, in order, plus the
// embedded default when Config.Default): a later file's scores override
// earlier ones, the last thresholds given are the set's (default: those of
// filter.DefaultPolicy; they decide the regression gate's verdicts, while
// in a pipeline the Policy decides), and the corpora add up.
// default/default.yaml is a documented example of most kinds. A file larger than
// Limits.MaxFileBytes, a regex longer than Limits.MaxRegexBytes or a set
// of more than Limits.MaxRules is refused (ErrLimit).
//
// # Matching at scale
//
// Regular expressions are Go's (RE2: linear time, no catastrophic
// backtracking). Running thousands of them over every message would cost
// rules × bytes, so each regex is analysed (regexp/syntax) for literals of
// which every match must contain one; a single Aho-Corasick pass over each
// text finds which literals occur, and only the rules whose literals
// occurred are run. Rules without a usable literal run on every message;
// Set.PrefilterStats says how many there are; the plain body and raw-body
// ones run in groups, one automaton pass a line for up to 16 of them
// (group.go). The prefilter folds ASCII
// case and never changes a result, only the work done (the tests check
// both ways agree).
//
// # SpamAssassin import
//
// header, body, rawbody, full, uri, meta, score, describe and tflags are
// read; Perl regexes are translated to RE2 where the meaning is kept (/i
// /m /s /x, \Z, \h, \R, comments). Regexes with look-around,
// back-references or atomic groups run on a backtracking engine
// (github.com/dlclark/regexp2) with a time limit per match, behind the
// literal prefilter and an RE2 superset of the pattern; regexes with byte
// escapes read the text as bytes (perlbytes.go). The Received lines are
// parsed into SpamAssassin's relays and X-Spam-Relays-* pseudo-headers
// (sarelay.go), and the eval: functions that carry points are ported
// (saeval*.go). What cannot run is skipped and counted by reason in the
// set's LoadReport, never silently: eval functions not ported, mimeheader
// rules, body regexes that need the slower engines but offer no literal
// to the prefilter, and meta rules that use any of them. Rules
// SpamAssassin itself does not run without Bayes and network tests (score
// 0 in score set 0, tflags net or learn) are kept as never hitting.
//
// Imported header rules test the string SpamAssassin's do (saheader.go):
// the values of repeated fields joined, each ended by a newline; "ALL"
// with the field names as written; the pseudo-headers "ALL", "MESSAGEID"
// (matched case-sensitively), "ToCc" and "EnvelopeFrom"; and a missing
// header tested as "" or the rule's [if-unset:] value. A rule without a
// score line scores 1 (T_ rules 0.01), negated for tflags nice, as in
// SpamAssassin's Conf/Parser.pm. The tests compare these answers with
// spamassassin's own on the same rule files and messages.
//
// # Which rules by default
//
// Config.SpamAssassin names a directory of SpamAssassin rules; the
// configuration every example binary embeds points it at Debian's
// /usr/share/spamassassin (SpamAssassinDir also finds a newer sa-update
// download), alongside the embedded hand-written set (names prefixed
// PC_). The rules are loaded from the package the README's set-up
// installs rather than copied into this repository: the distribution
// updates them (and sa-update can), the differential tests compare
// Portcullis with spamassassin on exactly the files spamassassin reads,
// and the repository carries no 3 MB snapshot that would age and need a
// refresh script and a second licence notice. A machine without the
// package fails to load the set, naming the directory and the package
// (ErrNoFiles), rather than running without it. When both sets are
// loaded, the embedded rules that make a check SpamAssassin's make too
// (GTUBE, missing headers, all-caps Subject...) are left out so that no
// check counts twice, and the embedded corpus, whose verdicts are those
// of the embedded set alone, does not gate the combination.
//
// # No early stop
//
// rspamd stops evaluating a message once its score passes the reject
// threshold. Evaluate runs every rule the prefilter lets through, on
// every message, for three reasons. A verdict explains itself: every
// symbol that hit is in it, in the quarantine console and in a re-scan.
// A score can still fall: the default set with SpamAssassin's rules has
// 30 rules with negative scores (-228 in all; a welcome list's -100 among
// them), and the pipeline adds the other stages' scores, so no rule set
// alone knows when the verdict is settled. And the cost that matters is
// clean mail's, which never reaches the threshold: the benchmark tiers
// score 1.3 to 3.5 against a reject threshold of 15, so stopping there
// would not change them. What bounds the time is Limits.MaxScanBytes and
// the pipeline's per-filter timeout (filter.FilterPolicy.Timeout).
//
// # Hot reload and failure semantics
//
// An Engine serves one compiled Set behind an atomic pointer: a Check
// loads it once and sees that whole set, while Reload (through the API,
// on a signal with ReloadOnSignal, or on file change with Watch) builds a
// new one aside. A set that does not compile, or that changes the verdict
// of any sample in its regression corpus (the Gate), is refused: the old
// set keeps serving, and the refusal is returned, logged and counted
// (portcullis_rules_reloads_total{result="failed"}). Errors name the file
// and line. An Engine is not Ready (filter.Readier) until a set has
// loaded, so a gateway tempfails rather than passes mail unscored. A text
// longer than Limits.MaxScanBytes is scanned up to the limit and the
// result carries RULES_TRUNCATED, so a cut is visible. Body and raw-body
// rules see only the first 50,000 and 500,000 bytes of each text part, as
// SpamAssassin's body_part_scan_size and rawbody_part_scan_size (read
// from .cf files; Limits overrides): that is SpamAssassin's answer, not a
// truncation.
//
// Per-rule evaluations, hits and time spent are kept across reloads
// (Engine.Stats) to find slow rules.
package rules
