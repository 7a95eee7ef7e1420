package filter

import "strings"

// DefectKind names a kind of malformation the parser tolerated. Kinds are
// vocabulary, not policy: what a defect costs is decided by the filter that
// reads them (the archive inspector turns each into a MIME_* symbol).
type DefectKind string

// Defect kinds. The first group makes the structure ambiguous: two readers
// of the same bytes can see different parts, so what one of them shows may
// never have been inspected. The parser reads such a part every way it
// reasonably can (see Part.Encodings and the union of boundaries) and
// records the defect.
const (
	// DefectBoundaryParams: a multipart with two different boundary
	// parameters; delimiters of either are honoured.
	DefectBoundaryParams DefectKind = "boundary-params"
	// DefectDuplicateHeader: two Content-Type, Content-Transfer-Encoding
	// or Content-Disposition fields in one part.
	DefectDuplicateHeader DefectKind = "duplicate-header"
	// DefectNoBoundary: a multipart with a missing or empty boundary; the
	// parser guesses it from the first "--" line of the body.
	DefectNoBoundary DefectKind = "no-boundary"
	// DefectUnterminated: a multipart whose closing delimiter never came
	// (or came only for an outer container).
	DefectUnterminated DefectKind = "unterminated"

	// DefectHeaderSyntax: a header line with 8-bit, NUL or space in its
	// field name, no colon, a continuation as the first line, or a header
	// with no blank line after it. Bad lines inside a header are skipped
	// and the header goes on, as the most lenient clients read it.
	DefectHeaderSyntax DefectKind = "header-syntax"
	// DefectBareCR: a carriage return not followed by a line feed; it is
	// read as a line break, as some clients do.
	DefectBareCR DefectKind = "bare-cr"
	// DefectEncoding: a decorated Content-Transfer-Encoding ("base64; x=y",
	// "\"base64\"", "base64 (comment)") read as what it decorates, or an
	// unknown one ("x-foo") read as raw bytes and, by inspectors, as base64.
	DefectEncoding DefectKind = "encoding"
	// DefectContentType: a Content-Type that is not type/subtype; the part
	// reads as text/plain.
	DefectContentType DefectKind = "content-type"
	// DefectParams: a structured header whose parameters repeat or are
	// malformed (two name parameters, an unterminated quote).
	DefectParams DefectKind = "params"
	// DefectDelimiter: a close delimiter with text after it ("--b-->"),
	// read as the close delimiter.
	DefectDelimiter DefectKind = "delimiter"
	// DefectMbox: an mbox "From " line before the header, skipped.
	DefectMbox DefectKind = "mbox-from"
)

// Ambiguous reports whether the defect makes the MIME structure ambiguous:
// one reader's parts are not another's.
func (k DefectKind) Ambiguous() bool {
	switch k {
	case DefectBoundaryParams, DefectDuplicateHeader, DefectNoBoundary, DefectUnterminated:
		return true
	}
	return false
}

// Defect is one malformation the parser tolerated: its kind, the part it
// is in (Part.Path; "" is the message itself) and a detail for people.
type Defect struct {
	Kind   DefectKind
	Part   string
	Detail string
}

func (d Defect) String() string {
	var b strings.Builder
	b.WriteString(string(d.Kind))
	b.WriteString(" in part ")
	b.WriteString(displayPath(d.Part))
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	return b.String()
}

// maxDefects bounds the defects one message records; a message of
// 100,000 broken lines says what it is with the first ones.
const maxDefects = 100

// quoteLine renders the start of an input line for a defect's detail.
func quoteLine(line []byte) string {
	const max = 40
	s := strings.TrimRight(string(line[:min(len(line), max+8)]), "\r\n")
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == 0:
			b.WriteString(`\0`)
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	if cut {
		b.WriteString("…")
	}
	return `"` + b.String() + `"`
}
