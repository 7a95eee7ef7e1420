package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Every envelope the spool acknowledges must come back from recovery; what
// it cannot keep faithfully is refused at Enqueue, never found corrupt
// after a restart.
func TestEnvelopeLimits(t *testing.T) {
	many := make([]string, maxRecipients+1)
	for i := range many {
		many[i] = fmt.Sprintf("r%d@example.net", i)
	}
	for _, tc := range []struct {
		name string
		env  filter.Envelope
		ok   bool
	}{
		{"at the recipient limit", filter.Envelope{MailFrom: "a@b", RcptTo: many[:maxRecipients]}, true},
		{"over the recipient limit", filter.Envelope{MailFrom: "a@b", RcptTo: many}, false},
		{"address at its limit", filter.Envelope{MailFrom: strings.Repeat("a", maxAddrBytes), RcptTo: []string{"x@y"}}, true},
		{"address over its limit", filter.Envelope{MailFrom: "a@b", RcptTo: []string{strings.Repeat("a", maxAddrBytes+1)}}, false},
		{"address not UTF-8", filter.Envelope{MailFrom: "a\xff@b", RcptTo: []string{"x@y"}}, false},
		{"recipient not UTF-8", filter.Envelope{MailFrom: "a@b", RcptTo: []string{"\xc3@y"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q, err := Open(dir, Config{StoreOnly: true, MinFreeBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			id, err := q.Enqueue(bg, tc.env, strings.NewReader("x"))
			q.Close()
			if !tc.ok {
				if !errors.Is(err, ErrInvalidEnvelope) || filter.ErrorReply(err).Code != 553 {
					t.Fatalf("enqueue: %v (reply %v), want ErrInvalidEnvelope", err, filter.ErrorReply(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := checkPresent(t, dir, nil)
			if e, ok := got[id]; !ok || e.Envelope.MailFrom != tc.env.MailFrom || len(e.Envelope.RcptTo) != len(tc.env.RcptTo) {
				t.Fatalf("acknowledged envelope not recovered intact")
			}
			if cf := corruptFiles(t, dir); len(cf) != 0 {
				t.Fatalf("acknowledged entry found corrupt: %v", cf)
			}
		})
	}
}

func TestSpoolPutOverLimit(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolConfig{MaxMessageBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	e := Entry{ID: newID(now), Envelope: testEnv(), Created: now}
	if err := s.Put(bg, e, []byte("0123456789")); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	e.ID = newID(now)
	if err := s.Put(bg, e, []byte("0123456789A")); !errors.Is(err, filter.ErrLimit) {
		t.Fatalf("over the limit: %v", err)
	}
}

// A record longer than the spool's limit is never allocated or trusted,
// whatever its header claims: recovery moves it aside.
func TestRecoveryRefusesOversizedRecord(t *testing.T) {
	now := time.Now()
	rec := putRecord(nil, Entry{ID: "big", Envelope: testEnv(), Created: now, Size: 2000}, bytes.Repeat([]byte("x"), 2000))
	var recs int
	bad, err := scanSegment(bytes.NewReader(rec), int64(len(rec)), 1000, func(record) { recs++ })
	if err != nil || recs != 0 || len(bad) != 1 || bad[0].length != int64(len(rec)) {
		t.Fatalf("records %d, bad %+v, err %v", recs, bad, err)
	}
	if _, _, err := decodeMeta(bytes.Repeat([]byte(" "), maxMetaBytes+1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("metadata over its limit: %v", err)
	}
}

func TestReturnedHeaderBounded(t *testing.T) {
	long := "Subject: x\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 70)+"\r\n", 2000) + "\r\nbody"
	h := readHeader(strings.NewReader(long))
	if len(h) > maxReturnedHeader {
		t.Fatalf("returned header of %d bytes, limit %d", len(h), maxReturnedHeader)
	}
	short := "Subject: x\r\n\r\nbody"
	if got := string(readHeader(strings.NewReader(short))); got != "Subject: x\r\n\r\n" {
		t.Fatalf("header %q", got)
	}
}

func TestLastErrorClipped(t *testing.T) {
	if n := len(clip(strings.Repeat("é", 2000))); n > 1000 {
		t.Fatalf("clipped to %d bytes", n)
	}
	if clip("bad \xff byte") != "bad ? byte" {
		t.Fatal("invalid UTF-8 kept")
	}
}

// hinted is a body with a size estimate that may be wrong.
type hinted struct {
	io.Reader
	hint int64
}

func (h hinted) SizeHint() int64 { return h.hint }

// TestReadBodySizeHint: a body with a size hint is read whole whether the
// hint is exact, short or long, into one allocation when it is right, and
// the limit still holds past a short hint.
func TestReadBodySizeHint(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for _, hint := range []int64{int64(len(body)), 100, 1 << 20} {
		got, err := readBody(hinted{iotest.OneByteReader(bytes.NewReader(body)), hint}, 1<<30)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(got), err)
		}
	}
	br := bytes.NewReader(body)
	h := &hinted{struct{ io.Reader }{br}, int64(len(body))} // no Len: only the hint is seen
	allocs := testing.AllocsPerRun(20, func() {
		br.Reset(body)
		readBody(h, 1<<30)
	})
	if allocs > 1 {
		t.Errorf("an exact hint: %.0f allocations, want 1", allocs)
	}
	got, err := readBody(hinted{bytes.NewReader(body), 100}, 1000)
	if err != nil || len(got) != 1000 {
		t.Fatalf("limit 1000 past a short hint: %d bytes, %v", len(got), err)
	}
	q := openTest(t, Config{StoreOnly: true, MaxMessageBytes: 1000, MinFreeBytes: 1})
	_, err = q.Enqueue(bg, testEnv(), hinted{bytes.NewReader(body), 100})
	var le *filter.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("a 64 KiB body with a 100-byte hint under a 1,000-byte limit: %v", err)
	}
}
