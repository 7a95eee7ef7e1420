package rules

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Kind is what a rule looks at.
type Kind string

// The rule kinds.
const (
	Header     Kind = "header"     // a named header (Field), or all headers (Field "" or "ALL")
	Body       Kind = "body"       // Subject plus decoded text parts, HTML rendered to text
	RawBody    Kind = "rawbody"    // decoded text parts, HTML as is
	Full       Kind = "full"       // the raw message
	URI        Kind = "uri"        // links in the bodies: Field "url" (default), "host" or "domain"
	Attachment Kind = "attachment" // Field "name" (default), "type" (detected) or "content-type"
	Envelope   Kind = "envelope"   // Field "from", "rcpt", "helo" or "ip"
	Meta       Kind = "meta"       // a boolean expression over other rules
)

var kinds = []Kind{Header, Body, RawBody, Full, URI, Attachment, Envelope, Meta}

// Test is how a rule's values are tested.
type Test string

// Tests other than matching. The zero Test matches Regex or Literal.
const (
	Match  Test = ""       // a value matches Regex / Literal / CIDR
	Exists Test = "exists" // the header, attachment or envelope field is present
	Absent Test = "absent" // it is not
)

// Rule is one rule as written in a rule file: what to look at, how to test
// it, and what a hit is worth.
//
// A rule with several values to test (headers that occur twice,
// recipients, links, attachments) hits when any value matches; with
// Negate it hits when none does.
type Rule struct {
	Name        string
	Kind        Kind
	Field       string // see Kind
	Regex       string // Go (RE2) syntax
	Literal     string // a plain substring, instead of Regex
	NoCase      bool   // match Regex or Literal ignoring case
	Negate      bool   // hit when no value matches (SpamAssassin's !~)
	Test        Test
	CIDR        []string // for Envelope "ip": hit when the client IP is in one
	Domains     []string // for URI "domain"/"host" and Envelope "from"/"rcpt": exact (sub)domains
	Expr        string   // for Meta
	IfUnset     *string  // for Header: the value tested when the header is missing (nil: no value)
	Score       float64
	Description string

	File string // where the rule was defined, for errors and reports
	Line int

	quiet     bool           // a SpamAssassin rule scored 0: evaluated for meta rules, never reported
	sa        bool           // imported from SpamAssassin: its header semantics (saheader.go)
	evalFn    evalFunc       // for kindEval: a SpamAssassin eval: function (saeval.go)
	backtrack bool           // Regex is for regexp2, not RE2 (perlbytes.go)
	bytes     bool           // Regex matches bytes: pattern and values read as Latin-1 (perlbytes.go)
	compiled  *regexp.Regexp // Regex compiled by the SpamAssassin import's check, or nil: compileRule reuses it
	noSubject bool           // a body rule that does not see the Subject line (tflags nosubject)
}

// Thresholds turn a set's score into an action, for the regression gate
// and for callers that use a set on its own. In a pipeline the Policy
// decides; give it the same numbers.
type Thresholds struct {
	AddHeader  float64 `yaml:"add-header"`
	Quarantine float64 `yaml:"quarantine"`
	Reject     float64 `yaml:"reject"`
}

// DefaultThresholds are those of filter.DefaultPolicy.
func DefaultThresholds() Thresholds {
	p := filter.DefaultPolicy()
	return Thresholds{AddHeader: p.AddHeaderScore, Quarantine: p.QuarantineScore, Reject: p.RejectScore}
}

// Action returns the action a score reaches.
func (t Thresholds) Action(score float64) filter.Action {
	switch {
	case t.Reject != 0 && score >= t.Reject:
		return filter.Reject
	case t.Quarantine != 0 && score >= t.Quarantine:
		return filter.Quarantine
	case t.AddHeader != 0 && score >= t.AddHeader:
		return filter.AddHeader
	}
	return filter.Accept
}

// Errors, matched with errors.Is.
var (
	ErrSyntax    = errors.New("rules: syntax error")
	ErrInvalid   = errors.New("rules: invalid rule")
	ErrDuplicate = errors.New("rules: duplicate rule name")
	ErrCycle     = errors.New("rules: meta rules form a cycle")
	ErrUnknown   = errors.New("rules: unknown rule")
	ErrLimit     = errors.New("rules: limit exceeded")
	ErrGate      = errors.New("rules: regression gate refused the set")
	ErrNoFiles   = errors.New("rules: no rule files")
	// ErrReadTimeout: a rule file that is not a regular file gave nothing
	// within Limits.MaxReadTime.
	ErrReadTimeout = errors.New("rules: rule file read timed out")
	ErrNotReady    = fmt.Errorf("rules: no rule set loaded: %w", filter.ErrNotReady)
	// ErrLoading is Ready's answer while the first set is being read
	// (LoadInBackground); it wraps ErrNotReady.
	ErrLoading = fmt.Errorf("rules: loading: %w", ErrNotReady)
)

// LoadError is a fault in a rule file, named by file and line.
type LoadError struct {
	File string
	Line int    // 0 when the fault is not at one line
	Rule string // "" when not about one rule
	Err  error
}

func (e *LoadError) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if where == "" {
		where = "rules"
	}
	if e.Rule != "" {
		return fmt.Sprintf("%s: rule %s: %v", where, e.Rule, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

func ruleErr(r *Rule, err error) error {
	return &LoadError{File: r.File, Line: r.Line, Rule: r.Name, Err: err}
}

// Limits bound what a rule file may cost to load and a message to scan.
// Zero means the default.
type Limits struct {
	// MaxFileBytes bounds one rule file (and one corpus message). Default 16 MiB.
	MaxFileBytes int64
	// MaxRegexBytes bounds one regular expression. Default 64 KiB.
	MaxRegexBytes int
	// MaxRules bounds the rules of a set. Default 100,000.
	MaxRules int
	// MaxScanBytes bounds each text scanned in a message (the body, the raw
	// body, the full message); beyond it the text is cut and the result
	// carries RULES_TRUNCATED. Default 4 MiB.
	MaxScanBytes int
	// BodyPartScanBytes and RawBodyPartScanBytes are how much of each
	// text part body and raw-body rules see (scansize.go). Zero takes
	// SpamAssassin's body_part_scan_size and rawbody_part_scan_size from
	// the rule files, else their defaults (50,000 and 500,000); negative
	// scans parts whole.
	BodyPartScanBytes    int
	RawBodyPartScanBytes int
	// MaxReadTime bounds reading one rule file that is not a regular file
	// (a pipe, a device); past it the load fails with ErrReadTimeout and
	// the current set stays. Default 30 s.
	MaxReadTime time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 16 << 20
	}
	if l.MaxReadTime <= 0 {
		l.MaxReadTime = 30 * time.Second
	}
	if l.MaxRegexBytes <= 0 {
		l.MaxRegexBytes = 64 << 10
	}
	if l.MaxRules <= 0 {
		l.MaxRules = 100_000
	}
	if l.MaxScanBytes <= 0 {
		l.MaxScanBytes = 4 << 20
	}
	return l
}
