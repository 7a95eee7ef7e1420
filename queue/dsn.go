package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// failure is one recipient that will not get the message.
type failure struct {
	rcpt    string
	err     error
	expired bool // the maximum queue lifetime ended it
}

// maxReturnedHeader bounds the original header quoted in a bounce.
const maxReturnedHeader = 64 << 10

// bounce queues a delivery status notification for failed recipients. A
// null sender never gets one (RFC 5321 §4.5.5): that is logged and counted,
// and the recipients are done.
func (a *Attempter) bounce(ctx context.Context, e Entry, failed []failure, now time.Time) error {
	for _, f := range failed {
		a.cfg.Logger.WarnContext(ctx, "queue: delivery failed for good", "id", e.ID, "rcpt", f.rcpt, "expired", f.expired, "err", f.err)
	}
	if e.Envelope.MailFrom == "" {
		a.cfg.Metrics.Add("portcullis_queue_bounces_total", float64(len(failed)), "dsn", "suppressed")
		a.cfg.Logger.InfoContext(ctx, "queue: bounce suppressed (null sender)", "id", e.ID, "rcpts", len(failed))
		return nil
	}
	var header []byte
	if b, err := a.store.Body(ctx, e.ID); err == nil {
		header = readHeader(io.NewSectionReader(b, 0, b.Size()))
		b.Close()
	}
	msg := BuildDSN(DSN{
		ReportingMTA: a.cfg.Hostname,
		From:         e.Envelope.MailFrom,
		OriginalID:   e.ID,
		Arrival:      e.Created,
		Date:         now,
		Failures:     dsnRecipients(failed, now),
		Header:       header,
	})
	dsn, err := a.put(ctx, filter.Envelope{RcptTo: []string{e.Envelope.MailFrom}}, msg)
	if err != nil {
		return err
	}
	a.cfg.Metrics.Add("portcullis_queue_bounces_total", float64(len(failed)), "dsn", "sent")
	a.cfg.Logger.InfoContext(ctx, "queue: bounce queued", "id", e.ID, "dsn_id", dsn, "to", e.Envelope.MailFrom, "rcpts", len(failed))
	return nil
}

func dsnRecipients(failed []failure, now time.Time) []DSNRecipient {
	out := make([]DSNRecipient, 0, len(failed))
	for _, f := range failed {
		r := DSNRecipient{Recipient: f.rcpt, Status: "5.0.0", Diagnostic: f.err.Error(), LastAttempt: now}
		var re RemoteError
		if errors.As(f.err, &re) {
			reply := re.RemoteReply()
			r.RemoteMTA = re.RemoteHost()
			r.Diagnostic = diagnostic(reply)
			r.Status = status(reply)
		}
		if f.expired {
			r.Status = "5.4.7" // delivery time expired (RFC 3463)
		}
		out = append(out, r)
	}
	return out
}

// diagnostic quotes a remote reply for a DSN's Diagnostic-Code, as the
// host sent it: "550 5.7.1 blocked", or "550 blocked" without an enhanced
// code.
func diagnostic(r filter.Reply) string {
	if r.Enhanced == "" {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
}

// status returns the enhanced status code of a DSN recipient: the host's
// own when it sent a failure code, otherwise derived from the reply code.
func status(r filter.Reply) string {
	if strings.HasPrefix(r.Enhanced, "4.") || strings.HasPrefix(r.Enhanced, "5.") {
		return r.Enhanced
	}
	if r.Code >= 500 && r.Code <= 599 {
		return "5.0.0"
	}
	return "4.0.0"
}

// readHeader returns the header block of a message, at most
// maxReturnedHeader bytes, ending with the blank line when one was found.
func readHeader(r io.Reader) []byte {
	br := bufio.NewReader(io.LimitReader(r, maxReturnedHeader))
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		out.Write(line)
		if err != nil || len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	return out.Bytes()
}

// DSN describes a delivery status notification.
type DSN struct {
	ReportingMTA string    // this host's name
	From         string    // the envelope sender being notified
	OriginalID   ID        // the queue ID of the failed message
	Arrival      time.Time // when the message was queued
	Date         time.Time
	Failures     []DSNRecipient
	Header       []byte // the failed message's header, returned as text/rfc822-headers
}

// DSNRecipient is one failed recipient.
type DSNRecipient struct {
	Recipient   string
	Status      string // enhanced status code, e.g. 5.7.1
	RemoteMTA   string // the next hop that refused, "" when none answered
	Diagnostic  string // the remote reply, e.g. "550 5.7.1 blocked"
	LastAttempt time.Time
}

// BuildDSN writes a multipart/report; report-type=delivery-status message
// (RFC 3464, RFC 6522): a human-readable part quoting the remote replies, a
// message/delivery-status part, and the original header.
func BuildDSN(d DSN) []byte {
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	boundary := "dsn-" + hex.EncodeToString(rb[:])
	var b bytes.Buffer
	crlf := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	host := oneLine(d.ReportingMTA)
	crlf("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	crlf("To: <%s>", oneLine(d.From))
	crlf("Subject: Undelivered Mail Returned to Sender")
	crlf("Date: %s", d.Date.Format(time.RFC1123Z))
	crlf("Message-ID: <%s.%s@%s>", d.OriginalID, hex.EncodeToString(rb[:4]), host)
	crlf("Auto-Submitted: auto-replied")
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", boundary)
	crlf("")
	crlf("This is a MIME-encapsulated delivery status notification.")
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: text/plain; charset=utf-8")
	crlf("Content-Transfer-Encoding: quoted-printable")
	crlf("")
	var text bytes.Buffer
	fmt.Fprintf(&text, "This is the mail system at %s.\r\n\r\n", host)
	text.WriteString("Your message could not be delivered to one or more recipients.\r\n")
	text.WriteString("The remote systems answered as follows.\r\n\r\n")
	for _, f := range d.Failures {
		fmt.Fprintf(&text, "<%s>", oneLine(f.Recipient))
		if f.RemoteMTA != "" {
			fmt.Fprintf(&text, ": host %s said", oneLine(f.RemoteMTA))
		}
		fmt.Fprintf(&text, ":\r\n    %s\r\n\r\n", oneLine(f.Diagnostic))
	}
	qp := quotedprintable.NewWriter(&b)
	qp.Write(text.Bytes())
	qp.Close()
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: message/delivery-status")
	crlf("")
	crlf("Reporting-MTA: dns; %s", host)
	crlf("X-Portcullis-Queue-ID: %s", d.OriginalID)
	crlf("Arrival-Date: %s", d.Arrival.Format(time.RFC1123Z))
	for _, f := range d.Failures {
		crlf("")
		crlf("Final-Recipient: rfc822; %s", oneLine(f.Recipient))
		crlf("Action: failed")
		crlf("Status: %s", oneLine(f.Status))
		if f.RemoteMTA != "" {
			crlf("Remote-MTA: dns; %s", oneLine(f.RemoteMTA))
		}
		crlf("Diagnostic-Code: smtp; %s", oneLine(f.Diagnostic))
		crlf("Last-Attempt-Date: %s", f.LastAttempt.Format(time.RFC1123Z))
	}
	crlf("")
	crlf("--%s", boundary)
	crlf("Content-Type: text/rfc822-headers")
	crlf("")
	h := bytes.ReplaceAll(d.Header, []byte("\r\n"), []byte("\n"))
	b.Write(bytes.ReplaceAll(bytes.TrimRight(h, "\n"), []byte("\n"), []byte("\r\n")))
	crlf("")
	crlf("")
	crlf("--%s--", boundary)
	return b.Bytes()
}

// oneLine keeps a value that comes from elsewhere (a remote reply, an
// address) from breaking the header or field it is written into.
func oneLine(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}
