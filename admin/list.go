package admin

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// filters select held messages, from a query string or a form: the
// same names in the API and the console.
type filters struct {
	Since, Until time.Time
	Symbol       string // a name; a trailing * matches a prefix
	Engine       string // an engine name, as in a detection's detail ("clamd-1: ...")
	Recipient    string
	Sender       string
	Text         string // a substring of sender, recipients, subject, ID, symbols
}

const maxFilterLen = 512

// parseFilters reads since, until (RFC 3339, or a duration back from
// now: "2h", "7d"), symbol, engine, recipient, sender and text.
func parseFilters(v url.Values, now time.Time) (filters, error) {
	var f filters
	var err error
	if f.Since, err = parseTime(v.Get("since"), now); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseTime(v.Get("until"), now); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	for _, p := range []struct {
		name string
		to   *string
	}{{"symbol", &f.Symbol}, {"engine", &f.Engine}, {"recipient", &f.Recipient}, {"sender", &f.Sender}, {"text", &f.Text}} {
		s := strings.TrimSpace(v.Get(p.name))
		if len(s) > maxFilterLen {
			return f, fmt.Errorf("%s: over %d bytes", p.name, maxFilterLen)
		}
		*p.to = s
	}
	return f, nil
}

func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	// The console's datetime-local inputs send this form, in UTC.
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 && d < 100000 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration like 2h or 7d", s)
}

func (f filters) empty() bool { return f == filters{} }

// values is f as a query string, for links and forms.
func (f filters) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	set("symbol", f.Symbol)
	set("engine", f.Engine)
	set("recipient", f.Recipient)
	set("sender", f.Sender)
	set("text", f.Text)
	return v
}

// query is the part of f the quarantine selects by itself.
func (f filters) query() query {
	return query{Since: f.Since, Until: f.Until, Symbol: f.Symbol, Recipient: f.Recipient, Sender: f.Sender}
}

// matchRest applies what query leaves out: the engine and the text.
func (f filters) matchRest(h held, subject string) bool {
	if f.Engine != "" && !matchEngine(h, f.Engine) {
		return false
	}
	if f.Text != "" && !matchText(h, subject, f.Text) {
		return false
	}
	return true
}

func matchEngine(h held, engine string) bool {
	e := strings.ToLower(engine)
	sym := filter.SymbolName(engine)
	for _, s := range h.Symbols {
		d := strings.ToLower(s.Detail)
		if strings.HasPrefix(d, e+":") || strings.HasPrefix(d, e+" ") || s.Name == sym || strings.HasPrefix(s.Name, sym+"_") {
			return true
		}
	}
	return false
}

func matchText(h held, subject, text string) bool {
	t := strings.ToLower(text)
	in := func(s string) bool { return strings.Contains(strings.ToLower(s), t) }
	if in(string(h.ID)) || in(h.Envelope.MailFrom) || in(subject) {
		return true
	}
	for _, r := range h.Envelope.RcptTo {
		if in(r) {
			return true
		}
	}
	for _, s := range h.Symbols {
		if in(s.Name) || in(s.Detail) {
			return true
		}
	}
	return false
}

// listing is one page of held messages, newest first, with the counts
// of what matched.
type listing struct {
	Items     []held
	Matched   int           // messages that match the filters and are visible
	Bytes     int64         // their size
	Symbols   []symbolCount // the most frequent symbols among them
	Engines   []symbolCount // the AV engines that flagged them, most frequent first
	Before    heldID        // this page's cursor ("" for the first)
	Next      heldID        // the cursor of the next (older) page; "" at the end
	Truncated bool          // MaxScan stopped the scan: counts are lower bounds
}

type symbolCount struct {
	Name  string
	Count int
}

// scanPage is how many records one List call fetches while scanning.
const scanPage = 10000

const maxSymbolKinds = 1000

// list scans the quarantine for the messages p may see that match f,
// and returns the newest limit of those older than before. Memory stays
// within limit records and the symbol counts, whatever the quarantine
// holds.
func (h *Handler) list(ctx context.Context, p principal, f filters, before heldID, limit int) (listing, error) {
	out := listing{Before: before}
	q := f.query()
	if !p.Admin && q.Recipient == "" && len(p.Recipients) == 1 && !strings.HasPrefix(p.Recipients[0], "@") {
		q.Recipient = p.Recipients[0]
	}
	q.Limit = min(scanPage, h.cfg.MaxScan)
	ring := make([]held, 0, limit+1) // the newest limit+1 matches before the cursor
	syms, engines := map[string]int{}, map[string]int{}
	scanned := 0
	for {
		pg, err := h.cfg.Quarantine.List(ctx, q)
		if err != nil {
			return out, err
		}
		for _, it := range pg.Items {
			scanned++
			if !p.canSee(it) || !f.matchRest(it, h.subjectIfNeeded(ctx, f, it)) {
				continue
			}
			out.Matched++
			out.Bytes += it.Size
			count(syms, uniqueSymbols(it.Symbols))
			count(engines, enginesOf(it))
			if before != "" && it.ID >= before {
				continue
			}
			// The quarantine lists oldest first: keep the last limit+1.
			if len(ring) == limit+1 {
				copy(ring, ring[1:])
				ring = ring[:limit]
			}
			ring = append(ring, it)
		}
		if pg.Next == "" || len(pg.Items) == 0 {
			break
		}
		if scanned >= h.cfg.MaxScan {
			out.Truncated = true
			break
		}
		q.After = pg.Next
	}
	slices.Reverse(ring)
	if len(ring) > limit {
		ring = ring[:limit]
		out.Next = ring[limit-1].ID
	}
	out.Items = ring
	out.Symbols, out.Engines = top(syms, 12), top(engines, 8)
	return out, nil
}

// count adds one for each name, within maxSymbolKinds names.
func count(m map[string]int, names []string) {
	for _, n := range names {
		if _, ok := m[n]; ok || len(m) < maxSymbolKinds {
			m[n]++
		}
	}
}

func top(m map[string]int, n int) []symbolCount {
	out := make([]symbolCount, 0, len(m))
	for k, c := range m {
		out = append(out, symbolCount{k, c})
	}
	slices.SortFunc(out, func(a, b symbolCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name))
	})
	return out[:min(len(out), n)]
}

// enginesOf names the AV engines whose detections are among a message's
// symbols: the scanner's AV_* details start with the engine's name
// ("clamd-1: Win.Test.EICAR_HDB-1 in 2"). These are what an engine filter
// matches, so the console can offer them as filters.
func enginesOf(h held) []string {
	var out []string
	for _, s := range h.Symbols {
		if !strings.HasPrefix(s.Name, "AV_") {
			continue
		}
		name, _, ok := strings.Cut(s.Detail, ": ")
		if ok && validEngine(name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func validEngine(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func uniqueSymbols(s []filter.Symbol) []string {
	var out []string
	for _, x := range s {
		if !slices.Contains(out, x.Name) {
			out = append(out, x.Name)
		}
	}
	return out
}

// subjectIfNeeded reads the subject only for a text filter, the one
// filter that looks at it.
func (h *Handler) subjectIfNeeded(ctx context.Context, f filters, it held) string {
	if f.Text == "" {
		return ""
	}
	return h.subject(ctx, it.ID)
}

// maxSubject bounds a subject kept for listings (display truncates
// further).
const maxSubject = 998

// subject returns a held message's decoded subject, cached: records do
// not carry it, and reading a message for its header is the expensive
// part of a listing.
func (h *Handler) subject(ctx context.Context, id heldID) string {
	if s, ok := h.subjects.Get(id); ok {
		return s
	}
	_, raw, err := h.cfg.Quarantine.Get(ctx, id)
	if err != nil {
		return ""
	}
	s := headerText(filter.NewMessageBytes(filter.Envelope{}, raw, h.cfg.Limits).Header(), "Subject")
	if len(s) > maxSubject {
		s = strings.ToValidUTF8(s[:maxSubject], "")
	}
	h.subjects.Add(id, s)
	return s
}
