package filter

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Message is one message under inspection: its envelope and its raw bytes,
// readable at any offset so that a large message can stay in a file.
//
// The header and the MIME tree are parsed once, on first use, and shared by
// every filter; a Message is safe for concurrent use. Parsing is bounded by
// Limits: when a limit is hit, parsing stops there with a *LimitError from
// Err, Parts returns what was parsed before it, and a pipeline adds the
// error's symbol.
type Message struct {
	Envelope Envelope

	raw    io.ReaderAt
	mem    []byte // the raw bytes when the message is one slice (NewMessageBytes)
	size   int64
	limits Limits

	once    sync.Once
	parts   []*Part
	err     error
	defects []Defect

	sharedMu sync.Mutex
	shared   map[any]*sharedValue
}

type sharedValue struct {
	once sync.Once
	v    any
}

// Shared returns what build returns for key, built once for the message
// however many filters ask: derived data that several filters read (the
// links of its text parts, which the rules and the URI lists both need)
// is then computed once. Filters run concurrently; the first caller
// builds and the others wait for it. key is compared with ==: like a
// context key, use an unexported type of the package that owns the
// value. The value is shared, so a caller must not change it.
func (m *Message) Shared(key any, build func() any) any {
	m.sharedMu.Lock()
	if m.shared == nil {
		m.shared = map[any]*sharedValue{}
	}
	e := m.shared[key]
	if e == nil {
		e = &sharedValue{}
		m.shared[key] = e
	}
	m.sharedMu.Unlock()
	e.once.Do(func() { e.v = build() })
	return e.v
}

// NewMessage returns a message whose raw bytes (header and body, as
// received after DATA) are read from r, size bytes long. Nothing is read
// until a filter asks. The zero Limits means the defaults. r may be nil
// for a message known only by its envelope (the connect, mailfrom and rcpt
// stages).
func NewMessage(env Envelope, r io.ReaderAt, size int64, limits Limits) *Message {
	if r == nil {
		size = 0
	}
	return &Message{Envelope: env, raw: r, size: size, limits: limits.withDefaults()}
}

// NewMessageBytes is NewMessage over a byte slice. The filters read raw in
// place (see Bytes): it must not change while the message is in use.
func NewMessageBytes(env Envelope, raw []byte, limits Limits) *Message {
	m := NewMessage(env, bytes.NewReader(raw), int64(len(raw)), limits)
	m.mem = raw
	return m
}

// Size is the raw message size in bytes.
func (m *Message) Size() int64 { return m.size }

// HasBody reports whether the message has content (the Data stage).
func (m *Message) HasBody() bool { return m.raw != nil }

// Limits returns the limits in force, defaults filled in.
func (m *Message) Limits() Limits { return m.limits }

// ReaderAt gives random access to the raw message.
func (m *Message) ReaderAt() io.ReaderAt {
	if m.raw == nil {
		return bytes.NewReader(nil)
	}
	return m.raw
}

// Bytes returns the raw message when it is held in one byte slice (a
// message from NewMessageBytes), so that a filter can read it in place
// instead of copying it; ok is false otherwise (a spooled message, whose
// pooled memory a filter must never hold: read it through ReaderAt). The
// slice is shared: never modify it, and keep no reference to it, or to a
// string made from it without a copy, past the filter's Check.
func (m *Message) Bytes() (raw []byte, ok bool) { return m.mem, m.mem != nil }

// Reader returns a new reader over the whole raw message.
func (m *Message) Reader() io.Reader { return io.NewSectionReader(m.ReaderAt(), 0, m.size) }

// Err returns the parse error, if any: a *LimitError when a limit stopped
// the parse, or an I/O error from the underlying reader. Malformations that
// the parser tolerated are Defects, not errors.
func (m *Message) Err() error {
	m.parse()
	return m.err
}

// Defects lists the malformations the parser tolerated (missing closing
// boundary, header line without a colon, ...), in the order found, at most
// 100 of them.
func (m *Message) Defects() []Defect {
	m.parse()
	return m.defects
}

// Header returns the top-level header (empty when there is no body). It is
// shared by every filter: read it, never modify it.
func (m *Message) Header() *message.Header {
	m.parse()
	if len(m.parts) == 0 {
		return &message.Header{}
	}
	return &m.parts[0].Header
}

// Parts returns every part in document order, the message itself first,
// together with the parse error, if any (see Err).
func (m *Message) Parts() ([]*Part, error) {
	m.parse()
	return m.parts, m.err
}

// Walk calls fn for every part in document order. It stops at the first
// error fn returns and returns it; otherwise it returns the parse error.
func (m *Message) Walk(fn func(p *Part) error) error {
	parts, err := m.Parts()
	for _, p := range parts {
		if e := fn(p); e != nil {
			return e
		}
	}
	return err
}

// Attachments returns the parts that carry a file: leaves with a file name
// or a content type that is not text.
func (m *Message) Attachments() []*Part {
	parts, _ := m.Parts()
	var out []*Part
	for _, p := range parts {
		if p.IsAttachment() {
			out = append(out, p)
		}
	}
	return out
}

func (m *Message) parse() {
	m.once.Do(func() {
		if m.raw == nil {
			return
		}
		if m.size > m.limits.MaxMessageBytes {
			m.err = &LimitError{Limit: LimitMessageBytes, Max: m.limits.MaxMessageBytes}
			return
		}
		p := &parser{m: m, lim: m.limits}
		p.run()
	})
}

// Part is one MIME entity: the message itself, a multipart container, a
// body part, or a message/rfc822 attachment and the message inside it.
type Part struct {
	Path     string // "" for the message, "1", "1.2" … like IMAP sections
	Depth    int    // 0 for the message
	Parent   *Part
	Children []*Part

	Header      message.Header    // the part's own header
	ContentType string            // media type, lower case; "text/plain" when absent
	Params      map[string]string // Content-Type parameters, first value of each
	Disposition string            // "attachment", "inline" or "" when absent
	Encoding    string            // Content-Transfer-Encoding, lower case, undecorated; "7bit" when absent
	Names       []string          // every candidate file name, decoded, duplicates removed

	msg                  *Message
	encodings            []string // every reading of the transfer encoding, Encoding first
	headerStart, bodyOff int64
	bodyEnd              int64
	textOnce, sizeOnce   sync.Once
	decOnce              sync.Once
	dec                  []byte // decoded body of a text leaf (decoded)
	decErr               error
	text                 string
	textErr              error
	decodedSize          int64
	decodedErr           error
}

// Filename returns the first candidate file name, or "".
func (p *Part) Filename() string {
	if len(p.Names) == 0 {
		return ""
	}
	return p.Names[0]
}

// IsMultipart reports whether the part is a multipart container.
func (p *Part) IsMultipart() bool { return strings.HasPrefix(p.ContentType, "multipart/") }

// IsMessage reports whether the part encapsulates a message (message/rfc822
// or message/global); its only child is that message.
func (p *Part) IsMessage() bool {
	return p.ContentType == "message/rfc822" || p.ContentType == "message/global"
}

// IsAttachment reports whether the part carries a file: a leaf that has a
// candidate name, is marked attachment, or is neither text nor a container.
// Unlike go-message, "inline; name=x.exe" is an attachment.
func (p *Part) IsAttachment() bool {
	if p.IsMultipart() || len(p.Children) > 0 {
		return false
	}
	if len(p.Names) > 0 || p.Disposition == "attachment" {
		return true
	}
	return !strings.HasPrefix(p.ContentType, "text/")
}

// IsText reports whether the part is a text/* leaf.
func (p *Part) IsText() bool {
	return strings.HasPrefix(p.ContentType, "text/") && len(p.Children) == 0
}

// RawSize is the size of the part's body as it appears in the message,
// before transfer decoding.
func (p *Part) RawSize() int64 { return p.bodyEnd - p.bodyOff }

// Offset returns where the part's header and body start in the raw message.
func (p *Part) Offset() (header, body int64) { return p.headerStart, p.bodyOff }

// Raw returns a reader over the part's body before transfer decoding.
func (p *Part) Raw() io.Reader {
	return io.NewSectionReader(p.msg.ReaderAt(), p.bodyOff, p.RawSize())
}

// headerField builds the typed header from a header block.
func readHeaderBlock(block []byte) (message.Header, error) {
	// A reader sized to the block: header blocks are small, and a default
	// 4 KiB buffer per part would dominate the cost of a many-part message.
	h, err := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(block), max(16, len(block))))
	return message.Header{Header: h}, err
}
