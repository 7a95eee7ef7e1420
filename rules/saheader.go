package rules

import (
	"bytes"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-message"
)

// SpamAssassin's header rules test one string per rule, built the way
// Mail::SpamAssassin::PerMsgStatus::get and Plugin::Check build it:
//
//   - a named header: every field of that name, each value unfolded
//     ("\n" and the white space after it become one space), trimmed,
//     RFC 2047 decoded and ended with "\n", joined in message order, so
//     that "Received" is all the Received lines in one string;
//   - :raw: each raw value (everything after the colon, folding undone the
//     same way, leading space kept), joined;
//   - :addr and :name: the addresses or display names of every field, one
//     per line;
//   - :first and :last: only the topmost or the last field;
//   - ALL: every field as "Name: value\n" with the name as written, in
//     order (ALL:raw: the header as received);
//   - ToCc: To then Cc; MESSAGEID: X-Message-Id, Resent-Message-Id,
//     X-Original-Message-ID then Message-Id; EnvelopeFrom: the envelope
//     sender.
//
// "ALL" and "MESSAGEID" are matched case-sensitively, "ToCc" and
// "EnvelopeFrom" not, and any other name is a header name (so "MessageId"
// is a header of that name, which no message has). A missing header is
// tested as the rule's [if-unset: ] value, "" when it gives none.

// saHeaderSpec is a SpamAssassin rule's header field.
type saHeaderSpec struct {
	field       string   // as the rule wrote it: the key of the view's cache
	id          int32    // the field's index in the view's cache, or -1 (saFieldID)
	names       []string // lower case, in the order their values are joined
	all         bool     // ALL
	envFrom     bool     // EnvelopeFrom
	relays      string   // x-spam-relays-trusted and the like (sarelay.go)
	raw         bool
	addr, dname bool // :addr, :name
	first, last bool
}

// saHeaderMods are the modifiers the importer accepts; others (:host,
// :domain, :ip, :revip) are skipped as unsupported.
var saHeaderMods = map[string]bool{"raw": true, "addr": true, "name": true, "first": true, "last": true}

func parseSAHeaderSpec(field string) headerSpec {
	parts := strings.Split(field, ":")
	name := parts[0]
	hs := &saHeaderSpec{field: field, id: saFieldID(field)}
	mod := ""
	for _, m := range parts[1:] {
		switch m {
		case "raw":
			hs.raw = true
		case "addr":
			hs.addr = true
		case "name":
			hs.dname = true
		case "first":
			hs.first = true
		case "last":
			hs.last = true
		}
		if m == "addr" || m == "name" || (m == "raw" && mod == "") {
			mod = m
		}
	}
	switch {
	case name == "ALL":
		hs.all = true
	case strings.EqualFold(name, "EnvelopeFrom"):
		hs.envFrom = true
	case slices.Contains(relayHeaders[:], strings.ToLower(name)):
		hs.relays = strings.ToLower(name)
	case strings.EqualFold(name, "ToCc"):
		hs.names = []string{"to", "cc"}
	case name == "MESSAGEID":
		hs.names = []string{"x-message-id", "resent-message-id", "x-original-message-id", "message-id"}
	default:
		hs.names = []string{strings.ToLower(name)}
	}
	return headerSpec{names: hs.names, mod: mod, sa: hs}
}

// saRawField returns a field's name as written and its raw value as
// SpamAssassin keeps it.
func saRawField(f message.HeaderFields) (name, raw string) {
	_, name, raw = appendSARawField(nil, f)
	return name, raw
}

// appendSARawField is saRawField with the raw value appended to dst,
// which it returns; raw is the appended bytes, which the caller must
// only append after.
func appendSARawField(dst []byte, f message.HeaderFields) (_ []byte, name, raw string) {
	b, err := f.Raw()
	i := bytes.IndexByte(b, ':')
	if err != nil || i < 0 {
		start := len(dst)
		dst = append(append(append(dst, ' '), f.Value()...), '\n')
		return dst, f.Key(), bstr(dst[start:])
	}
	if n := bytes.TrimRight(b[:i], " \t"); string(n) == f.Key() {
		name = f.Key() // as written: no copy
	} else {
		name = string(n)
	}
	start := len(dst)
	dst = appendLF(dst, b[i+1:])
	return dst, name, bstr(dst[start:])
}

// appendLF appends v with CRLF line ends made LF and a final "\n"
// ensured.
func appendLF(dst, v []byte) []byte {
	dst = slices.Grow(dst, len(v)+1)
	start := len(dst)
	for len(v) > 0 {
		i := bytes.Index(v, []byte("\r\n"))
		if i < 0 {
			dst = append(dst, v...)
			break
		}
		dst = append(append(dst, v[:i]...), '\n')
		v = v[i+2:]
	}
	if len(dst) == start || dst[len(dst)-1] != '\n' {
		dst = append(dst, '\n')
	}
	return dst
}

// saFold is SpamAssassin's s/\n[ \t]+/ /g: each line end followed by
// spaces or tabs, and those, become one space. A byte loop: Go's regexp
// took a tenth of building a message's header fields.
func saFold(s string) string {
	return foldRuns(s, func(c byte) bool { return c == ' ' || c == '\t' }, false)
}

// saRawFold is s/\r?\n\s+/ /g (Go's \s: tab, newline, form feed,
// carriage return, space).
func saRawFold(s string) string { return foldRuns(s, rcvSpace, true) }

// foldRuns replaces each "\n" followed by at least one byte that is run
// (and, with cr, a "\r" just before it) and all those bytes with one space.
func foldRuns(s string, run func(byte) bool, cr bool) string {
	var b []byte
	last := 0
	for i := strings.IndexByte(s, '\n'); i >= 0; {
		j := i + 1
		for j < len(s) && run(s[j]) {
			j++
		}
		if j > i+1 {
			start := i
			if cr && i > last && s[i-1] == '\r' {
				start--
			}
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(append(b, s[last:start]...), ' ')
			last = j
		}
		k := strings.IndexByte(s[j:], '\n')
		if k < 0 {
			break
		}
		i = j + k
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

// saRawValue is a raw value as a :raw rule sees it: folding undone.
func saRawValue(raw string) string {
	if strings.Count(raw, "\n") <= 1 && !strings.Contains(raw, "\r") {
		return raw
	}
	return saRawFold(raw)
}

// saUnfold is Node::header's treatment of a value: folding becomes one
// space, surrounding white space goes.
func saUnfold(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = saFold(strings.ReplaceAll(s, "\r\n", "\n"))
	}
	return strings.TrimSpace(s)
}

// saHeaderValue returns the one string a SpamAssassin header rule tests,
// or nil when the header is missing.
func (v *view) saHeaderValue(hs *saHeaderSpec) []string {
	// Many rules test the same field: build each string once, kept by the
	// field's number in a pooled table (a map by name was a third of the
	// bytes Evaluate allocated for a small message).
	if hs.id >= 0 {
		t := v.saTable()
		if int(hs.id) >= len(t.e) {
			t.e = append(t.e, make([]saVal, int(hs.id)+1-len(t.e))...)
		}
		if e := &t.e[hs.id]; e.ok {
			return e.vals
		}
		vals := v.saHeaderBuild(hs)
		t.e[hs.id] = saVal{vals: vals, ok: true}
		return vals
	}
	if vals, ok := v.saValues[hs.field]; ok {
		return vals
	}
	vals := v.saHeaderBuild(hs)
	if v.saValues == nil {
		v.saValues = map[string][]string{}
	}
	v.saValues[hs.field] = vals
	return vals
}

// saFieldIDs numbers the distinct header fields SpamAssassin rules name,
// process-wide, so that a view keeps their strings in a slice. Rule files
// can name any number of fields: past maxSAFieldIDs a field has no number
// and its strings go to a map by name.
var saFieldIDs struct {
	mu sync.Mutex
	m  map[string]int32
}

const maxSAFieldIDs = 4096

func saFieldID(field string) int32 {
	saFieldIDs.mu.Lock()
	defer saFieldIDs.mu.Unlock()
	if id, ok := saFieldIDs.m[field]; ok {
		return id
	}
	if len(saFieldIDs.m) >= maxSAFieldIDs {
		return -1
	}
	if saFieldIDs.m == nil {
		saFieldIDs.m = map[string]int32{}
	}
	id := int32(len(saFieldIDs.m))
	saFieldIDs.m[field] = id
	return id
}

// saValTable is a view's header strings by field number; pooled, cleared
// when the view ends so that it keeps no message alive.
type saValTable struct {
	e []saVal

	// Most answers are one string: their slices are cut from one
	// backing array, not allocated each (single).
	one []string

	// Every field's saText and "\n", joined: a field's value as a
	// named header rule tests it is a substring (textNL).
	nl    string
	nlEnd []int
}

type saVal struct {
	vals []string
	ok   bool
}

var saValPool = sync.Pool{New: func() any { return new(saValTable) }}

func (v *view) saTable() *saValTable {
	if v.saVals == nil {
		v.saVals = saValPool.Get().(*saValTable)
	}
	return v.saVals
}

// releaseSAVals gives the view's table back.
func (v *view) releaseSAVals() {
	t := v.saVals
	if t == nil {
		return
	}
	clear(t.e)
	clear(t.one[:cap(t.one)])
	t.one = t.one[:0]
	t.nl, t.nlEnd = "", t.nlEnd[:0]
	saValPool.Put(t)
	v.saVals = nil
}

// single returns s as a one-string answer. Callers only read answers, and
// only while the view lives.
func (t *saValTable) single(s string) []string {
	if len(t.one) == cap(t.one) {
		// A new array: the answers handed out keep the old one.
		t.one = make([]string, 0, max(32, 2*cap(t.one)))
	}
	t.one = append(t.one, s)
	n := len(t.one)
	return t.one[n-1 : n : n]
}

// textNL returns fields[i].saText+"\n".
func (t *saValTable) textNL(fields []hfield, i int) string {
	if len(t.nlEnd) != len(fields) {
		n := 0
		for _, f := range fields {
			n += len(f.saText) + 1
		}
		var b strings.Builder
		b.Grow(n)
		t.nlEnd = t.nlEnd[:0]
		for _, f := range fields {
			b.WriteString(f.saText)
			b.WriteByte('\n')
			t.nlEnd = append(t.nlEnd, b.Len())
		}
		t.nl = b.String()
	}
	start := 0
	if i > 0 {
		start = t.nlEnd[i-1]
	}
	return t.nl[start:t.nlEnd[i]]
}

func (v *view) saHeaderBuild(hs *saHeaderSpec) []string {
	fields := v.headerFields()
	t := v.saTable()
	if hs.envFrom {
		if a, ok := v.envelopeFrom(); ok {
			return t.single(a)
		}
		return nil
	}
	if hs.relays != "" {
		return t.single(v.relays().pseudoHeader(hs.relays))
	}
	if hs.all {
		if len(fields) == 0 {
			return nil
		}
		return t.single(saAllValue(fields, hs.raw))
	}
	if hs.addr || hs.dname {
		return v.saAddrValue(hs, fields)
	}
	var small [8]int
	idx := small[:0]
	for _, n := range hs.names {
		for i := range fields {
			if fields[i].key == n {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if hs.first {
		idx = idx[:1]
	} else if hs.last {
		idx = idx[len(idx)-1:]
	}
	val := func(i int) string {
		if hs.raw {
			return saRawValue(fields[i].saRaw)
		}
		return t.textNL(fields, i)
	}
	if len(idx) == 1 {
		return t.single(val(idx[0]))
	}
	var vals [8]string
	parts := vals[:0]
	for _, i := range idx {
		parts = append(parts, val(i))
	}
	return t.single(strings.Join(parts, ""))
}

// saAllValue is the ALL (or ALL:raw) header: each field as "Name: value\n".
func saAllValue(fields []hfield, raw bool) string {
	n := 0
	for _, f := range fields {
		if raw {
			n += len(f.name) + 1 + len(f.saRaw)
		} else {
			n += len(f.name) + 3 + len(f.saText)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range fields {
		b.WriteString(f.name)
		b.WriteString(":")
		if raw {
			b.WriteString(f.saRaw)
			continue
		}
		b.WriteString(" ")
		b.WriteString(f.saText)
		b.WriteByte('\n')
	}
	return b.String()
}

// saAddrValue is saHeaderBuild for :addr and :name: the addresses or the
// names of the fields (SpamAssassin parses them from the raw value), one
// a line.
func (v *view) saAddrValue(hs *saHeaderSpec, fields []hfield) []string {
	var idx []int
	for _, n := range hs.names {
		for i := range fields {
			if fields[i].key == n {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) == 0 {
		return nil
	}
	if hs.first {
		idx = idx[:1]
	} else if hs.last {
		idx = idx[len(idx)-1:]
	}
	var out []string
	for _, i := range idx {
		f := &fields[i]
		if !f.saParsed {
			f.saAddrs, f.saNames = addrList(strings.TrimSpace(saRawValue(f.saRaw)))
			f.saParsed = true
		}
		list := f.saNames
		if hs.addr {
			list = f.saAddrs
		}
		if len(idx) == 1 && len(list) <= 1 {
			out = list // callers only read: the field's own list
			break
		}
		out = append(out, list...)
	}
	if len(out) == 0 {
		return nil
	}
	if len(out) == 1 {
		return out
	}
	return []string{strings.Join(out, "\n")}
}

// envelopeFrom is SpamAssassin's EnvelopeFrom: the MAIL FROM the gateway
// received when it knows the envelope, otherwise what the header says the
// envelope sender was.
func (v *view) envelopeFrom() (string, bool) {
	e := v.m.Envelope
	if e.MailFrom != "" || len(e.RcptTo) > 0 || e.ClientIP.IsValid() || e.Helo != "" {
		return e.MailFrom, true
	}
	// The sender the last untrusted relay, or else the first trusted
	// one, noted in its Received line.
	ri := v.relays()
	var hop *relay
	if len(ri.untrusted) > 0 {
		hop = ri.untrusted[0]
	} else if len(ri.trusted) > 0 {
		hop = ri.trusted[len(ri.trusted)-1]
	}
	if hop != nil && hop.hasEnvFrom && (strings.Index(hop.envfrom, "@") > 0 || hop.envfrom == "") {
		return hop.envfrom, true
	}
	// A header below a Received line may have been added before a list
	// re-sent the message with a new envelope sender.
	fields := v.headerFields()
	for _, n := range []string{"x-envelope-from", "envelope-sender", "return-path"} {
		received := false
		for _, f := range fields {
			if f.key == "received" {
				received = true
			}
			if f.key != n {
				continue
			}
			raw := strings.TrimSpace(f.saRaw)
			a, _, ok := plainAddrs(raw)
			if !ok {
				a = addrParts(raw, true)
			}
			if len(a) > 0 && !received {
				return a[0], true
			}
			if n == "x-envelope-from" {
				return "", false
			}
			break
		}
	}
	return "", false
}
