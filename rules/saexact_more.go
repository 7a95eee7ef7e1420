package rules

import (
	"unicode"
	"unicode/utf8"
)

// More exact evaluations (saexact.go): backtracking rules that run on
// nearly every message, their RE2 supersets (the back-reference replaced
// by ".*") passing on most of them. Each comment says why the pattern
// leaves only the starts it tries.
func init() {
	for p, f := range map[string]func([]rune) bool{
		// INVALID_DATE_TZ_ABSURD (Date).
		`[-+](?!(?:0\d|1[0-4])(?:[03]0|[14]5))\d{4}$`: dateTZAbsurd,
		// __BOGUS_MIME_VER_02 (MIME-Version).
		`^(?!.*\b1\.0\b).+`: bogusMIMEVersion,
		// __HELO_NOT_RDNS (X-Spam-Relays-External).
		`^[^\]]+ rdns=(\S+) helo=(?!(?i)\1)\S`: heloNotRDNS,
		// __IP_IN_RELAY (X-Spam-Relays-External).
		`^\[ ip=(\d+)\.(\d+)\.(\d+)\.(\d+) (?:[^\]]* )?(?:rdns|helo)=\S*(?:\1\D\2\D\3\D\4|\4\D\3\D\2\D\1)`: ipInRelay,
		// __PDS_TO_BRAND_SUBJECT (ALL).
		`(?ism)^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b`: toBrandSubject,
		// RCVD_ILLEGAL_IP (X-Spam-Relays-Untrusted).
		` (?:by|ip)=(?=\d+\.\d+\.\d+\.\d+ )(?:(?:0|2(?:2[4-9]|[3-5]\d)|192\.0\.2|198\.51\.100|203\.0\.113)\.|(?:\d+\.){0,3}(?!(?:2(?:[0-4]\d|5[0-5])|[01]?\d\d?)\b))`: rcvdIllegalIP,
		// __NAME_EQ_EMAIL (From:raw).
		"(?i)([\\w+.-]+\\@[\\w.-]+\\.\\w\\w+)[\"'`\\s]*<\\s*\\1>": nameEqEmail,
		// __PDS_TO_EQ_FROM_NAME_1 (ALL).
		`(?ism)\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From:\W+(\1)([^\n\w<]+<)?((?!\1)[^\n">]+)>?\n`: hdrPair{
			a: "\nto: ", lines: 100, angle: true, then: fromNameNotAddr}.match,
		// __FORGED_RELAY_MUA_TO_MX (X-Spam-Relays-External).
		`^\[ ip=(?!127)([\d.]+) [^\[]*\[ ip=\1 [^\[]+ helo=(!(?!(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168)\.)| )[^\[]+$`: forgedRelayMUA,
		// __SUBJ_HAS_TO_2 (ALL): 94 us a message on regexp2 (real mail).
		`(?ism)\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]`: rcvdForInSubject,
		// __URI_LONG_REPEAT (uri): three regexp2 runs of 3 us a URI, on
		// every message with links (a tenth of the 30 KB HTML tier).
		`(?i)(?:://|@)(?:\w+\.)*(\w{7,}\.)\1`: uriLongRepeat,
	} {
		saExact[p] = f
	}
}

// uriLongRepeat is (?i)(?:://|@)(?:\w+\.)*(\w{7,}\.)\1. After a "://"
// or an "@", (?:\w+\.)* can only take whole labels with their dots (\w
// stops at the dot), so the capture is one whole label of at least seven
// word characters and its dot, at one of those label starts, and \1 asks
// for the same runes again, in any case, right after it. Under (?i)
// regexp2 lowers each rune before it tests it, as here.
func uriLongRepeat(r []rune) bool {
	low := func(i int) rune { return unicode.ToLower(r[i]) }
	for i := range r {
		p := -1
		switch {
		case low(i) == '@':
			p = i + 1
		case low(i) == ':' && i+2 < len(r) && low(i+1) == '/' && low(i+2) == '/':
			p = i + 3
		}
		for p >= 0 {
			j := p
			for j < len(r) && asciiWord(low(j)) {
				j++
			}
			if j == p || j == len(r) || low(j) != '.' {
				break
			}
			if j-p >= 7 && runesHavePrefixFoldRunes(r[j+1:], r[p:j+1]) {
				return true
			}
			p = j + 1
		}
	}
	return false
}

// dateTZAbsurd is [-+](?!(?:0\d|1[0-4])(?:[03]0|[14]5))\d{4}$: $ (no
// (?m)) is the end or before a final "\n", so the five characters before
// one of those two ends are the only candidates.
func dateTZAbsurd(r []rune) bool {
	n := len(r)
	for _, e := range [2]int{n, n - 1} {
		if e < 5 || e == n-1 && r[n-1] != '\n' {
			continue
		}
		s := r[e-5 : e]
		if s[0] != '+' && s[0] != '-' || !asciiDigit(s[1]) || !asciiDigit(s[2]) || !asciiDigit(s[3]) || !asciiDigit(s[4]) {
			continue
		}
		hh := s[1] == '0' || s[1] == '1' && s[2] <= '4'
		mm := (s[3] == '0' || s[3] == '3') && s[4] == '0' || (s[3] == '1' || s[3] == '4') && s[4] == '5'
		if !hh || !mm {
			return true
		}
	}
	return false
}

// bogusMIMEVersion is ^(?!.*\b1\.0\b).+ ("." is not "\n", ^ the start):
// a first line that is not empty and holds no "1.0" between word
// boundaries.
func bogusMIMEVersion(r []rune) bool {
	line := r
	for i, ch := range r {
		if ch == '\n' {
			line = r[:i]
			break
		}
	}
	if len(line) == 0 {
		return false
	}
	for i := 0; i+3 <= len(line); i++ {
		if line[i] == '1' && line[i+1] == '.' && line[i+2] == '0' &&
			(i == 0 || !asciiWord(line[i-1])) && (i+3 == len(line) || !asciiWord(line[i+3])) {
			return false
		}
	}
	return true
}

func asciiWord(ch rune) bool { return ch < utf8.RuneSelf && isWordByte(byte(ch)) }

// heloNotRDNS is ^[^\]]+ rdns=(\S+) helo=(?!(?i)\1)\S: " rdns=" after at
// least one character and before the first "]"; the capture is the whole
// run of non-space after it (\S+ must be followed by a space); then
// " helo=", a non-space, and not the capture again, ignoring case.
func heloNotRDNS(r []rune) bool {
	for p := 1; p+6 <= len(r); p++ {
		if r[p-1] == ']' {
			return false // [^\]]+ ends here
		}
		if !runesHavePrefix(r[p:], " rdns=") {
			continue
		}
		s := p + 6
		e := s
		for e < len(r) && !asciiSpace(r[e]) {
			e++
		}
		if e == s || !runesHavePrefix(r[e:], " helo=") {
			continue
		}
		q := e + 6
		if q < len(r) && !asciiSpace(r[q]) && !runesHavePrefixFoldRunes(r[q:], r[s:e]) {
			return true
		}
	}
	return false
}

// ipInRelay is ^\[ ip=(\d+)\.(\d+)\.(\d+)\.(\d+) (?:[^\]]* )?(?:rdns|helo)=\S*(?:\1\D\2\D\3\D\4|\4\D\3\D\2\D\1).
// The four numbers are whole runs of digits (each is followed by "." or
// " "). "rdns=" or "helo=" may start after any space before the first
// "]"; \S* leaves the address to start anywhere in the run of non-space
// after "=", or just past it.
func ipInRelay(r []rune) bool {
	if !runesHavePrefix(r, "[ ip=") {
		return false
	}
	var oct [4][]rune
	i := 5
	for k := range 4 {
		j := i
		for j < len(r) && asciiDigit(r[j]) {
			j++
		}
		sep := '.'
		if k == 3 {
			sep = ' '
		}
		if j == i || j >= len(r) || r[j] != sep {
			return false
		}
		oct[k] = r[i:j]
		i = j + 1
	}
	fwd := [4][]rune{oct[0], oct[1], oct[2], oct[3]}
	rev := [4][]rune{oct[3], oct[2], oct[1], oct[0]}
	for k := i; k+5 <= len(r); k++ {
		if k > i && r[k-2] == ']' {
			break // [^\]]* ends before here
		}
		if r[k-1] != ' ' || !runesHavePrefix(r[k:], "rdns=") && !runesHavePrefix(r[k:], "helo=") {
			continue
		}
		for j := k + 5; j <= len(r); j++ {
			if ipAt(r, j, &fwd) || ipAt(r, j, &rev) {
				return true
			}
			if j == len(r) || asciiSpace(r[j]) {
				break
			}
		}
	}
	return false
}

// ipAt reports whether the four numbers, each but the last followed by
// one non-digit, start r[j:].
func ipAt(r []rune, j int, oct *[4][]rune) bool {
	for k, o := range oct {
		if !runesHavePrefixRunes(r[j:], o) {
			return false
		}
		j += len(o)
		if k < 3 {
			if j >= len(r) || asciiDigit(r[j]) {
				return false
			}
			j++
		}
	}
	return true
}

func runesHavePrefixRunes(r, p []rune) bool {
	return len(r) >= len(p) && runesEqual(r[:len(p)], p)
}

// toBrandSubject is (?ism)^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b.
// After a "To:" at a line start, a space and at least one more character
// lead to the first "@" (nothing in \s, "<" or [^\@] is one); the capture
// runs from it to the next "." (it must be followed by one); the loop
// then takes text that starts with a character other than "\n" and ends
// with one, so "Subject: " may start any later line but the one right
// after the ".".
func toBrandSubject(r []rune) bool {
	n := len(r)
	for t := 0; t+3 <= n; t++ {
		if t > 0 && r[t-1] != '\n' || !runesHavePrefixFold(r[t:], "to:") {
			continue
		}
		i := t + 3
		if i >= n || !asciiSpace(r[i]) {
			continue
		}
		a := i
		for a < n && r[a] != '@' {
			a++
		}
		if a >= n || a-i < 2 {
			continue
		}
		d := a + 1
		for d < n && r[d] != '.' {
			d++
		}
		if d >= n || d == a+1 || d+1 >= n || r[d+1] == '\n' {
			continue
		}
		c := r[a+1 : d]
		for s := d + 2; s < n; s++ {
			if r[s-1] != '\n' || !runesHavePrefixFold(r[s:], "subject: ") {
				continue
			}
			v := s + len("subject: ")
			if subjectStartsWith(r, v, c) || v < n && r[v] == '"' && subjectStartsWith(r, v+1, c) {
				return true
			}
		}
	}
	return false
}

// subjectStartsWith reports whether r[v:] starts with c (ignoring case)
// and a word boundary follows it. Under (?i) regexp2 lowers a rune
// before it tests a class: U+212A KELVIN SIGN is a word character.
func subjectStartsWith(r []rune, v int, c []rune) bool {
	if !runesHavePrefixFoldRunes(r[v:], c) {
		return false
	}
	e := v + len(c)
	before := asciiWord(unicode.ToLower(r[e-1]))
	after := e < len(r) && asciiWord(unicode.ToLower(r[e]))
	return before != after
}

// rcvdForInSubject is
//
//	(?ism)\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]
//
// " for " may start at any of the 201 places after "\nReceived:" on its
// line; the capture starts after it or after a "<" that follows it (the
// "<" is one of the capture's characters too), and must run to the end
// of its characters, as only ">" or ";" may follow. The loop after the
// ";" takes the rest of its line (at least a character) and whole lines,
// so "Subject: " can only start right after the ";" or at the start of a
// later line; the rest is hdrPair's (second and ref, notAlnum).
func rcvdForInSubject(r []rune) bool {
	const head = "\nreceived:"
	subj := hdrPair{b: "subject: ", notAlnum: true}
	n := len(r)
	for i := 0; i < n; i++ {
		if r[i] != '\n' || !runesHavePrefixFold(r[i:], head) {
			continue
		}
		j := i + len(head)
		for u := j; u < n && u-j <= 200; u++ {
			if runesHavePrefixFold(r[u:], " for ") {
				g := u + len(" for ")
				if rcvdForCapture(r, g, subj) || g < n && r[g] == '<' && rcvdForCapture(r, g+1, subj) {
					return true
				}
			}
			if r[u] == '\n' {
				break
			}
		}
	}
	return false
}

// rcvdForCapture tries rcvdForInSubject's capture at g, and the Subject
// lines after it.
func rcvdForCapture(r []rune, g int, subj hdrPair) bool {
	n := len(r)
	e := g
	for e < n {
		ch := unicode.ToLower(r[e])
		if ch == '\n' || ch == '>' || ch == ';' || asciiSpace(ch) {
			break
		}
		e++
	}
	if e == g {
		return false
	}
	c := r[g:e]
	s := e
	if s < n && r[s] == '>' {
		s++
	}
	if s >= n || r[s] != ';' {
		return false
	}
	s++
	if subj.second(r, s, c) {
		return true // no turn of the loop
	}
	if s >= n || r[s] == '\n' {
		return false // the loop's first line needs a character
	}
	for {
		for s < n && r[s] != '\n' {
			s++
		}
		for s < n && r[s] == '\n' {
			s++
		}
		if s >= n {
			return false
		}
		if subj.second(r, s, c) {
			return true
		}
	}
}

// rcvdIllegalIP is
//
//	(?:by|ip)=(?=\d+\.\d+\.\d+\.\d+ )(?:(?:0|2(?:2[4-9]|[3-5]\d)|192\.0\.2|198\.51\.100|203\.0\.113)\.|(?:\d+\.){0,3}(?!(?:2(?:[0-4]\d|5[0-5])|[01]?\d\d?)\b))
//
// The look-ahead fixes four runs of digits, each whole (a "." or the
// space follows it); every alternative after it ends at a "." or at \b,
// so it matches whole runs: the first run is 0 or 224 to 259, the first
// three are one of the documentation networks, or one of the four is
// not an octet as [01]?\d\d? and 2[0-4]\d|25[0-5] spell one (more than
// three digits, or three above 255).
func rcvdIllegalIP(r []rune) bool {
	n := len(r)
	for p := 0; p+4 <= n; p++ {
		if r[p] != ' ' || r[p+3] != '=' || !(r[p+1] == 'b' && r[p+2] == 'y' || r[p+1] == 'i' && r[p+2] == 'p') {
			continue
		}
		var d [4][]rune
		q := p + 4
		ok := true
		for k := range d {
			e := q
			for e < n && asciiDigit(r[e]) {
				e++
			}
			sep := rune('.')
			if k == 3 {
				sep = ' '
			}
			if e == q || e >= n || r[e] != sep {
				ok = false
				break
			}
			d[k], q = r[q:e], e+1
		}
		if !ok {
			continue
		}
		first := string(d[0])
		if first == "0" || len(first) == 3 && first >= "224" && first <= "259" {
			return true
		}
		switch string(d[0]) + "." + string(d[1]) + "." + string(d[2]) {
		case "192.0.2", "198.51.100", "203.0.113":
			return true
		}
		for _, o := range d {
			if len(o) > 3 || len(o) == 3 && string(o) > "255" {
				return true
			}
		}
	}
	return false
}

// nameEqEmail is
//
//	(?i)([\w+.-]+\@[\w.-]+\.\w\w+)["'`\s]*<\s*\1>
//
// The back-reference ends at a ">" and holds none, and it starts with a
// capture character, no space: after each "<" and its spaces it is what
// runs to the next ">". The capture is as long and ends where the quotes
// and spaces before the "<" may end; it must be an address as the
// capture spells one (\w ASCII), and equal the back-reference rune by
// lowered rune.
func nameEqEmail(r []rune) bool {
	for lt, ch := range r {
		if unicode.ToLower(ch) != '<' {
			continue
		}
		k := lt + 1
		for k < len(r) && asciiSpace(r[k]) {
			k++
		}
		gt := k
		for gt < len(r) && r[gt] != '>' {
			gt++
		}
		if gt == len(r) || gt == k {
			continue
		}
		ref := r[k:gt]
		for e := lt; e >= len(ref); e-- {
			if c := r[e-len(ref) : e]; nameEqAddr(c) && runesHavePrefixFoldRunes(ref, c) {
				return true
			}
			if q := unicode.ToLower(r[e-1]); q != '"' && q != '\'' && q != '`' && !asciiSpace(q) {
				break
			}
		}
	}
	return false
}

// nameEqAddr reports whether c is all of [\w+.-]+\@[\w.-]+\.\w\w+.
func nameEqAddr(c []rune) bool {
	at := -1
	for i, ch := range c {
		ch = unicode.ToLower(ch) // regexp2 under (?i) lowers what it tests
		if ch == '@' {
			at = i
			break
		}
		if !asciiWord(ch) && ch != '+' && ch != '.' && ch != '-' {
			return false
		}
	}
	if at < 1 {
		return false
	}
	d := c[at+1:]
	dot := -1
	for i, ch := range d {
		ch = unicode.ToLower(ch)
		if ch == '.' {
			dot = i
		} else if !asciiWord(ch) && ch != '-' {
			return false
		}
	}
	if dot < 1 || len(d)-dot-1 < 2 {
		return false
	}
	for _, ch := range d[dot+1:] {
		if !asciiWord(unicode.ToLower(ch)) {
			return false
		}
	}
	return true
}

// fromNameNotAddr is __PDS_TO_EQ_FROM_NAME_1's second line, after
// hdrPair's To line and loop:
//
//	From:\W+(\1)([^\n\w<]+<)?((?!\1)[^\n">]+)>?\n
//
// \1 may start after any of the non-word runes that follow "From:" (it
// may start with one itself); the optional group can only take the
// whole run of its characters up to a "<"; the last run must be whole,
// as only ">" and "\n" may follow it, and must not start with \1. Runes
// are lowered before each test, as regexp2 does under (?i).
func fromNameNotAddr(r []rune, m int, c []rune) bool {
	if !runesHavePrefixFold(r[m:], "from:") {
		return false
	}
	n := len(r)
	for j := m + len("from:"); j < n && !asciiWord(unicode.ToLower(r[j])); j++ {
		s := j + 1
		if !runesHavePrefixFoldRunes(r[s:], c) {
			continue
		}
		q := s + len(c)
		if fromNameTail(r, q, c) {
			return true
		}
		e := q
		for e < n {
			ch := unicode.ToLower(r[e])
			if ch == '\n' || ch == '<' || asciiWord(ch) {
				break
			}
			e++
		}
		if e > q && e < n && r[e] == '<' && fromNameTail(r, e+1, c) {
			return true
		}
	}
	return false
}

// fromNameTail is ((?!\1)[^\n">]+)>?\n at t.
func fromNameTail(r []rune, t int, c []rune) bool {
	if runesHavePrefixFoldRunes(r[t:], c) {
		return false
	}
	n := len(r)
	e := t
	for e < n && r[e] != '\n' && r[e] != '"' && r[e] != '>' {
		e++
	}
	if e == t {
		return false
	}
	return e < n && r[e] == '\n' || e+1 < n && r[e] == '>' && r[e+1] == '\n'
}

// forgedRelayMUA is
//
//	^\[ ip=(?!127)([\d.]+) [^\[]*\[ ip=\1 [^\[]+ helo=(!(?!(?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168)\.)| )[^\[]+$
//
// The capture is the first relay's whole address (a space follows it);
// [^\[]* can only reach the next "[", where the second relay must start
// with the same address; and as neither of the two runs after it holds a
// "[", that relay is the last one and holds none. It matches if one of
// its " helo=" after the first character is followed by a space, or by
// "!" and no private network, and then by at least a character ($ takes
// the end, a final "\n" being one of [^\[]).
func forgedRelayMUA(r []rune) bool {
	n := len(r)
	if !runesHavePrefix(r, "[ ip=") || runesHavePrefix(r[5:], "127") {
		return false
	}
	e := 5
	for e < n && (asciiDigit(r[e]) || r[e] == '.') {
		e++
	}
	if e == 5 || e >= n || r[e] != ' ' {
		return false
	}
	c := r[5:e]
	b := e + 1
	for b < n && r[b] != '[' {
		b++
	}
	k := b + len("[ ip=")
	if !runesHavePrefix(r[b:], "[ ip=") || k+len(c) >= n || !runesEqual(r[k:k+len(c)], c) || r[k+len(c)] != ' ' {
		return false
	}
	s2 := k + len(c) + 1
	for _, ch := range r[s2:] {
		if ch == '[' {
			return false
		}
	}
	for h := s2 + 1; h+len(" helo=")+1 < n; h++ {
		if !runesHavePrefix(r[h:], " helo=") {
			continue
		}
		a := h + len(" helo=")
		if r[a] == ' ' || r[a] == '!' && !privateNetPrefix(r[a+1:]) {
			return true
		}
	}
	return false
}

// privateNetPrefix is (?:10|127|169\.254|172\.(?:1[6-9]|2[0-9]|3[01])|192\.168)\. at the start of t.
func privateNetPrefix(t []rune) bool {
	for _, p := range [...]string{"10.", "127.", "169.254.", "192.168."} {
		if runesHavePrefix(t, p) {
			return true
		}
	}
	if !runesHavePrefix(t, "172.") || len(t) < 7 || t[6] != '.' {
		return false
	}
	switch t[4] {
	case '1':
		return '6' <= t[5] && t[5] <= '9'
	case '2':
		return asciiDigit(t[5])
	case '3':
		return t[5] == '0' || t[5] == '1'
	}
	return false
}
