package rules

import "strings"

// SpamAssassin 4 scans only the start of each text part with its body and
// raw-body rules (Mail::SpamAssassin::Message, body_part_scan_size and
// rawbody_part_scan_size): a part longer than the scan size is cut after
// the first line end at or beyond it when one comes within 1024 bytes,
// else after the first space (raw bodies try '>' before the space, for
// HTML), else at the size itself. The rules see the same cut here, for
// every set (SpamAssassin's defaults unless a rule file or Limits says
// otherwise): the answer is SpamAssassin's, and a rule set's cost per
// message is bounded by the number of parts, not their size. The cut is
// the rules' semantics, not a failure: it adds no RULES_TRUNCATED.

// SpamAssassin's default scan sizes of one text part.
const (
	DefaultBodyPartScanBytes    = 50_000
	DefaultRawBodyPartScanBytes = 500_000
)

// partScanSlack is how far past the scan size a cut may look for a
// boundary.
const partScanSlack = 1024

// scanSizes are a set's part scan sizes; 0 means no cut.
type scanSizes struct{ body, raw int }

// resolveScanSizes picks each size: Limits when set (negative: no cut),
// else the rule files' (SpamAssassin's directives), else the default.
func resolveScanSizes(lim Limits, conf *saConf) scanSizes {
	pick := func(l int, cf *int, def int) int {
		switch {
		case l < 0:
			return 0
		case l > 0:
			return l
		case cf != nil:
			return max(*cf, 0)
		}
		return def
	}
	var cb, cr *int
	if conf != nil {
		cb, cr = conf.bodyScan, conf.rawScan
	}
	return scanSizes{
		body: pick(lim.BodyPartScanBytes, cb, DefaultBodyPartScanBytes),
		raw:  pick(lim.RawBodyPartScanBytes, cr, DefaultRawBodyPartScanBytes),
	}
}

// cutPart cuts a part's text to n bytes as SpamAssassin does: after the
// first of seps (tried in order) found at or beyond n within
// partScanSlack bytes, else at n. n 0 keeps t whole.
func cutPart(t string, n int, seps string) string {
	if n <= 0 || len(t) <= n {
		return t
	}
	tail := t[n:min(len(t), n+partScanSlack+1)]
	for i := 0; i < len(seps); i++ {
		if j := strings.IndexByte(tail, seps[i]); j >= 0 {
			return t[:n+j+1]
		}
	}
	return t[:n]
}

// cutBodyPart cuts one rendered part for the body rules.
func (s *Set) cutBodyPart(t string) string { return cutPart(t, s.scan.body, "\n ") }

// cutRawPart cuts one decoded part for the raw-body rules.
func (s *Set) cutRawPart(t string) string { return cutPart(t, s.scan.raw, "\n> ") }
