package rules

import (
	"net/textproto"
	"regexp"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// A port of Plugin::MIMEHeader: "mimeheader NAME Field =~ /re/" tests a
// header of every MIME part, the message itself first, and hits when the
// regex matches the field in any of them. Like Node::get_header, a part's
// value is the last field of that name, unfolded, trimmed, RFC 2047
// decoded and ended with "\n"; with ":raw" it is the field as written
// (folding kept), which for a part starts after the white space that
// follows the colon (Message::_parse_multipart splits on /:\s*/) and for
// the message itself right after the colon. A part without the field
// tests the rule's [if-unset: ] value, "" without one.
//
// SpamAssassin 4.0's eval_hook_called returns true for every "!~" rule,
// whatever the parts hold (its match loop leaves at once for a negated
// rule and the hook then reports the negation as a hit); the port keeps
// that, so that the two agree.

var saMIMEHeaderDef = regexp.MustCompile(`^([^:\s]+(?::(?:raw)?)?)\s*([=!]~)\s*(.+)$`)

func saMIMEHeader(def string) (evalFunc, error) {
	m := saMIMEHeaderDef.FindStringSubmatch(def)
	if m == nil {
		return nil, &errSkip{ReasonSyntax, "mimeheader " + def}
	}
	field := strings.TrimSuffix(m[1], ":")
	raw := false
	if f, ok := strings.CutSuffix(field, ":raw"); ok {
		field, raw = f, true
	}
	if m[2] == "!~" {
		return func(*view) bool { return true }, nil
	}
	pattern := m[3]
	unset := ""
	if i := strings.LastIndex(pattern, "[if-unset:"); i >= 0 && strings.HasSuffix(pattern, "]") {
		unset = strings.TrimSpace(pattern[i+len("[if-unset:") : len(pattern)-1])
		pattern = strings.TrimSpace(pattern[:i])
	}
	match, _, err := saMatcher(pattern)
	if err != nil {
		return nil, err
	}
	key, canon := strings.ToLower(field), ""
	if isToken(field) {
		canon = textproto.CanonicalMIMEHeaderKey(field)
	}
	return func(v *view) bool {
		parts, _ := v.m.Parts()
		for i, p := range parts {
			val, ok := v.partHeader(i, p, key, canon, raw)
			if !ok {
				val = unset
			}
			if match(val) {
				return true
			}
		}
		return false
	}, nil
}

// mimeMemo is one partHeader answer, kept for the view's lifetime: the
// sixty mimeheader rules ask for a handful of fields of the same parts,
// and each walk of a part's header allocates.
type mimeMemo struct {
	key   string
	raw   bool
	val   string
	found bool
}

// partHeader is the package's partHeader for the i-th part of the
// message, computed once per view.
func (v *view) partHeader(i int, p *filter.Part, key, canon string, raw bool) (string, bool) {
	if v.sax.mimeHdrs == nil {
		parts, _ := v.m.Parts()
		v.sax.mimeHdrs = make([][]mimeMemo, len(parts))
	}
	if i >= len(v.sax.mimeHdrs) {
		return partHeader(p, key, canon, raw)
	}
	memo := v.sax.mimeHdrs[i]
	for _, m := range memo {
		if m.raw == raw && m.key == key {
			return m.val, m.found
		}
	}
	val, found := partHeader(p, key, canon, raw)
	if memo == nil {
		memo = make([]mimeMemo, 0, 8) // a handful of fields, one allocation
	}
	v.sax.mimeHdrs[i] = append(memo, mimeMemo{key: key, raw: raw, val: val, found: found})
	return val, found
}

// partHeader returns the last field named key (lower case) of a part as
// Node::get_header (or, raw, Node::raw_header) returns it. canon is the
// key's canonical form when it is a token (isToken), or "".
func partHeader(p *filter.Part, key, canon string, raw bool) (string, bool) {
	val, found := "", false
	if canon != "" && !p.Header.Has(canon) {
		// Most fields asked for are missing: the map lookup says so
		// without the two allocations of walking the fields.
		return val, found
	}
	f := p.Header.Fields()
	for f.Next() {
		if !strings.EqualFold(f.Key(), key) {
			continue
		}
		found = true
		_, r := saRawField(f)
		if raw {
			if p.Depth > 0 {
				r = strings.TrimLeft(r, " \t\r\n")
			}
			val = r
			continue
		}
		text, err := f.Text()
		if err != nil {
			text = f.Value()
		}
		val = saUnfold(text) + "\n"
	}
	return val, found
}

// isToken reports whether s is a non-empty RFC 7230 token: the names
// textproto.CanonicalMIMEHeaderKey changes only in case, so that for
// them Has agrees with EqualFold on the keys. (Has canonicalises its
// argument, which allocates unless it is canonical already.)
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}
