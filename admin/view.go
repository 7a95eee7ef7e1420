package admin

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"

	"github.com/portcullis-mail/portcullis/filter"
)

// Display bounds of the message view: a hostile message may have
// thousands of header fields or parts; the view shows the first ones and
// says how many it left out.
const (
	maxViewHeaders     = 500
	maxViewHeaderValue = 8 << 10
	maxViewParts       = 500
	maxViewTexts       = 50
)

// messageView is what the message view and the API's message answer
// show of a held message: its record and its parse.
type messageView struct {
	Held        held       `json:"-"`
	Subject     string     `json:"-"`
	From        string     `json:"header_from"`
	Headers     []field    `json:"headers"`
	MoreHeaders int        `json:"more_headers,omitempty"`
	Parts       []partView `json:"parts"`
	MoreParts   int        `json:"more_parts,omitempty"`
	Defects     []string   `json:"defects,omitempty"`
	ParseError  string     `json:"parse_error,omitempty"`
}

type field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type partView struct {
	Path        string   `json:"path"`
	Depth       int      `json:"depth"`
	Type        string   `json:"type"`
	Charset     string   `json:"charset,omitempty"`
	Disposition string   `json:"disposition,omitempty"`
	Encoding    string   `json:"encoding"`
	Names       []string `json:"names,omitempty"`
	Size        int64    `json:"size"` // decoded bytes (raw bytes when decoding failed)
	Attachment  bool     `json:"attachment"`
	Text        string   `json:"text,omitempty"` // text parts, bounded
	HasText     bool     `json:"-"`
	HTML        bool     `json:"html,omitempty"` // Text is HTML source, never rendered
	Truncated   bool     `json:"truncated,omitempty"`
}

// view parses a held message with the filter package's parser (the one
// the filters judged it with) and gathers what the view shows, within
// the display bounds.
func (h *Handler) view(it held, raw []byte) messageView {
	m := filter.NewMessageBytes(it.Envelope, raw, h.cfg.Limits)
	v := messageView{Held: it}
	hd := m.Header()
	v.Subject, v.From = headerText(hd, "Subject"), headerText(hd, "From")
	fs := hd.Fields()
	for fs.Next() {
		if len(v.Headers) == maxViewHeaders {
			v.MoreHeaders++
			continue
		}
		val := fs.Value()
		if t, err := fs.Text(); err == nil {
			val = t
		}
		v.Headers = append(v.Headers, field{Name: clipBytes(fs.Key(), 256), Value: clipBytes(val, maxViewHeaderValue)})
	}
	parts, err := m.Parts()
	if err != nil {
		v.ParseError = err.Error()
	}
	for _, d := range m.Defects() {
		v.Defects = append(v.Defects, d.String())
	}
	texts := 0
	for _, p := range parts {
		if len(v.Parts) == maxViewParts {
			v.MoreParts++
			continue
		}
		pv := partView{Path: p.Path, Depth: p.Depth, Type: p.ContentType, Charset: p.Charset(),
			Disposition: p.Disposition, Encoding: p.Encoding, Names: p.Names, Attachment: p.IsAttachment()}
		if pv.Path == "" {
			pv.Path = "message"
		}
		if n, err := p.DecodedSize(); err == nil {
			pv.Size = n
		} else {
			pv.Size = p.RawSize()
		}
		if p.IsText() && !pv.Attachment && texts < maxViewTexts {
			texts++
			pv.HasText = true
			pv.HTML = p.ContentType == "text/html"
			pv.Text, pv.Truncated = h.partText(p)
		}
		v.Parts = append(v.Parts, pv)
	}
	return v
}

// partText decodes a text part to UTF-8, reading at most MaxTextBytes
// of it.
func (h *Handler) partText(p *filter.Part) (string, bool) {
	var r io.Reader = io.LimitReader(p.Open(), int64(h.cfg.MaxTextBytes)+1)
	if cs := p.Charset(); cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
		if cr, err := charset.Reader(cs, r); err == nil {
			r = cr
		}
	}
	b, _ := io.ReadAll(io.LimitReader(r, 4*int64(h.cfg.MaxTextBytes)))
	cut := len(b) > h.cfg.MaxTextBytes
	if cut {
		b = b[:h.cfg.MaxTextBytes]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\r\n", "\n"), cut
}

// headerText is a header field decoded (RFC 2047), or its raw value when
// it does not decode.
func headerText(h *message.Header, key string) string {
	if s, err := h.Text(key); err == nil {
		return s
	}
	return h.Get(key)
}

func clipBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// clip shortens s to n characters for a listing.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

// hidden reports the characters shown as a marker rather than as
// themselves: controls (NUL among them) other than tab and newline,
// format characters (the bidi overrides and isolates, zero-width
// characters, soft hyphens, tags), line and paragraph separators, and
// non-characters. Each can hide or reorder what a reader sees.
func hidden(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == '\u2028', r == '\u2029':
		return true
	case r == '\u115F' || r == '\u1160' || r == '\u3164' || r == '\uFFA0' || r == '\u180E':
		return true // fillers that render as blank
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return true
	}
	return false
}

// inert returns s as HTML element content that shows what s is, and
// nothing more: every character escaped, and each hidden character
// replaced by a visible marker naming its code point. Invalid UTF-8
// shows as U+FFFD. The result is only ever placed in element content.
func inert(s string) template.HTML {
	var b strings.Builder
	start := 0
	flush := func(end int) {
		if end > start {
			b.WriteString(html.EscapeString(strings.ToValidUTF8(s[start:end], "\uFFFD")))
		}
	}
	for i, r := range s {
		if r == utf8.RuneError || !hidden(r) {
			continue
		}
		flush(i)
		fmt.Fprintf(&b, `<span class="ctl">U+%04X</span>`, r)
		start = i + utf8.RuneLen(r)
	}
	flush(len(s))
	return template.HTML(b.String())
}

// plain is s with each hidden character replaced by a marker, as text:
// for the places where markup cannot go (titles, attributes).
func plain(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if hidden(r) {
			fmt.Fprintf(&b, "[U+%04X]", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
