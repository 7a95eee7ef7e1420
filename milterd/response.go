package milterd

import (
	"strconv"
	"strings"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// maxReplyText bounds the text of a reply sent to the MTA: RFC 5321 allows
// 512 octets per reply line, the code included.
const maxReplyText = 400

// tempfailReply is what a reply that cannot be sent as it is becomes.
var tempfailReply = filter.Reply{Code: 451, Enhanced: "4.3.0", Text: "Temporary local problem, please try again later"}

// Response converts a reply to the milter response that makes the MTA give
// it to the SMTP client: a 2xx is "continue" (the MTA answers with its own
// 250), a 4xx or 5xx is a reply-code response with the code, the enhanced
// code and the text. Anything else (1xx, 3xx, out of range) is never sent
// as it is: it becomes 451 4.3.0, so a bug never turns into a pass or a
// bounce.
//
// The text is made safe for the wire: printable ASCII on one line (a CR or
// LF would let it forge replies), '%' doubled as the MTA expects
// (smfi_setreply), at most 400 bytes. An enhanced code whose class does not
// match the reply code becomes X.0.0 (Postfix refuses a reply without one).
func Response(r filter.Reply) milter.Response {
	switch {
	case r.Code >= 200 && r.Code < 300:
		return milter.RespContinue
	case r.Code >= 400 && r.Code < 600:
	default:
		r = tempfailReply
	}
	return milter.NewResponseStr(byte(milter.ActReplyCode), replyLine(r))
}

// replyLine formats "550 5.7.1 text" for SMFIR_REPLYCODE.
func replyLine(r filter.Reply) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	b.WriteByte(' ')
	// Postfix refuses a reply without an enhanced code of the same class
	// ("malformed reply") and falls back to milter_default_action.
	if validEnhanced(r.Enhanced, r.Code/100) {
		b.WriteString(r.Enhanced)
	} else {
		b.WriteString(strconv.Itoa(r.Code/100) + ".0.0")
	}
	text := safeText(r.Text)
	if text == "" {
		text = "Refused"
		if r.Code < 500 {
			text = "Try again later"
		}
	}
	b.WriteByte(' ')
	b.WriteString(text)
	return b.String()
}

// safeText keeps printable ASCII, turns anything else into a space, doubles
// '%' and bounds the length.
func safeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxReplyText; i++ {
		c := s[i]
		switch {
		case c == '%':
			b.WriteString("%%")
		case c < 0x20 || c > 0x7e:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// validEnhanced reports whether e is an RFC 3463 code of the given class.
func validEnhanced(e string, class int) bool {
	parts := strings.Split(e, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(class) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}
