package filter

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FailMode is what a filter's error or timeout turns into. Whatever the
// mode, the pipeline adds a visible NAME_FAIL symbol and counts the failure:
// an error is never silently clean.
type FailMode int

const (
	// FailTempfail answers 4xx: the sender keeps the mail and retries.
	// It is the zero value and the default.
	FailTempfail FailMode = iota
	// FailOpen goes on without the filter's verdict; only the NAME_FAIL
	// symbol (and its score, see FilterPolicy.FailScore) records it.
	FailOpen
	// FailQuarantine keeps the mail in quarantine for a later re-scan.
	FailQuarantine
)

var failModeNames = [...]string{FailTempfail: "tempfail", FailOpen: "open", FailQuarantine: "quarantine"}

func (f FailMode) String() string {
	if f < 0 || int(f) >= len(failModeNames) {
		return "failmode(" + strconv.Itoa(int(f)) + ")"
	}
	return failModeNames[f]
}

// MarshalText implements encoding.TextMarshaler.
func (f FailMode) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText accepts "tempfail", "open" (or "fail-open") and "quarantine".
func (f *FailMode) UnmarshalText(b []byte) error {
	s := strings.TrimPrefix(strings.ToLower(string(b)), "fail-")
	for i, n := range failModeNames {
		if s == n {
			*f = FailMode(i)
			return nil
		}
	}
	return fmt.Errorf("filter: unknown failure mode %q", b)
}

// action is the action a failure in this mode demands.
func (f FailMode) action() Action {
	switch f {
	case FailOpen:
		return Accept
	case FailQuarantine:
		return Quarantine
	}
	return Tempfail
}

// FilterPolicy is the per-filter part of a Policy.
type FilterPolicy struct {
	Timeout   time.Duration // 0 means Policy.Timeout
	OnError   FailMode      // what an error or timeout demands
	FailScore float64       // score of the NAME_FAIL symbol
}

// Policy turns evidence into an action. Detection (filters) stays apart from
// the decision (policy): the same symbols can mean add-header for one site
// and reject for another.
//
// The zero Policy has no score thresholds (only demanded actions count),
// a 30 s timeout per filter, FailTempfail for every filter, and quarantines
// messages that exceed a parse limit. DefaultPolicy has thresholds.
type Policy struct {
	// Score thresholds: a total score at or above one yields its action.
	// Zero disables a threshold.
	AddHeaderScore  float64
	QuarantineScore float64
	RejectScore     float64

	// Timeout bounds each filter's Check; 0 means 30 s.
	Timeout time.Duration
	// OnError is the failure mode of filters that Filters does not name.
	OnError FailMode
	// OnLimit is the action demanded when a message exceeds a parse limit
	// (Limits). Accept, the zero value, means the default: Quarantine.
	OnLimit Action
	// Filters holds per-filter settings by filter name.
	Filters map[string]FilterPolicy
}

// DefaultTimeout is a filter's deadline when the policy names none.
const DefaultTimeout = 30 * time.Second

// DefaultPolicy returns thresholds in the spirit of SpamAssassin and rspamd:
// add a header at 5, reject at 15; failures tempfail.
func DefaultPolicy() Policy {
	return Policy{AddHeaderScore: 5, RejectScore: 15}
}

func (p Policy) filterPolicy(name string) FilterPolicy {
	fp, ok := p.Filters[name]
	if !ok {
		fp = FilterPolicy{OnError: p.OnError}
	}
	if fp.Timeout <= 0 {
		fp.Timeout = p.Timeout
	}
	if fp.Timeout <= 0 {
		fp.Timeout = DefaultTimeout
	}
	return fp
}

func (p Policy) limitAction() Action {
	if p.OnLimit == Accept {
		return Quarantine
	}
	return p.OnLimit
}

// scoreAction is the action the thresholds give a score.
func (p Policy) scoreAction(score float64) Action {
	switch {
	case p.RejectScore != 0 && score >= p.RejectScore:
		return Reject
	case p.QuarantineScore != 0 && score >= p.QuarantineScore:
		return Quarantine
	case p.AddHeaderScore != 0 && score >= p.AddHeaderScore:
		return AddHeader
	}
	return Accept
}

// Reply is an SMTP reply: code, enhanced status code (RFC 3463) and text.
type Reply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

func (r Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// Temporary reports whether the reply is a 4xx.
func (r Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// ReplyFor is the one place where actions become SMTP replies. The text is
// generic on purpose: what a filter found is for the logs and headers, not
// for the peer. A temporary problem is never a 5xx.
func ReplyFor(a Action, s Stage) Reply {
	switch a {
	case Tempfail:
		return Reply{Code: 451, Enhanced: "4.7.1", Text: "Temporary failure, please try again later"}
	case Reject:
		if s == Connect {
			return Reply{Code: 554, Enhanced: "5.7.1", Text: "Access denied"}
		}
		return Reply{Code: 550, Enhanced: "5.7.1", Text: "Message refused by policy"}
	}
	return Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}
}

// Verdict is the pipeline's decision on a message at a stage.
type Verdict struct {
	Action  Action            `json:"action"`
	Score   float64           `json:"score"`
	Symbols []Symbol          `json:"symbols"`
	Reply   Reply             `json:"reply"`
	Headers map[string]string `json:"headers"`
	Stage   Stage             `json:"-"`
}

// Has reports whether the verdict carries a symbol of that name.
func (v Verdict) Has(name string) bool {
	for _, s := range v.Symbols {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Header names a verdict adds.
const (
	HeaderSpamStatus = "X-Spam-Status"
	HeaderVerdict    = "X-Portcullis-Verdict"
)

// Decide turns symbols and a demanded action into a verdict: the score is
// the sum of the symbols' scores, the action the most severe of the demand
// and the thresholds. Symbols are sorted so a verdict does not depend on the
// order filters finished in.
func (p Policy) Decide(stage Stage, symbols []Symbol, demanded Action) Verdict {
	syms := append([]Symbol(nil), symbols...)
	sortSymbols(syms)
	score := 0.0
	for _, s := range syms {
		score += s.Score
	}
	score = roundScore(score)
	action := demanded.Max(p.scoreAction(score))
	if syms == nil {
		syms = []Symbol{}
	}
	v := Verdict{Action: action, Score: score, Symbols: syms, Reply: ReplyFor(action, stage), Stage: stage}
	v.Headers = p.headers(v)
	return v
}

func roundScore(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	if r == 0 {
		return 0 // no "-0"
	}
	return r
}

func (p Policy) headers(v Verdict) map[string]string {
	required := p.AddHeaderScore
	if required == 0 {
		required = p.RejectScore
	}
	flag := "No"
	if (required != 0 && v.Score >= required) || v.Action == AddHeader || v.Action == Reject {
		flag = "Yes"
	}
	names := make([]string, 0, len(v.Symbols))
	for _, s := range v.Symbols {
		if len(names) == 0 || names[len(names)-1] != s.Name {
			names = append(names, s.Name)
		}
	}
	status := fmt.Sprintf("%s, score=%.2f required=%.2f tests=%s", flag, v.Score, required, strings.Join(names, ","))
	return map[string]string{
		HeaderSpamStatus: status,
		HeaderVerdict:    fmt.Sprintf("%s; score=%.2f", v.Action, v.Score),
	}
}
