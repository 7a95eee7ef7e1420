package rules

import (
	"hash/maphash"
	"io"
	"net/netip"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/net/publicsuffix"

	"github.com/portcullis-mail/portcullis/filter"
)

// Ports of BodyEval::multipart_alternative_difference(_count),
// ImageInfo::image_count, HeaderEval::check_for_matching_env_and_hdr_from
// and WLBLEval::check_mailfrom_matches_rcvd.

func init() {
	saEvals["multipart_alternative_difference"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 1e300)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			d := v.maDiff()
			return (lo == 0 || d.diff > lo) && d.diff <= hi
		}, nil
	}
	saEvals["multipart_alternative_difference_count"] = func(_ *saConf, args []string) (evalFunc, error) {
		ratio, err1 := argFloat(args, 0, 0)
		minHTML, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			d := v.maDiff()
			return float64(d.html) > minHTML && float64(d.text)/float64(d.html) > ratio
		}, nil
	}
	saEvals["image_count"] = func(_ *saConf, args []string) (evalFunc, error) {
		typ := argString(args, 0)
		if typ != "all" && typ != "gif" && typ != "png" && typ != "jpeg" || len(args) < 2 {
			return nil, errArgs(args)
		}
		lo, err1 := argFloat(args, 1, 0)
		hi, err2 := argFloat(args, 2, 1e300)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			n := float64(v.imageCount(typ))
			return n >= lo && n <= hi
		}, nil
	}
	saEvals["check_for_matching_env_and_hdr_from"] = noArgs(func(v *view) bool {
		return strings.EqualFold(v.saGet("EnvelopeFrom:addr"), v.saGet("From:addr"))
	})
	saEvals["check_mailfrom_matches_rcvd"] = noArgs(func(v *view) bool {
		sender := v.saGet("EnvelopeFrom:addr")
		return sender != "" && v.addrMatchesRcvd(sender)
	})
}

// maDiffResult is _multipart_alternative_difference's result: the largest
// percentage of an HTML alternative's words its text alternative lacks,
// and the word counts of the last alternative measured.
type maDiffResult struct {
	diff       float64
	html, text int
}

// saExtra holds what the eval functions of these files compute once per
// message.
type saExtra struct {
	madiff    *maDiffResult
	bodyLines *[]string
	linesBuf  *[]byte                       // the text bodyLines point into, pooled (releaseRendered)
	bodyBufs  [2]*[]byte                    // the raw-body and body texts, pooled (bodyText)
	htmlDocs  map[*filter.Part]*htmlReading // each HTML part read once (html.go)
	mimeHdrs  [][]mimeMemo                  // partHeader's answers, by part
	uppercase *float64                      // check_for_uppercase's measure
	vertical  *int                          // check_for_vertical_words' measure
	fromAddrs *[]string                     // allFromAddrs
}

func (v *view) maDiff() maDiffResult {
	if v.sax.madiff != nil {
		return *v.sax.madiff
	}
	var d maDiffResult
	v.sax.madiff = &d
	parts, _ := v.m.Parts()
	var types []string
	for _, p := range parts {
		if len(p.Children) == 0 || p.IsMultipart() {
			types = append(types, p.ContentType)
		}
	}
	// Exchange meeting requests (text/html and text/calendar alternatives)
	// are left alone.
	if len(types) == 3 && types[0] == "multipart/alternative" && types[1] == "text/html" && types[2] == "text/calendar" {
		return d
	}
	for _, ma := range parts {
		if ma.ContentType == "multipart/alternative" {
			v.maDiffOne(ma, &d)
		}
	}
	return d
}

// wordTable counts maDiff's words: an open-addressed hash table of the
// words (strings into the view's texts) and their counts. An HTML
// newsletter's thousands of words are mostly repeats of a few hundred,
// and a map[string]int's assignment (hash, probe, write barriers) is
// dearer than this table's: no deletion, no write barrier per count, a
// word's hash compared before its bytes.
// The hash is the runtime's, seeded once a process (hash/maphash), so
// that a message cannot choose words that all land in one slot.
type wordTable struct {
	slots []wordSlot // a power of two in length, at most half full; nil when empty
	n     int        // words held
}

type wordSlot struct {
	w     string // "" for a free slot: a word is never empty
	hash  uint64
	count int
}

var wordSeed = maphash.MakeSeed()

// slot is where w is, or the free slot where it would go.
func (t *wordTable) slot(w string, h uint64) *wordSlot {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if s := &t.slots[i]; s.w == "" || s.hash == h && s.w == w {
			return s
		}
	}
}

// add counts one more w.
func (t *wordTable) add(w string) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	h := maphash.String(wordSeed, w)
	s := t.slot(w, h)
	if s.w == "" {
		s.w, s.hash = w, h
		t.n++
	}
	s.count++
}

// get returns w's count and whether w is held.
func (t *wordTable) get(w string) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	s := t.slot(w, maphash.String(wordSeed, w))
	return s.count, s.w != ""
}

func (t *wordTable) grow() {
	old := t.slots
	t.slots = make([]wordSlot, max(64, 2*len(old)))
	for _, s := range old {
		if s.w != "" {
			*t.slot(s.w, s.hash) = s
		}
	}
}

// wordTables are maDiff's tables, cleared and reused: growing two tables
// to a newsletter's size for each message was most of what maDiff
// allocated. A table grown past maxPooledWords is left to the collector.
var wordTables = sync.Pool{New: func() any { return new(wordTable) }}

const maxPooledWords = 1 << 12

// putWordTable clears t (its words point into the view's texts: none may
// stay) and gives it back.
func putWordTable(t *wordTable) {
	if t.n > maxPooledWords {
		return
	}
	clear(t.slots)
	t.n = 0
	wordTables.Put(t)
}

// maDiffOne measures one multipart/alternative part into d.
func (v *view) maDiffOne(ma *filter.Part, d *maDiffResult) {
	html, text := wordTables.Get().(*wordTable), wordTables.Get().(*wordTable)
	defer putWordTable(html)
	defer putWordTable(text)
	walkParts(ma, func(p *filter.Part) {
		if !strings.HasPrefix(p.ContentType, "text") {
			return
		}
		typ, rendered, ok := v.saRendered(p)
		if !ok {
			return
		}
		words := text
		if typ == "text/html" {
			words = html
		}
		for i, j := nextField(rendered, 0); i < len(rendered); i, j = nextField(rendered, j) {
			if w := rendered[i:j]; hasWordRune(w) {
				words.add(w)
			}
		}
		if typ == "text/html" && html.n == 0 {
			if _, img := v.htmlReading(p).res.inside["img"]; img {
				html.add("\n")
			}
		}
	})
	orig := html.n
	if orig == 0 {
		return
	}
	d.html, d.text = orig, text.n
	d.diff = max(d.diff, float64(wordsLeft(html, text))/float64(orig)*100)
}

// wordsLeft counts the HTML words the text lacks or has fewer of: those
// the text has as often or more do not count.
func wordsLeft(html, text *wordTable) int {
	left := html.n
	for _, s := range text.slots {
		if s.w == "" {
			continue
		}
		if h, ok := html.get(s.w); ok && h-s.count < 1 {
			left--
		}
	}
	return left
}

// nextField returns the bounds of the first field of s at or after
// offset i, the fields being those strings.Fields splits s into (around
// runs of Unicode white space); start is len(s) when there is none. It
// reads ASCII a byte at a time, without the iterator and the rune
// decoding strings.FieldsSeq spends most of maDiff's time in.
func nextField(s string, i int) (start, end int) {
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if !asciiSpaceByte[c] {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	start = i
	for i < len(s) {
		c := s[i]
		if !bodySpaceByte[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return start, i
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// hasWordRune reports whether w holds a word character (Perl's \w), by
// bytes while they are ASCII.
func hasWordRune(w string) bool {
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			return strings.IndexFunc(w[i:], isWordRune) >= 0
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			return true
		}
	}
	return false
}

// walkParts calls fn for p and every part below it, in document order.
func walkParts(p *filter.Part, fn func(*filter.Part)) {
	fn(p)
	for _, c := range p.Children {
		walkParts(c, fn)
	}
}

// partText is a part's decoded text, cut at the scan limit.
func (v *view) partText(p *filter.Part) string {
	t, _ := p.Text()
	if max := v.set.limits.MaxScanBytes; len(t) > max {
		t = t[:max]
	}
	return t
}

// saRendered is Message::Node::rendered: the text of a text/plain part,
// or of a text/html part rendered; ok is false for other types.
func (v *view) saRendered(p *filter.Part) (typ, text string, ok bool) {
	typ = p.ContentType
	if n := strings.ToLower(p.Filename()); typ == "application/octet-stream" &&
		(strings.HasSuffix(n, ".htm") || strings.HasSuffix(n, ".html")) {
		typ = "text/html"
	}
	if typ != "text/plain" && typ != "text/html" {
		return "", "", false
	}
	t := v.partText(p)
	if typ == "text/html" && t != "" {
		return typ, v.htmlReading(p).sa, true
	}
	return "text/plain", t, true
}

// imageCount is ImageInfo's count_TYPE: base64 image/gif, png and jpeg
// leaves, valid images or not.
func (v *view) imageCount(typ string) int {
	parts, _ := v.m.Parts()
	n := 0
	for _, p := range parts {
		if len(p.Children) > 0 || p.IsMultipart() || p.Encoding != "base64" {
			continue
		}
		t, ok := strings.CutPrefix(p.ContentType, "image/")
		if !ok {
			continue
		}
		if t == "jpg" {
			t = "jpeg"
		}
		if (t == "gif" || t == "png" || t == "jpeg") && (typ == "all" || typ == t) {
			n++
		}
	}
	return n
}

// addrMatchesRcvd is WLBLEval::_check_addr_matches_rcvd: the address's
// registered domain is that of the first untrusted relay's reverse DNS,
// or with no untrusted relay, of any trusted one's.
func (v *view) addrMatchesRcvd(addr string) bool {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || !strings.Contains(addr[i+1:], ".") || strings.Contains(addr[i+1:], "@") {
		return false
	}
	want := registeredDomain(strings.ToLower(addr[i+1:]))
	ri := v.relays()
	var relays []*relay
	if len(ri.untrusted) > 0 {
		relays = ri.untrusted[:1]
	} else {
		relays = ri.trusted
	}
	for _, r := range relays {
		if r.rdns != "" && registeredDomain(strings.ToLower(r.rdns)) == want {
			return true
		}
	}
	return false
}

// registeredDomain is RegistryBoundaries::split_domain's domain part: the
// name below its public suffix, or the name itself (an address literal, a
// bare suffix).
func registeredDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	if mayBeIP(d) {
		if _, err := netip.ParseAddr(d); err == nil {
			return d
		}
	}
	r, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return r
}

// mayBeIP reports whether netip.ParseAddr could take s: an IPv6 address
// (with a colon) or digits and dots. Its error for a host name is an
// allocation.
func mayBeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// saMaxBodyLine is Message's MAX_BODY_LINE_LENGTH.
const saMaxBodyLine = 2048

// saBodyLines is Message::get_rendered_body_text_array, the lines
// SpamAssassin's body evals read: the Subject line ("\n" without one),
// then the rendered text of every text/plain and text/html leaf, each
// part after the first preceded by a newline (non-text leaves too), with
// blank-line runs as line breaks and every other run of white space as one
// space, cut into lines of at most 2048 bytes. Lines keep their "\n".
// A message without leaves has no lines at all, not even the Subject.
func (v *view) saBodyLines() []string {
	if v.sax.bodyLines != nil {
		return *v.sax.bodyLines
	}
	var lines []string
	v.sax.bodyLines = &lines
	leaves := v.saLeaves()
	if len(leaves) == 0 {
		return lines
	}
	// The joined text is scratch (pooled); the squashed one, after the
	// Subject, is the only copy kept.
	tp := getBuf()
	defer putBuf(tp)
	text := *tp
	var src string // the joined text: one leaf's own, else in text
	if len(leaves) == 1 {
		if l := leaves[0]; l.part == nil {
			src = l.text
		} else if _, t, ok := v.saRendered(l.part); ok {
			src = t
		}
		leaves = nil
	}
	for _, l := range leaves {
		if len(text) > 0 {
			text = append(text, '\n')
		}
		if l.part == nil {
			text = append(text, l.text...)
			continue
		}
		if _, t, ok := v.saRendered(l.part); ok {
			text = append(text, t...)
		}
	}
	*tp = text
	if len(text) > 0 {
		src = unsafe.String(unsafe.SliceData(text), len(text))
	}
	subject := "\n"
	for _, f := range v.headerFields() {
		if f.key == "subject" {
			subject = f.saText + "\n"
		}
	}
	// The squashed text lives as long as the view, in a pooled buffer
	// given back when Evaluate returns: the lines and what evals make of
	// them must not outlive it.
	lp := getBuf()
	v.sax.linesBuf = lp
	b := append(*lp, subject...)
	b = saSquashSpace(b, src)
	*lp = b
	all := unsafe.String(unsafe.SliceData(b), len(b))
	for len(all) > 0 {
		i := strings.IndexByte(all, '\n') + 1
		if i == 0 {
			i = len(all)
		}
		line := all[:i]
		all = all[i:]
		for len(line) > saMaxBodyLine {
			n := strings.LastIndexByte(line[:saMaxBodyLine+1], ' ') + 1
			if n == 0 {
				n = saMaxBodyLine
			}
			lines = append(lines, line[:n])
			line = line[n:]
		}
		lines = append(lines, line)
	}
	return lines
}

// saSquashSpace appends s to b with get_body_text_array_common's white-space handling:
// a run of newlines with only white space between them becomes one
// newline, any other run of white space one space.
func saSquashSpace(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && !asciiSpaceByte[c] {
			// A run of ASCII that is not white space, written whole, with
			// the single spaces between its words: a space alone stays a
			// space. Most of a text is such runs.
			j := i + 1
			for j < len(s) {
				c := s[j]
				if c < utf8.RuneSelf && !asciiSpaceByte[c] {
					j++
					continue
				}
				if c == ' ' && j+1 < len(s) && s[j+1] < utf8.RuneSelf && !asciiSpaceByte[s[j+1]] {
					j += 2
					continue
				}
				break
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			b = append(b, s[i:i+n]...)
			i += n
			continue
		}
		// A run of white space: a newline, then white space, then a
		// newline (\n+\s*\n+) makes it a line break.
		j, first, last := i, -1, -1
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if !unicode.IsSpace(r) {
				break
			}
			if r == '\n' {
				if first < 0 {
					first = j
				}
				last = j
			}
			j += n
		}
		switch {
		case first >= 0 && last > first:
			// Spaces before the first newline and after the last stay
			// spaces around the break.
			if first > i {
				b = append(b, ' ')
			}
			b = append(b, '\n')
			if last+1 < j {
				b = append(b, ' ')
			}
		default:
			b = append(b, ' ')
		}
		i = j
	}
	return b
}

// saLeaf is a leaf of SpamAssassin's MIME tree: a part, or the text of a
// multipart whose boundary never appears, which SpamAssassin reads as one
// text/plain part.
type saLeaf struct {
	part  *filter.Part
	text  string
	split bool // a part of a multipart's body (saSplitParts)
}

// saLeaves lists the leaves as Message::find_parts(qr/./, 1) does. A
// multipart without any part is a leaf of its whole body when it has one
// (the lines before the first that is not a header field are that part's
// header), and nothing when it has none.
func (v *view) saLeaves() []saLeaf {
	parts, _ := v.m.Parts()
	var out []saLeaf
	for _, p := range parts {
		if len(p.Children) > 0 {
			continue
		}
		if !p.IsMultipart() {
			out = append(out, v.saRootLeaf(p))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(p.Raw(), int64(v.set.limits.MaxScanBytes)))
		for _, t := range saSplitParts(strings.ReplaceAll(string(body), "\r\n", "\n"), p.Params["boundary"]) {
			out = append(out, saLeaf{text: saSkipPartHeader(t), split: true})
		}
	}
	return out
}

// saSplitParts is Message::_parse_multipart on a body without an opening
// boundary line: a part ends at each boundary line ("--b" or "--b--", the
// last then ending the list) and at the last line; a part cut by a
// boundary before any line of it is an empty part.
func saSplitParts(body, boundary string) []string {
	if body == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i < len(body); {
		j := strings.IndexByte(body[i:], '\n')
		end := len(body)
		if j >= 0 {
			end = i + j + 1
		}
		line := strings.TrimRight(body[i:end], " \t\r\n")
		if boundary != "" && (line == "--"+boundary || line == "--"+boundary+"--") {
			out = append(out, strings.TrimSuffix(body[start:i], "\n"))
			if strings.HasSuffix(line, boundary+"--") {
				return out
			}
			start = end
		}
		i = end
	}
	if start < len(body) {
		out = append(out, body[start:])
	}
	return out
}

// saSkipPartHeader drops what Message::_parse_multipart reads as a part's
// header: field lines and their continuations, and the blank line after.
func saSkipPartHeader(s string) string {
	inHeader := false
	for s != "" {
		line, rest, _ := strings.Cut(s, "\n")
		switch {
		case saHeaderLine.MatchString(line):
			inHeader = true
		case inHeader && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
		case strings.TrimSuffix(line, "\r") == "":
			return rest
		default:
			return s
		}
		s = rest
	}
	return s
}

// saRootLeaf is the leaf p, except for a message without MIME parts
// whose header SpamAssassin reads further than the parser did: it takes
// up to three lines that are not header fields (Message::new) as part of
// the header, where the parser starts the body at the first.
func (v *view) saRootLeaf(p *filter.Part) saLeaf {
	if p.Depth > 0 || p.ContentType != "text/plain" || (p.Encoding != "7bit" && p.Encoding != "8bit" && p.Encoding != "binary") {
		return saLeaf{part: p}
	}
	_, off := p.Offset()
	start := v.parseFlags().bodyStart
	if start <= off {
		return saLeaf{part: p}
	}
	n := min(v.m.Size()-start, int64(v.set.limits.MaxScanBytes))
	if n < 0 {
		n = 0
	}
	b := make([]byte, n)
	k, _ := v.m.ReaderAt().ReadAt(b, start)
	return saLeaf{text: strings.ReplaceAll(string(b[:k]), "\r\n", "\n")}
}
