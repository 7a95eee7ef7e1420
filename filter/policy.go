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
	// FailDefault, the zero value, is unset: in a FilterPolicy it means
	// the Policy's OnError, in Policy.OnError it means FailTempfail.
	FailDefault FailMode = iota
	// FailTempfail answers 4xx: the sender keeps the mail and retries.
	// It is the default.
	FailTempfail
	// FailOpen goes on without the filter's verdict; only the NAME_FAIL
	// symbol (and its score, see FilterPolicy.FailScore) records it.
	FailOpen
	// FailQuarantine keeps the mail in quarantine for a later re-scan.
	FailQuarantine
)

var failModeNames = [...]string{FailDefault: "", FailTempfail: "tempfail", FailOpen: "open", FailQuarantine: "quarantine"}

func (f FailMode) String() string {
	if f == FailDefault {
		return "default"
	}
	if f < 0 || int(f) >= len(failModeNames) {
		return "failmode(" + strconv.Itoa(int(f)) + ")"
	}
	return failModeNames[f]
}

// MarshalText implements encoding.TextMarshaler; FailDefault is "".
func (f FailMode) MarshalText() ([]byte, error) {
	if f == FailDefault {
		return []byte{}, nil
	}
	return []byte(f.String()), nil
}

// UnmarshalText accepts "tempfail", "open" (or "fail-open"), "quarantine"
// and "" (FailDefault).
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
	OnError   FailMode      // what an error or timeout demands; FailDefault means Policy.OnError
	FailScore float64       // score of the NAME_FAIL symbol
}

// Policy turns evidence into an action. Detection (filters) stays apart from
// the decision (policy): the same symbols can mean add-header for one site
// and reject for another.
//
// The zero Policy is DefaultPolicy: add a header at 5, reject at 15, a
// 30 s timeout per filter, FailTempfail for every filter, and quarantine
// for a message that exceeds a parse limit. A zero field always means its
// default; a negative threshold disables it.
type Policy struct {
	// Score thresholds: a total score at or above one yields its action.
	// Zero means the default (DefaultAddHeaderScore, no quarantine
	// threshold, DefaultRejectScore); a negative value disables one.
	AddHeaderScore  float64
	QuarantineScore float64
	RejectScore     float64

	// Timeout bounds each filter's Check; 0 means DefaultTimeout.
	Timeout time.Duration
	// OnError is the failure mode of filters whose FilterPolicy says none;
	// FailDefault (the zero value) means FailTempfail.
	OnError FailMode
	// OnLimit is the action demanded when a message exceeds a parse limit
	// (Limits). Unset (the zero value) means Quarantine; Set(Accept)
	// really accepts.
	OnLimit ActionSetting
	// Filters holds per-filter settings by filter name.
	Filters map[string]FilterPolicy
}

// DefaultTimeout is a filter's deadline when the policy names none.
const DefaultTimeout = 30 * time.Second

// Default score thresholds, in the spirit of SpamAssassin and rspamd.
const (
	DefaultAddHeaderScore = 5
	DefaultRejectScore    = 15
)

// DefaultPolicy returns the policy the zero Policy means, with its
// thresholds spelled out: add a header at 5, reject at 15; failures
// tempfail.
func DefaultPolicy() Policy {
	return Policy{AddHeaderScore: DefaultAddHeaderScore, RejectScore: DefaultRejectScore}
}

// threshold resolves a threshold field: 0 is def, negative is disabled
// (ok false).
func threshold(v, def float64) (float64, bool) {
	switch {
	case v == 0:
		return def, def != 0
	case v < 0:
		return 0, false
	}
	return v, true
}

func (p Policy) addHeaderScore() (float64, bool) {
	return threshold(p.AddHeaderScore, DefaultAddHeaderScore)
}
func (p Policy) quarantineScore() (float64, bool) { return threshold(p.QuarantineScore, 0) }
func (p Policy) rejectScore() (float64, bool)     { return threshold(p.RejectScore, DefaultRejectScore) }

func (p Policy) filterPolicy(name string) FilterPolicy {
	fp := p.Filters[name]
	if fp.OnError == FailDefault {
		fp.OnError = p.OnError
	}
	if fp.OnError == FailDefault {
		fp.OnError = FailTempfail
	}
	if fp.Timeout <= 0 {
		fp.Timeout = p.Timeout
	}
	if fp.Timeout <= 0 {
		fp.Timeout = DefaultTimeout
	}
	return fp
}

func (p Policy) limitAction() Action { return p.OnLimit.Or(Quarantine) }

// scoreAction is the action the thresholds give a score.
func (p Policy) scoreAction(score float64) Action {
	if t, ok := p.rejectScore(); ok && score >= t {
		return Reject
	}
	if t, ok := p.quarantineScore(); ok && score >= t {
		return Quarantine
	}
	if t, ok := p.addHeaderScore(); ok && score >= t {
		return AddHeader
	}
	return Accept
}

// Header is one header field a verdict adds to the message.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Verdict is the pipeline's decision on a message at a stage.
type Verdict struct {
	Action  Action   `json:"action"`
	Score   float64  `json:"score"`
	Symbols []Symbol `json:"symbols"`
	Reply   Reply    `json:"reply"`
	// Headers are the header fields to add, in the order to write them.
	Headers []Header `json:"headers"`
	// MessageID is the transaction's ID (Transaction.ID), "" for a
	// one-shot Check; log lines about the message carry it.
	MessageID string `json:"message_id,omitempty"`
	Stage     Stage  `json:"-"`
}

// Header returns the value of the first verdict header named name (case
// insensitive), or "".
func (v Verdict) Header(name string) string {
	for _, h := range v.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
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

// Decide turns symbols and a demanded action into a verdict: the score is
// the sum of the symbols' scores, the action the most severe of the demand
// and the thresholds. Symbols are sorted so a verdict does not depend on the
// order filters finished in.
func (p Policy) Decide(stage Stage, symbols []Symbol, demanded Action) Verdict {
	syms := append([]Symbol(nil), symbols...)
	sortSymbols(syms)
	score := sumScores(syms)
	action := demanded.Max(p.scoreAction(score))
	if syms == nil {
		syms = []Symbol{}
	}
	v := Verdict{Action: action, Score: score, Symbols: syms, Reply: ReplyFor(action, stage), Stage: stage}
	v.Headers = p.headers(v)
	return v
}

// action is Decide's action alone, for a caller that only asks whether
// a stage ends the transaction: no verdict headers are built. The symbols
// are sorted in scratch, which it returns for the next call.
func (p Policy) action(symbols []Symbol, demanded Action, scratch []Symbol) (Action, []Symbol) {
	scratch = append(scratch[:0], symbols...)
	sortSymbols(scratch) // the score is summed in Decide's order
	return demanded.Max(p.scoreAction(sumScores(scratch))), scratch
}

// sumScores is the rounded score of sorted symbols.
func sumScores(sorted []Symbol) float64 {
	score := 0.0
	for _, s := range sorted {
		score += s.Score
	}
	return roundScore(score)
}

func roundScore(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	if r == 0 {
		return 0 // no "-0"
	}
	return r
}

// headers builds the verdict's header fields, X-Spam-Status first. The
// status names the thresholds that decided ("required" is the lowest one in
// force, as in SpamAssassin; "quarantine" and "reject" follow when set), so
// a reader of the message can tell why it was judged so.
func (p Policy) headers(v Verdict) []Header {
	add, addOK := p.addHeaderScore()
	quar, quarOK := p.quarantineScore()
	rej, rejOK := p.rejectScore()
	required, reqOK := add, addOK
	if !reqOK {
		required, reqOK = quar, quarOK
	}
	if !reqOK {
		required, reqOK = rej, rejOK
	}
	flag := "No"
	if (reqOK && v.Score >= required) || v.Action == AddHeader || v.Action == Reject {
		flag = "Yes"
	}
	// Appended, not formatted: these two headers are built for every
	// message (fmt's %.2f is strconv's 'f' with precision 2).
	b := make([]byte, 0, 64+16*len(v.Symbols))
	b = append(append(b, flag...), ", score="...)
	b = strconv.AppendFloat(b, v.Score, 'f', 2, 64)
	if reqOK {
		b = strconv.AppendFloat(append(b, " required="...), required, 'f', 2, 64)
	}
	if quarOK && quar != required {
		b = strconv.AppendFloat(append(b, " quarantine="...), quar, 'f', 2, 64)
	}
	if rejOK && rej != required {
		b = strconv.AppendFloat(append(b, " reject="...), rej, 'f', 2, 64)
	}
	b = append(b, " tests="...)
	var last string
	for i, s := range v.Symbols {
		if i > 0 && s.Name == last {
			continue
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.Name...)
		last = s.Name
	}
	verdict := strconv.AppendFloat(append(append(make([]byte, 0, 32), v.Action.String()...), "; score="...), v.Score, 'f', 2, 64)
	return []Header{
		{Name: HeaderSpamStatus, Value: string(b)},
		{Name: HeaderVerdict, Value: string(verdict)},
	}
}
