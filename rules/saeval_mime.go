package rules

import (
	"bytes"
	"regexp"
	"strings"
	"unsafe"

	"github.com/portcullis-mail/portcullis/filter"
)

// Ports of Plugin::MIMEEval and of the parse flags Mail::SpamAssassin::
// Message sets while it splits a message (check_msg_parse_flags).

func init() {
	saEvals["check_for_mime"] = func(_ *saConf, args []string) (evalFunc, error) {
		key := argString(args, 0)
		get, ok := mimeKeys[key]
		if !ok {
			return nil, errArgs(args)
		}
		return func(v *view) bool { return get(v.mimeStats()) }, nil
	}
	saEvals["check_for_mime_html"] = func(*saConf, []string) (evalFunc, error) {
		return func(v *view) bool {
			return v.topContentTypeHTML() || v.mimeStats().htmlCount > 0
		}, nil
	}
	saEvals["check_for_mime_html_only"] = func(*saConf, []string) (evalFunc, error) {
		return func(v *view) bool {
			st := v.mimeStats()
			return v.topContentTypeHTML() || st.htmlCount > 0 && st.textCount == 0
		}, nil
	}
	saEvals["check_mime_multipart_ratio"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, 0)
		hi, err2 := argFloat(args, 1, 0)
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			r := v.mimeStats().multipartRatio
			return r >= lo && r < hi
		}, nil
	}
	saEvals["check_msg_parse_flags"] = func(_ *saConf, args []string) (evalFunc, error) {
		key := argString(args, len(args)-1)
		get, ok := parseFlagKeys[key]
		if !ok {
			return nil, errArgs(args)
		}
		return func(v *view) bool { return get(v.parseFlags()) }, nil
	}
}

var mimeKeys = map[string]func(*mimeStats) bool{
	"mime_base64_count":        func(s *mimeStats) bool { return s.base64Count > 0 },
	"mime_qp_count":            func(s *mimeStats) bool { return s.qpCount > 0 },
	"mime_base64_encoded_text": func(s *mimeStats) bool { return s.base64Text },
	"mime_qp_long_line":        func(s *mimeStats) bool { return s.qpLongLine },
	"mime_bad_iso_charset":     func(s *mimeStats) bool { return s.badISOCharset },
	"mime_attachment":          func(s *mimeStats) bool { return s.attachment > 0 },
	"mime_faraway_charset":     func(*mimeStats) bool { return false }, // ok_locales defaults to all
	"mime_missing_boundary":    func(s *mimeStats) bool { return s.missingBoundary },
	"mimepart_limit_exceeded":  func(*mimeStats) bool { return false },
	"mime_multipart_alternative": func(s *mimeStats) bool {
		return s.multipartAlternative
	},
}

// mimeStats is Plugin::MIMEEval::_check_attachments' summary of the parts.
type mimeStats struct {
	htmlCount, textCount      int
	base64Count, qpCount      int
	attachment                int
	base64Text, badISOCharset bool
	qpLongLine                bool
	multipartAlternative      bool
	multipartRatio            float64
	missingBoundary           bool
	asciiTextIllegal          int
	normalChars, unicodeChars int
	qpBytes, qpEncoded        int
	textUnicodeRatio, qpRatio float64
	partTypes                 []string
	partBytes                 []int // -1 for an attachment
}

var (
	saASCIICharset = mustPrecheck(`(?:us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|ascii|iso646-us|us|ibm367|cp367|csascii)`)
	saISOCharset   = mustPrecheck(`(?i)iso-\S+-\S+\b`)
	saISOGood      = mustPrecheck(`(?i)iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b`)
	saUnicodeEsc   = regexp.MustCompile(`&#x[0-9A-F]{4};`)
)

func (v *view) mimeStats() *mimeStats {
	if v.mime != nil {
		return v.mime
	}
	st := &mimeStats{multipartRatio: 1}
	v.mime = st
	parts, _ := v.m.Parts()
	for _, p := range parts {
		ct := p.ContentType
		if ct == "multipart/alternative" {
			st.multipartAlternative = true
		}
		cte := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))
		cd := strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Disposition")))
		charset := strings.ToLower(p.Params["charset"])
		switch {
		case ct == "text/html":
			st.htmlCount++
		case strings.HasPrefix(ct, "text"):
			st.textCount++
		}
		if strings.Contains(cte, "base64") {
			st.base64Count++
		} else if strings.Contains(cte, "quoted-printable") {
			st.qpCount++
		}
		if strings.Contains(cd, "attachment") {
			st.attachment++
		}
		if strings.HasPrefix(ct, "text") && strings.Contains(cte, "base64") &&
			(charset == "" || saASCIICharset.MatchString(charset)) &&
			!(strings.HasPrefix(cd, "attachment") || strings.HasPrefix(cd, "inline")) {
			st.base64Text = true
		}
		if saISOCharset.MatchString(charset) && !saISOGood.MatchString(charset) {
			st.badISOCharset = true
		}
		if len(p.Children) > 0 || p.IsMultipart() {
			continue
		}
		bytesHere := -1
		if !strings.Contains(cd, "attachment") {
			bytesHere = 0
		}
		countBytes := st.multipartAlternative && bytesHere >= 0 && (ct == "text/plain" || ct == "text/html")
		plain := ct == "text/plain" && (charset == "" || charset == "us-ascii" || cte == "" || cte == "7bit" || cte == "8bit")
		// A part none of the counts below applies to (a base64
		// attachment, most often) is not read.
		if countBytes || plain || cte == "quoted-printable" {
			v.scanPartLines(p, func(line []byte) {
				if countBytes {
					bytesHere += len(line)
				}
				if cte == "quoted-printable" && !bytes.HasPrefix(line, []byte("SPAM: ")) {
					if len(line) > 79 {
						st.qpLongLine = true
					}
					st.qpBytes += len(line)
					if n := qpEncodedCount(line); n > 0 {
						st.qpEncoded += n - qpTrailingBlanks(line)
					}
				}
				if ct == "text/plain" && (charset == "" || charset == "us-ascii") {
					for _, c := range line {
						if c == 0 || c == '\r' || c >= 0x80 {
							st.asciiTextIllegal++
							break
						}
					}
				}
				if ct == "text/plain" && (cte == "" || cte == "7bit" || cte == "8bit") {
					subs := 0
					if bytes.Contains(line, []byte("&#x")) {
						subs = len(saUnicodeEsc.FindAllIndex(line, -1))
					}
					st.unicodeChars += subs
					st.normalChars += len(line) - 8*subs
				}
			})
		}
		st.partTypes = append(st.partTypes, ct)
		st.partBytes = append(st.partBytes, bytesHere)
	}
	// A multipart whose boundary never appears is text/plain parts for
	// SpamAssassin (saLeaves).
	for _, l := range v.saLeaves() {
		if l.split {
			st.textCount++
		}
	}
	if st.qpBytes > 0 {
		// As in MIMEEval: the count of QP parts becomes the count of
		// needlessly encoded bytes.
		st.qpRatio = float64(st.qpEncoded) / float64(st.qpBytes)
		st.qpCount = st.qpEncoded
	}
	if st.normalChars > 0 {
		st.textUnicodeRatio = float64(st.unicodeChars) / float64(st.normalChars)
	}
	if st.multipartAlternative {
		html, text := -1, -1
		for i := len(st.partTypes) - 1; i >= 0; i-- {
			if st.partBytes[i] < 0 {
				continue
			}
			if html < 0 && st.partTypes[i] == "text/html" {
				html = st.partBytes[i]
			} else if text < 0 && st.partTypes[i] == "text/plain" {
				text = st.partBytes[i]
			}
			if html >= 0 && text >= 0 {
				break
			}
		}
		if text >= 0 && html > 0 {
			st.multipartRatio = float64(text) / float64(html)
		}
	}
	st.missingBoundary = v.parseFlags().missingBoundary
	return st
}

// maxPartLine is the longest line scanPartLines passes whole.
const maxPartLine = 64 << 10

// qpEncodedCount counts what MIMEEval's
// /=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])/g matches in a
// quoted-printable line: encodings of printable ASCII (and of tab) that
// need none; "=3D", the encoded "=", is needed.
func qpEncodedCount(line []byte) int {
	n := 0
	for {
		i := bytes.IndexByte(line, '=')
		if i < 0 || len(line)-i < 3 {
			return n
		}
		hi, lo := line[i+1], line[i+2]
		var ok bool
		switch hi {
		case '0':
			ok = lo == '9'
		case '2', '4', '5', '6':
			ok = isUpperHex(lo)
		case '3':
			ok = isUpperHex(lo) && lo != 'D'
		case '7':
			ok = isUpperHex(lo) && lo != 'F'
		}
		if ok {
			n++
			line = line[i+3:]
		} else {
			line = line[i+1:]
		}
	}
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// qpTrailingBlanks counts the encoded tabs and spaces ("=09", "=20") that
// end a line, before any trailing white space: what MIMEEval takes back
// from qpEncodedCount with /((?:=09|=20)+)\s*$/, since a blank at the
// end of a line must be encoded.
func qpTrailingBlanks(line []byte) int {
	for len(line) > 0 && isPerlSpace(line[len(line)-1]) {
		line = line[:len(line)-1]
	}
	n := 0
	for len(line) >= 3 {
		t := line[len(line)-3:]
		if t[0] != '=' || !(t[1] == '0' && t[2] == '9' || t[1] == '2' && t[2] == '0') {
			break
		}
		n++
		line = line[:len(line)-3]
	}
	return n
}

// isPerlSpace is Go regexp's \s: tab, line feed, form feed, carriage
// return and space.
func isPerlSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// scanPartLines calls fn with each raw (still encoded) line of a leaf
// part's body, line end included, up to the scan limit; a line longer than
// 64 KiB comes in pieces of that size. line is read-only and valid while
// the view lives (rawSection).
func (v *view) scanPartLines(p *filter.Part, fn func(line []byte)) {
	_, off := p.Offset()
	body, _ := v.rawSection(off, p.RawSize(), int64(v.set.limits.MaxScanBytes))
	for len(body) > 0 {
		var line []byte
		line, body = cutPartLine(body)
		fn(line)
	}
}

// topContentTypeHTML: the message's own Content-Type is text/html.
func (v *view) topContentTypeHTML() bool {
	for _, f := range v.headerFields() {
		if f.key == "content-type" {
			return strings.HasPrefix(strings.ToLower(f.saText), "text/html")
		}
	}
	return false
}

// parseFlags are the oddities Mail::SpamAssassin::Message notes while it
// splits a message.
type parseFlags struct {
	missingHeadBodySep     bool  // the header did not end with an empty line
	truncatedHeader        bool  // a field name over 256 bytes or a value over 8 KiB
	missingMIMEHeaders     bool  // a boundary not followed by a header field
	missingMIMEHeadBodySep bool  // a part header not ended by an empty line
	mimeEpilogue           bool  // text after a closing boundary
	missingBoundary        bool  // a multipart whose closing boundary never came
	bodyStart              int64 // where SpamAssassin's body starts (it skips up to 3 lines that are not fields)
}

var parseFlagKeys = map[string]func(*parseFlags) bool{
	"missing_head_body_separator":      func(f *parseFlags) bool { return f.missingHeadBodySep },
	"truncated_header":                 func(f *parseFlags) bool { return f.truncatedHeader },
	"missing_mime_headers":             func(f *parseFlags) bool { return f.missingMIMEHeaders },
	"missing_mime_head_body_separator": func(f *parseFlags) bool { return f.missingMIMEHeadBodySep },
	"mime_epilogue_exists":             func(f *parseFlags) bool { return f.mimeEpilogue },
}

var saFieldLine = mustPrecheck(`^[\x21-\x39\x3b-\x7e]+:`)

func (v *view) parseFlags() *parseFlags {
	if v.flags != nil {
		return v.flags
	}
	pf := &parseFlags{}
	v.flags = pf
	// The top header, as Message::new reads it.
	raw, _ := v.rawSection(0, v.m.Size(), int64(v.set.limits.MaxScanBytes))
	data := unsafe.String(unsafe.SliceData(raw), len(raw))
	errs := 0
	var off int64
	for {
		line, eof := data, true // the last line, without a line end
		if i := strings.IndexByte(data, '\n'); i >= 0 {
			line, eof = data[:i+1], false
		}
		data = data[len(line):]
		off += int64(len(line))
		pf.bodyStart = off
		if line == "" && eof {
			pf.missingHeadBodySep = true
			break
		}
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			if eof {
				pf.missingHeadBodySep = true
			}
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		if strings.HasPrefix(l, "--") {
			pf.missingHeadBodySep = true
			pf.bodyStart -= int64(len(line))
			break
		}
		if k, val, ok := strings.Cut(l, ":"); ok && (len(k) > 256 || len(val) > 8192) {
			pf.truncatedHeader = true
		}
		if !saHeaderLine.MatchString(l) {
			if errs++; errs > 3 {
				pf.missingHeadBodySep = true
				pf.bodyStart -= int64(len(line))
				break
			}
		}
		if eof {
			pf.missingHeadBodySep = true
			break
		}
	}
	parts, _ := v.m.Parts()
	for _, p := range parts {
		if b := p.Params["boundary"]; b != "" && p.IsMultipart() {
			v.scanMultipart(p, b, pf)
		}
	}
	return pf
}

var saHeaderLine = mustPrecheck(`^[\x21-\x39\x3b-\x7e]+[ \t]*:`)

// scanMultipart follows Message::_parse_multipart over one multipart
// body: the line after each boundary must be a header field, each part
// header must end with an empty line, and after the closing boundary only
// white space and dots may follow.
func (v *view) scanMultipart(p *filter.Part, boundary string, pf *parseFlags) {
	_, off := p.Offset()
	body, _ := v.rawSection(off, p.RawSize(), int64(v.set.limits.MaxScanBytes))
	scanMultipartBody(body, boundary, pf)
}

// scanMultipartBody is scanMultipart over the raw body, read a line at a
// time as scanPartLines cuts it, each line without its trailing CR and LF
// bytes.
func scanMultipartBody(body []byte, boundary string, pf *parseFlags) {
	const (
		preamble      = iota // before the first boundary
		afterBoundary        // the line after a boundary
		inPart
		epilogue // after the closing boundary
	)
	state, inHeader := preamble, false
	for len(body) > 0 {
		var line []byte
		line, body = cutPartLine(body)
		for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
			line = line[:len(line)-1]
		}
		switch state {
		case preamble:
			if isDelimiter(line, boundary) == 1 {
				state = afterBoundary
			}
			continue
		case epilogue:
			if !pf.mimeEpilogue {
				for _, c := range line {
					if c != '.' && c != ' ' && c != '\t' && c != '\r' {
						pf.mimeEpilogue = true
						break
					}
				}
			}
			continue
		case afterBoundary:
			if !saFieldLine.MatchString(bstr(line)) {
				pf.missingMIMEHeaders = true
			}
			state, inHeader = inPart, true
		}
		switch isDelimiter(line, boundary) {
		case 1:
			state = afterBoundary
			continue
		case 2:
			state = epilogue
			continue
		}
		if inHeader {
			if len(line) == 0 {
				inHeader = false
			} else if line[0] != ' ' && line[0] != '\t' && !saHeaderLine.MatchString(bstr(line)) {
				pf.missingMIMEHeadBodySep = true
				inHeader = false
			}
		}
	}
	if state == afterBoundary || state == inPart {
		pf.missingBoundary = true
	}
}

// cutPartLine cuts body's first line off, line end included: at a line
// feed, or after maxPartLine bytes.
func cutPartLine(body []byte) (line, rest []byte) {
	n := bytes.IndexByte(body[:min(len(body), maxPartLine)], '\n') + 1
	if n == 0 {
		n = min(len(body), maxPartLine)
	}
	return body[:n:n], body[n:]
}

// isDelimiter says whether line, less trailing blanks, is the boundary's
// delimiter (1), its closing delimiter (2) or neither (0).
func isDelimiter(line []byte, boundary string) int {
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	n := len(boundary)
	if len(line) < 2+n || line[0] != '-' || line[1] != '-' || string(line[2:2+n]) != boundary {
		return 0
	}
	switch string(line[2+n:]) {
	case "":
		return 1
	case "--":
		return 2
	}
	return 0
}

// bstr is b as a string, without a copy; b must not change while the
// string is used.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
