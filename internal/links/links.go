// Package links finds the links in mail bodies: the one extractor shared by
// the URI blocklists (rbl) and the rule engine's uri rules, so that both see
// the same hosts.
//
// Spam hides its links from filters in the ways browsers forgive: HTML
// entities (http://exa&#109;ple&#x2e;com), mixed case, a trailing dot, an
// internationalised name, a host written as one decimal, hex or octal number
// (http://3232235777/ is 192.168.1.1), backslashes for slashes, tabs and
// line breaks inside an href. Extract undoes each of them the way a WHATWG
// URL parser would, and names every link by its host in ASCII (IDNA 2008
// with UTS #46 mapping, RFC 5891), its registrable domain (the public suffix
// list) and, for numeric hosts, its IP address.
//
// Text hidden in an encoding the declared charset does not name is read
// that way too (FromMessage): UTF-7, declared or recognised by its runs
// ("+ADw-a href+AD0AIg-http://..."), and UTF-16 without a declaration;
// links of every reading count.
//
// What it finds: http, https and scheme-relative (//host) URLs in text, the
// href and src attributes of HTML, and bare "www." names. It does not guess
// that a word with a dot ("invoice.pdf") is a host. Work is linear in the
// input and the number of links returned is capped.
package links

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/portcullis-mail/portcullis/filter"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// DefaultMax is the number of links returned when the caller passes 0.
const DefaultMax = 1000

// maxHostLen bounds a host name (RFC 1035: 253 octets in text form).
const maxHostLen = 253

// Link is one link as a browser would follow it.
type Link struct {
	URL    string     // normalised: lower-case scheme, "://", normalised host, the rest as found
	Host   string     // lower case, ASCII (punycode), no trailing dot; an IPv6 address without brackets
	Domain string     // registrable domain (eTLD+1) of Host; "" for IPs and bare suffixes
	IP     netip.Addr // the address when the host is numeric; invalid otherwise
}

// Extract returns the links in text, deduplicated by URL, in the order
// found, at most max of them (0 means DefaultMax, negative means no cap).
// With html set, entities are decoded and href/src attributes are read as
// a browser reads them.
func Extract(text string, html bool, max int) []Link {
	c := newCollector(max)
	defer c.release()
	c.add(text, html)
	return c.links
}

// FromMessage returns the links of every text part of m (text/html parts
// read as HTML), deduplicated across parts, at most max (0 means
// DefaultMax). A part that could not be decoded completely contributes
// what was decoded before the error. They are extracted once per message
// and max (filter.Message.Shared): the rules and the URI lists ask for
// the same links, and the slice is shared, so a caller must not change it.
func FromMessage(m *filter.Message, max int) []Link {
	if max == 0 {
		max = DefaultMax
	}
	l, _ := m.Shared(sharedLinks{max}, func() any { return fromMessage(m, max) }).([]Link)
	return l
}

// sharedLinks is FromMessage's key for filter.Message.Shared.
type sharedLinks struct{ max int }

func fromMessage(m *filter.Message, max int) []Link {
	c := newCollector(max)
	defer c.release()
	parts, _ := m.Parts()
	for _, p := range parts {
		if c.full() {
			break
		}
		if !p.IsText() {
			continue
		}
		text, _ := p.Text()
		isHTML := p.ContentType == "text/html"
		c.add(text, isHTML)
		for _, other := range readings(p, text) {
			c.add(other, isHTML || looksHTML(other))
		}
	}
	return c.links
}

// looksHTML reports text another reading revealed as HTML (a UTF-7
// text/plain part a client may still render).
func looksHTML(s string) bool {
	return indexFold(s, "<a ") >= 0 || indexFold(s, "href") >= 0 || indexFold(s, "<img") >= 0
}

type collector struct {
	max   int
	seen  map[string]bool
	links []Link

	// hosts memoises normalise: a link is found twice in HTML (its href
	// attribute, then as text), and a newsletter's links share a few
	// hosts, each an IDNA mapping and a public-suffix lookup.
	hosts map[string]hostResult

	// buf holds the HTML text add decoded, pooled and reused by the next
	// add: while scratch is set, the text being read is buf's, and what
	// outlives the add (hosts' keys, a link's Host and Domain) is copied
	// out of it. URLs are always built anew.
	buf     *[]byte
	scratch bool
}

// unescapeBufs are the collectors' buffers; one larger than
// maxPooledUnescape is left to the garbage collector.
var unescapeBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledUnescape = 4 << 20

// inBuf reports whether s is (a piece of) buf's memory.
func (c *collector) inBuf(s string) bool {
	if c.buf == nil || len(s) == 0 || cap(*c.buf) == 0 {
		return false
	}
	b := *c.buf
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b[:1])))
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return lo <= p && p < lo+uintptr(cap(b))
}

func (c *collector) release() {
	if c.buf != nil && cap(*c.buf) <= maxPooledUnescape {
		unescapeBufs.Put(c.buf)
	}
	c.buf = nil
}

type hostResult struct {
	l  Link
	ok bool
}

func newCollector(max int) *collector {
	if max == 0 {
		max = DefaultMax
	}
	return &collector{max: max, seen: map[string]bool{}, hosts: map[string]hostResult{}}
}

func (c *collector) normalise(host string) (Link, bool) {
	if r, ok := c.hosts[host]; ok {
		return r.l, r.ok
	}
	l, ok := normalise(host)
	if c.scratch {
		// host may be a piece of buf, and so may what normalise
		// returned: one copy serves the key and, most often, the Host.
		if c.inBuf(host) {
			host = strings.Clone(host)
		}
		if l.Host == host {
			l.Host = host
		} else if c.inBuf(l.Host) {
			l.Host = strings.Clone(l.Host)
		}
		if c.inBuf(l.Domain) {
			if strings.HasSuffix(l.Host, l.Domain) {
				l.Domain = l.Host[len(l.Host)-len(l.Domain):]
			} else {
				l.Domain = strings.Clone(l.Domain)
			}
		}
	}
	c.hosts[host] = hostResult{l, ok}
	return l, ok
}

func (c *collector) full() bool { return c.max > 0 && len(c.links) >= c.max }

func (c *collector) push(l Link, ok bool) {
	if !ok || c.full() || c.seen[l.URL] {
		return
	}
	c.seen[l.URL] = true
	c.links = append(c.links, l)
}

func (c *collector) add(text string, isHTML bool) {
	if isHTML {
		// Entities first: they may spell any part of a URL, the attribute
		// names included.
		if c.buf == nil {
			c.buf = unescapeBufs.Get().(*[]byte)
		}
		*c.buf, text, c.scratch = unescapeHTML((*c.buf)[:0], text)
		c.attributes(text)
	}
	c.bare(text)
	c.scratch = false
}

// attributes reads href= and src= values, which browsers strip of
// surrounding spaces and of tabs and line breaks anywhere, and which may
// be scheme-relative.
//
// Both names have an r second: the loop goes from one r or R of the text
// to the next (nextR), which strings.IndexByte finds many bytes at a
// time, instead of looking at every byte.
func (c *collector) attributes(text string) {
	r := nextR{s: text, lower: -1, upper: -1}
	for i := r.from(1) - 1; i < len(text)-1; i = r.from(i+2) - 1 {
		if !mayStartAttr(text[i], text[i+1]) {
			continue
		}
		if c.full() {
			return
		}
		var n int
		switch {
		case hasPrefixFold(text[i:], "href"):
			n = 4
		case hasPrefixFold(text[i:], "src"):
			n = 3
		default:
			continue
		}
		if i > 0 && isWordByte(text[i-1]) {
			continue
		}
		j := skipSpace(text, i+n)
		if j >= len(text) || text[j] != '=' {
			continue
		}
		j = skipSpace(text, j+1)
		val, end := attrValue(text, j)
		i = end - 1
		val = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, val)
		val = strings.TrimSpace(val)
		switch {
		case hasPrefixFold(val, "http:") || hasPrefixFold(val, "https:"):
			c.push(c.parseURL(val))
		case strings.HasPrefix(val, "//") || strings.HasPrefix(val, `\\`):
			c.push(c.parseURL("http:" + val))
		}
	}
}

// nextR finds the r and R bytes of s in order, each case with its own
// strings.IndexByte search, remembered until the position passes it.
type nextR struct {
	s            string
	lower, upper int // the next r and R at or after the last position asked for, or len(s); -1 before the first search
}

// from returns the offset of the first r or R at or after i, or len(s).
func (r *nextR) from(i int) int {
	if i >= len(r.s) {
		return len(r.s)
	}
	if r.lower < i {
		r.lower = indexFrom(r.s, i, 'r')
	}
	if r.upper < i {
		r.upper = indexFrom(r.s, i, 'R')
	}
	return min(r.lower, r.upper)
}

// indexFrom is the offset of the first b in s at or after i, or len(s).
func indexFrom(s string, i int, b byte) int {
	if k := strings.IndexByte(s[i:], b); k >= 0 {
		return i + k
	}
	return len(s)
}

func attrValue(s string, i int) (string, int) {
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		q := s[i]
		end := strings.IndexByte(s[i+1:], q)
		if end < 0 {
			return s[i+1:], len(s)
		}
		return s[i+1 : i+1+end], i + 2 + end
	}
	j := i
	for j < len(s) && s[j] != '>' && !isSpaceByte(s[j]) {
		j++
	}
	return s[i:j], j
}

// attrStart and bareStart are the bytes an attribute name (href, src)
// and a bare link (http, www.) start with, in either case: bare skips
// every other byte of a body with one lookup, attributes every other r.
var attrStart, bareStart = [256]bool{'h': true, 'H': true, 's': true, 'S': true}, [256]bool{'h': true, 'H': true, 'w': true, 'W': true}

// mayStartAttr reports whether bytes a, b may start href or src: both
// have an r second, so most h and s bytes of a text go no further.
func mayStartAttr(a, b byte) bool { return attrStart[a] && b|0x20 == 'r' }

// mayStartBare reports whether bytes a, b may start http or www.
func mayStartBare(a, b byte) bool {
	n := b | 0x20
	return bareStart[a] && (n == 't' || n == 'w')
}

// bare finds http(s) URLs and www. names anywhere in text.
func (c *collector) bare(text string) {
	for i := 0; i < len(text)-1; i++ {
		if !mayStartBare(text[i], text[i+1]) {
			continue
		}
		if c.full() {
			return
		}
		var (
			l   Link
			ok  bool
			end int
		)
		switch {
		case hasPrefixFold(text[i:], "http:") || hasPrefixFold(text[i:], "https:"):
			l, ok, end = c.parseURLAt(text, i)
		case hasPrefixFold(text[i:], "www.") && (i == 0 || !isHostByte(text[i-1]) && text[i-1] != '/' && text[i-1] != '@'):
			l, ok, end = c.parseURLAt(text, i)
		default:
			continue
		}
		c.push(l, ok)
		if end > i {
			i = end - 1
		}
	}
}

// parseURL parses a URL that fills s.
func (c *collector) parseURL(s string) (Link, bool) {
	l, ok, _ := c.parseURLAt(s, 0)
	return l, ok
}

// parseURLAt parses the URL starting at s[i]. A bare name (www.) has no
// scheme and gets http. It returns where the URL ends in s.
func (c *collector) parseURLAt(s string, i int) (Link, bool, int) {
	scheme := "http"
	j := i
	if hasPrefixFold(s[i:], "http:") || hasPrefixFold(s[i:], "https:") {
		k := strings.IndexByte(s[i:], ':')
		scheme = strings.ToLower(s[i : i+k])
		j = i + k + 1
		for j < len(s) && (s[j] == '/' || s[j] == '\\') {
			j++
		}
	}
	// Authority: up to the first character a host cannot hold.
	hs := j
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if !isAuthorityRune(r) {
			break
		}
		j += size
	}
	authority := s[hs:j]
	// The rest: path, query, fragment, up to a space or a delimiter.
	rs := j
	if j < len(s) && (s[j] == '/' || s[j] == '?' || s[j] == '#' || s[j] == '\\') {
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if isURLEnd(r) {
				break
			}
			j += size
		}
	}
	rest := strings.TrimRight(s[rs:j], ".,;:!?)]}'*")
	if rest == "" {
		// A host at the end of a sentence: "see http://example.com."
		authority = strings.TrimRight(authority, ".:")
	}
	end := rs + len(rest)
	if rest == "" {
		end = hs + len(authority)
	}
	host, port, ok := splitAuthority(authority)
	if !ok {
		return Link{}, false, max(end, i+1)
	}
	l, ok := c.normalise(host)
	if !ok {
		return Link{}, false, max(end, i+1)
	}
	hostPart := l.Host
	if l.IP.Is6() {
		hostPart = "[" + l.Host + "]"
	}
	if port != "" {
		hostPart += ":" + port
	}
	rest = strings.ReplaceAll(rest, `\`, "/")
	l.URL = scheme + "://" + hostPart + rest
	return l, true, end
}

// splitAuthority drops userinfo and returns host and port.
func splitAuthority(a string) (host, port string, ok bool) {
	if k := strings.LastIndexByte(a, '@'); k >= 0 {
		a = a[k+1:]
	}
	if strings.HasPrefix(a, "[") {
		k := strings.IndexByte(a, ']')
		if k < 0 {
			return "", "", false
		}
		host, a = a[:k+1], a[k+1:]
		if strings.HasPrefix(a, ":") {
			port = a[1:]
		}
	} else if k := strings.LastIndexByte(a, ':'); k >= 0 {
		host, port = a[:k], a[k+1:]
	} else {
		host = a
	}
	if port != "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", "", false
		}
	}
	return host, port, host != ""
}

var (
	lookup  = idna.Lookup
	lenient = idna.New(idna.MapForLookup(), idna.Transitional(false))
)

// normalise turns a host as written into a Link without URL: IPv6 and IPv4
// in any of the numeric forms browsers accept, or a name in ASCII.
func normalise(host string) (Link, bool) {
	if strings.HasPrefix(host, "[") {
		ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return Link{}, false
		}
		ip = ip.Unmap()
		return Link{Host: ip.String(), IP: ip}, true
	}
	if len(host) > 4*maxHostLen {
		return Link{}, false // too long for any host, in any spelling
	}
	if strings.IndexByte(host, '%') >= 0 {
		host = percentDecode(host)
	}
	name, err := lookup.ToASCII(host)
	if err != nil {
		// Browsers still go where a sloppy name points; keep the mapped
		// form when the strict profile refuses it.
		name, err = lenient.ToASCII(host)
		if err != nil || name == "" {
			return Link{}, false
		}
	}
	name = strings.ToLower(strings.TrimRight(name, "."))
	if name == "" || len(name) > maxHostLen || !validHost(name) {
		return Link{}, false
	}
	if ip, ok, numeric := parseIPv4(name); numeric {
		if !ok {
			return Link{}, false
		}
		return Link{Host: ip.String(), IP: ip}, true
	}
	dom, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		dom = ""
	}
	return Link{Host: name, Domain: dom}, true
}

func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_') {
			return false
		}
	}
	return !strings.Contains(s, "..") && s[0] != '.'
}

// parseIPv4 follows the WHATWG host parser: a host whose last label is a
// number is an IPv4 address of one to four parts, each decimal, 0x hex or
// 0-prefixed octal, the last part filling the remaining bytes. numeric
// reports whether the host is meant as a number at all; ok whether it is a
// valid one.
func parseIPv4(s string) (ip netip.Addr, ok, numeric bool) {
	labels := strings.Split(s, ".")
	if !isNumber(labels[len(labels)-1]) {
		return netip.Addr{}, false, false
	}
	if len(labels) > 4 {
		return netip.Addr{}, false, true
	}
	var nums []uint64
	for _, l := range labels {
		n, err := parseIPv4Part(l)
		if err != nil {
			return netip.Addr{}, false, true
		}
		nums = append(nums, n)
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false, true
	}
	v := last
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false, true
		}
		v |= n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, true
}

func isNumber(l string) bool {
	if l == "" {
		return false
	}
	if _, err := parseIPv4Part(l); err == nil {
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true // all digits but out of range: still meant as a number
}

func parseIPv4Part(l string) (uint64, error) {
	base := 10
	switch {
	case len(l) >= 2 && (l[:2] == "0x" || l[:2] == "0X"):
		l, base = l[2:], 16
		if l == "" {
			return 0, nil
		}
	case len(l) >= 2 && l[0] == '0':
		l, base = l[1:], 8
	}
	if l == "" || l[0] == '+' || l[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(l, base, 32)
}

func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return strings.ToValidUTF8(b.String(), "")
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b|0x20 >= 'a' && b|0x20 <= 'f'
}

// isAuthorityRune reports whether r can be part of a host, port or
// userinfo as spam writes them: ASCII letters, digits and -._~%:@[] and
// any non-ASCII character that is not a space (IDN, fullwidth dots).
func isAuthorityRune(r rune) bool {
	if r < utf8.RuneSelf {
		return isHostByte(byte(r)) || strings.IndexByte("~%:@[]", byte(r)) >= 0
	}
	return r != utf8.RuneError && !unicode.IsSpace(r) && unicode.IsPrint(r) && !unicode.IsPunct(r) || r == '\u3002' || r == '\uff0e' || r == '\uff61' || r == '\u00ad'
}

func isHostByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_'
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

func isURLEnd(r rune) bool {
	switch r {
	case '<', '>', '"', '\'', '`', utf8.RuneError:
		return true
	}
	return unicode.IsSpace(r) || unicode.IsControl(r)
}

func isSpaceByte(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' }

func skipSpace(s string, i int) int {
	for i < len(s) && isSpaceByte(s[i]) {
		i++
	}
	return i
}

// hasPrefixFold reports whether s starts with prefix, a lower-case ASCII
// string, in any case. It is what strings.EqualFold says over
// s[:len(prefix)] (a multi-byte rune cannot fold to fewer bytes of ASCII
// in as many runes), without its Unicode path: it runs at every byte of a
// body.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
