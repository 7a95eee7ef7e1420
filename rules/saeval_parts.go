package rules

import (
	"net/netip"
	"strings"
	"unicode"

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
	madiff *maDiffResult
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
		if ma.ContentType != "multipart/alternative" {
			continue
		}
		html, text := map[string]int{}, map[string]int{}
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
			for _, w := range strings.Fields(rendered) {
				if strings.IndexFunc(w, isWordRune) >= 0 {
					words[w]++
				}
			}
			if typ == "text/html" && len(html) == 0 {
				if _, img := parseHTMLResult(v.partText(p)).inside["img"]; img {
					html["\n"] = 1
				}
			}
		})
		orig := len(html)
		if orig == 0 {
			continue
		}
		d.html, d.text = orig, len(text)
		for k, n := range text {
			if h, ok := html[k]; ok && h-n < 1 {
				delete(html, k)
			}
		}
		d.diff = max(d.diff, float64(len(html))/float64(orig)*100)
	}
	return d
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

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
		bp := getBuf()
		defer putBuf(bp)
		*bp = renderHTML((*bp)[:0], t, v.set.limits.MaxScanBytes)
		return typ, string(*bp), true
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
	if _, err := netip.ParseAddr(d); err == nil {
		return d
	}
	r, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return r
}
