package relay

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

func reply(code int, enhanced, text string) *ReplyError {
	return &ReplyError{Host: "mx:25", Command: "RCPT", Reply: filter.Reply{Code: code, Enhanced: enhanced, Text: text}}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		class  queue.Class
		policy bool
	}{
		{reply(550, "5.7.1", "Service unavailable; client host blocked using zen.spamhaus.org"), queue.Permanent, true},
		{reply(521, "", "mx.att.net does not accept mail from you"), queue.Permanent, true},
		{reply(554, "5.7.0", "rejected: listed in DNSBL"), queue.Permanent, true},
		{reply(553, "", "sorry, your IP is on our RBL"), queue.Permanent, false},
		{reply(550, "5.1.1", "no such user"), queue.Permanent, false},
		{reply(451, "4.7.1", "temporarily blocked for reputation"), queue.Temporary, true},
		{reply(452, "4.2.2", "mailbox full"), queue.Temporary, false},
		{&ConnError{Op: "dial", Err: errors.New("refused")}, queue.Temporary, false},
		{context.DeadlineExceeded, queue.Temporary, false},
		{errors.New("something odd"), queue.Temporary, false},
	} {
		if c := queue.Classify(tc.err); c != tc.class {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, c, tc.class)
		}
		if p := IsPolicyRefusal(tc.err); p != tc.policy {
			t.Errorf("IsPolicyRefusal(%v) = %v, want %v", tc.err, p, tc.policy)
		}
	}
}

// FuzzClassify checks reply classification for any code and text: only
// 5xx is permanent and a policy refusal is always a 4xx or 5xx.
func FuzzClassify(f *testing.F) {
	f.Add(550, 5, 7, 1, "blocked using zen.spamhaus.org")
	f.Add(521, 0, 0, 0, "we do not accept mail from you")
	f.Add(451, 4, 7, 1, "RBL listed, try later")
	f.Add(250, 2, 0, 0, "ok")
	f.Add(-1, 9, 9, 9, "\r\n")
	f.Fuzz(func(t *testing.T, code, a, b, c int, text string) {
		re := reply(code, fmt.Sprintf("%d.%d.%d", a, b, c), text)
		perm := queue.Classify(re) == queue.Permanent
		if perm != (code >= 500 && code <= 599) {
			t.Fatalf("code %d classified %v", code, queue.Classify(re))
		}
		if IsPolicyRefusal(re) && (code < 400 || code > 599) {
			t.Fatalf("code %d taken as a policy refusal", code)
		}
		_ = re.Error()
	})
}
