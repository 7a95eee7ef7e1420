package archive

import "github.com/portcullis-mail/portcullis/filter"

// KindNotMail: the message under inspection has no header field at all
// (random bytes, a file piped in by mistake, a protocol speaking to the
// wrong port). Every header rule then scores an absence; this says what
// the input is instead.
const KindNotMail Kind = "mime-not-mail"

// notMail reports KindNotMail for a message without a single header
// field, naming what its content is. Only the message itself: a
// headerless attached message is a part of mail.
func (w *walker) notMail(m *filter.Message, parts []*filter.Part, in *node) {
	if in != nil || len(parts) == 0 || m.Header().Len() > 0 {
		return
	}
	top := parts[0]
	t := sniff(top, top.Encoding)
	what := "not a mail message: no header field, content " + t
	w.find(KindNotMail, "message", what)
}
