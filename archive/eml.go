package archive

import (
	"bytes"
	"errors"
	"io"

	"github.com/portcullis-mail/portcullis/filter"
)

// A mail client opens a forwarded message whatever its wrapping:
// message/rfc822 in base64 or quoted-printable (which the parser does not
// descend, RFC 2046 forbids it), an .eml or .mht sent as
// application/octet-stream, a message inside a zip. Content that starts
// like a message header is parsed as a message (bounded by the default
// filter.Limits) and its parts are walked like the parts of the message
// under inspection, defects included, one container deeper.

// messageFields are header fields that only a message starts with; one of
// them among the first lines (and nothing but fields before them) makes a
// text a message.
var messageFields = [...]string{"received:", "return-path:", "from:", "to:", "subject:", "date:",
	"message-id:", "mime-version:", "content-type:", "delivered-to:", "x-mailer:", "reply-to:", "cc:"}

// looksMessage reports a text whose first lines are header fields, at
// least two, one of them a message field.
func looksMessage(head []byte) bool {
	fields, known := 0, false
	for _, line := range bytes.SplitN(head[:min(len(head), 4096)], []byte("\n"), 40) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if fields == 0 {
				return false
			}
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
			if fields == 0 && bytes.HasPrefix(line, []byte("From ")) {
				continue // an mbox separator
			}
			break
		}
		fields++
		low := bytes.ToLower(line[:i+1])
		for _, f := range messageFields {
			if string(low) == f {
				known = true
			}
		}
	}
	return fields >= 2 && known
}

// eml parses a file as a message and walks its parts.
func (w *walker) eml(n node, r io.Reader) error {
	w.archiveChecks(n, TypeEML)
	if err := w.tick(n.path); err != nil {
		return err
	}
	sp, release, err := w.hold(r, n.hint)
	if err != nil {
		return w.unreadable(n, TypeEML, err)
	}
	defer release()
	var m *filter.Message
	if mf, ok := sp.(memFile); ok {
		m = filter.NewMessageBytes(filter.Envelope{}, mf, filter.Limits{})
	} else {
		m = filter.NewMessage(filter.Envelope{}, sp, sp.Size(), filter.Limits{})
	}
	if _, err := m.Parts(); err != nil {
		w.find(KindUninspectable, n.path, "message: "+shortErr(err))
	}
	if err := w.parts(m, &n); err != nil {
		return err
	}
	if w.fn != nil {
		// Engines see the message whole too: some judge mail.
		return w.leaf(n, TypeEML, sp.Reader())
	}
	return w.tick(n.path)
}

// spilled spools r for random access and calls fn with it; for the
// scanner the file is then handed on whole, as a leaf.
func (w *walker) spilled(n node, t string, r io.Reader, fn func(sp held) error) error {
	sp, release, err := w.hold(r, n.hint)
	if err != nil {
		return w.unreadable(n, t, err)
	}
	defer release()
	if n.size < 0 {
		n.size = sp.Size()
	}
	if err := fn(sp); err != nil {
		return err
	}
	if w.fn != nil {
		return w.leaf(n, t, sp.Reader())
	}
	return w.tick(n.path)
}

// textFile searches a text file for the files encoded in it; the
// scanner gets the text too.
func (w *walker) textFile(n node, t string, r io.Reader) error {
	if w.fn == nil {
		if err := w.textBlocks(n, r); err != nil {
			return err
		}
		return w.tick(n.path)
	}
	return w.spilled(n, t, r, func(sp held) error { return w.textBlocks(n, sp.Reader()) })
}

func errLimit(err error) bool { return errors.Is(err, ErrLimit) }
