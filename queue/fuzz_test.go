package queue

import (
	"bytes"
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

func seedSegment() []byte {
	now := time.UnixMilli(1_700_000_000_000)
	e := Entry{ID: "abc", Envelope: filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), MailFrom: "a@b", RcptTo: []string{"c@d", "e@f"}}, Created: now, NextAttempt: now}
	b := putRecord(nil, e, []byte("Subject: x\r\n\r\nbody\r\n"))
	e.Attempts, e.Done = 1, []string{"c@d"}
	b = appendRecord(b, kindUpdate, encodeMeta(e, 0))
	return appendRecord(b, kindRemove, []byte("abc"))
}

// FuzzScanSegment feeds arbitrary bytes to segment recovery: it must never
// panic, never allocate past its limit, account for every byte either as a
// record or as a bad range, and decode only records that re-encode.
func FuzzScanSegment(f *testing.F) {
	seg := seedSegment()
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(append([]byte("garbage"), seg...))
	flipped := bytes.Clone(seg)
	flipped[40] ^= 1
	f.Add(flipped)
	f.Add([]byte("PQRP\x00\x00\x00\x10"))
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b))
		var spans [][2]int64
		bad, err := scanSegment(bytes.NewReader(b), size, 1<<16, func(r record) {
			spans = append(spans, [2]int64{r.off, r.length})
			if r.kind == kindPut && (r.bodyOff < r.off || r.bodyOff+r.entry.Size > r.off+r.length) {
				t.Fatal("body outside the record")
			}
		})
		if err != nil {
			t.Fatalf("I/O error from a byte slice: %v", err)
		}
		for _, br := range bad {
			spans = append(spans, [2]int64{br.off, br.length})
		}
		slices.SortFunc(spans, func(x, y [2]int64) int { return cmp.Compare(x[0], y[0]) })
		at := int64(0)
		for _, sp := range spans {
			if sp[0] != at || sp[1] <= 0 {
				t.Fatalf("span %v, expected one at %d", sp, at)
			}
			at += sp[1]
		}
		if at != size {
			t.Fatalf("records and bad ranges cover %d of %d bytes", at, size)
		}
	})
}

// FuzzDecodeMeta checks that entry metadata either decodes into a valid
// entry that survives a round trip or is ErrCorrupt.
func FuzzDecodeMeta(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	f.Add(encodeMeta(Entry{ID: "x1", Envelope: testEnv("a@b", "c@d"), Created: now, Attempts: 2, Done: []string{"a@b"}}, 7))
	f.Add([]byte(`{"id":"x","to":["a"],"ip":"::1","state":1}`))
	f.Add([]byte(`{"id":"../../etc","to":["a"]}`))
	f.Add([]byte(`{"id":"x","to":[],"size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, c, err := decodeMeta(b)
		if err != nil {
			return
		}
		if !validID(string(e.ID)) || len(e.Envelope.RcptTo) == 0 || e.Size < 0 {
			t.Fatalf("invalid entry accepted: %+v", e)
		}
		e2, c2, err := decodeMeta(encodeMeta(e, c))
		if err != nil || c2 != c || e2.ID != e.ID || !e2.Created.Equal(e.Created) || len(e2.Envelope.RcptTo) != len(e.Envelope.RcptTo) {
			t.Fatalf("round trip: %+v vs %+v (%v)", e2, e, err)
		}
	})
}

// FuzzClassify checks reply classification for any code and enhanced
// code: only 5xx is permanent, and the DSN status is well formed.
func FuzzClassify(f *testing.F) {
	f.Add(550, "5.7.1", "blocked using zen.spamhaus.org")
	f.Add(521, "", "we do not accept mail from you")
	f.Add(451, "4.7.1", "RBL listed, try later")
	f.Add(250, "2.0.0", "ok")
	f.Add(-1, "9.9.9", "\r\n")
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		re := remote("h", code, enhanced, text)
		perm := Classify(re) == Permanent
		if perm != (code >= 500 && code <= 599) {
			t.Fatalf("code %d classified %v", code, Classify(re))
		}
		st := status(re.(*remoteErr).reply)
		if st == "" || (st[0] != '4' && st[0] != '5') {
			t.Fatalf("status %q", st)
		}
		_ = re.Error()
	})
}

// FuzzBuildDSN checks that whatever a remote host answers, the DSN keeps
// its structure: the reply cannot inject header lines or a boundary.
func FuzzBuildDSN(f *testing.F) {
	f.Add("550 5.7.1 blocked", "rcpt@example.net", []byte("Subject: hi\r\n\r\nbody"))
	f.Add("x\r\nBcc: victim@example.org", "a\nb", []byte("no header end"))
	f.Fuzz(func(t *testing.T, diag, rcpt string, header []byte) {
		now := time.UnixMilli(1_700_000_000_000)
		msg := BuildDSN(DSN{ReportingMTA: "gw", From: "s@example.org", OriginalID: "id", Arrival: now, Date: now,
			Failures: []DSNRecipient{{Recipient: rcpt, Status: "5.0.0", Diagnostic: diag, LastAttempt: now}},
			Header:   readHeader(bytes.NewReader(header))})
		top, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
		if bytes.Contains(top, []byte("Bcc:")) {
			t.Fatal("header injected")
		}
		for _, l := range strings.Split(string(msg), "\r\n") {
			if strings.HasPrefix(l, "Diagnostic-Code:") && strings.ContainsAny(l, "\r\n") {
				t.Fatal("diagnostic spans lines")
			}
		}
	})
}

// checkMetaRoundTrip is checkMeta's reference: encode, decode, compare
// (what checkMeta did before it stopped decoding).
func checkMetaRoundTrip(e Entry, m []byte) error {
	d, _, err := decodeMeta(m)
	if err != nil {
		return err
	}
	if d.Envelope.MailFrom != e.Envelope.MailFrom || d.Envelope.Helo != e.Envelope.Helo ||
		d.Envelope.AuthUser != e.Envelope.AuthUser || d.LastError != e.LastError ||
		!slices.Equal(d.Envelope.RcptTo, e.Envelope.RcptTo) || !slices.Equal(d.Done, e.Done) {
		return ErrInvalidEnvelope
	}
	return nil
}

// FuzzCheckMeta holds checkMeta to the round trip it replaces: it refuses
// exactly the entries whose metadata would not decode back to them.
func FuzzCheckMeta(f *testing.F) {
	f.Add("a@b", "c@d", "", "mx.example", "", "", 1, 0)
	f.Add("a\xffb@c", "c@d", "", "", "", "", 1, 0)
	f.Add("a@b", "c@d\xc3", "c@d\xc3", "", "", "", 2, 1)
	f.Add("a@b", "", "", "", "", "451 4.7.1 \xfe", 1, 0)
	f.Add(strings.Repeat("é", 600), "c@d", "", "", "", "", 1, 0)
	f.Add("a@b", strings.Repeat("x", 1025), "", "", "", "", 3, 4)
	f.Add("a@b", "c@d", "", "h\x00<&>", "u\u2028", "\"\\", 1, 0)
	f.Fuzz(func(t *testing.T, from, rcpt, done, helo, auth, lastErr string, nRcpt, nDone int) {
		nRcpt, nDone = nRcpt%5, nDone%5
		if nRcpt < 0 || nDone < 0 {
			return
		}
		now := time.UnixMilli(1_700_000_000_000)
		e := Entry{ID: "0123abc", Envelope: filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: helo, MailFrom: from, AuthUser: auth},
			Created: now, NextAttempt: now, LastError: lastErr}
		for range nRcpt {
			e.Envelope.RcptTo = append(e.Envelope.RcptTo, rcpt)
		}
		for range nDone {
			e.Done = append(e.Done, done)
		}
		m := encodeMeta(e, 7)
		fast, ref := checkMeta(e, m), checkMetaRoundTrip(e, m)
		if (fast == nil) != (ref == nil) {
			t.Fatalf("checkMeta %v, round trip %v, for %+v", fast, ref, e)
		}
		if fast != nil && !errors.Is(fast, ErrInvalidEnvelope) {
			t.Fatalf("checkMeta error %v does not match ErrInvalidEnvelope", fast)
		}
	})
}
