package scanner

import (
	"bufio"
	"io"
	"sort"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
)

// Span is a byte range of the raw message: Off, Len.
type Span struct{ Off, Len int64 }

// Coverer is implemented by LeafWalkers that know which bytes of the raw
// message their leaves stand for (ArchiveLeaves does: the bodies of the
// attachment parts it unpacks). With one, the Filter streams every byte
// to the engines once: the leaves, then the message with the covered
// bodies cut out (headers, inline text and the MIME structure remain).
type Coverer interface {
	Covered(m *filter.Message) []Span
}

// covered lists the raw bodies of the leaf parts the archive walker hands
// out as files: attachments, non-text inline parts and uuencoded parts.
// Inline text and HTML (whose embedded blocks alone are leaves) and
// encoded messages (whose text the walker does not hand out) stay in the
// rest, so that nothing is left unscanned.
func covered(m *filter.Message) []Span {
	parts, err := m.Parts()
	if err != nil {
		return nil // the walk may not match the parse: cut nothing
	}
	var out []Span
	for _, p := range parts {
		if len(p.Children) > 0 || p.IsMessage() || p.RawSize() <= 0 {
			continue
		}
		if !p.IsAttachment() && !isUU(p.Encoding) {
			head, _ := bufio.NewReaderSize(p.Open(), archive.HeadSize).Peek(archive.HeadSize)
			if t := archive.DetectType(head, p.Filename()); t == archive.TypeText || t == archive.TypeHTML {
				continue
			}
		}
		_, body := p.Offset()
		out = append(out, Span{Off: body, Len: p.RawSize()})
	}
	return out
}

func isUU(enc string) bool {
	switch enc {
	case "x-uuencode", "uuencode", "x-uue", "uue":
		return true
	}
	return false
}

// spliced is a ReaderAt over r (size bytes) without the cut spans.
type spliced struct {
	r    io.ReaderAt
	segs []Span // kept ranges of r, in order
	offs []int64
	size int64
}

func splice(r io.ReaderAt, size int64, cut []Span) *spliced {
	cut = append([]Span(nil), cut...)
	sort.Slice(cut, func(i, j int) bool { return cut[i].Off < cut[j].Off })
	s := &spliced{r: r}
	pos := int64(0)
	keep := func(end int64) {
		if end > pos {
			s.segs = append(s.segs, Span{Off: pos, Len: end - pos})
			s.offs = append(s.offs, s.size)
			s.size += end - pos
		}
	}
	for _, c := range cut {
		if c.Off < pos || c.Len <= 0 || c.Off+c.Len > size {
			continue // overlapping or out of range: keep those bytes
		}
		keep(c.Off)
		pos = c.Off + c.Len
	}
	keep(size)
	return s
}

func (s *spliced) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	i := sort.Search(len(s.offs), func(i int) bool { return s.offs[i] > off }) - 1
	n := 0
	for ; i < len(s.segs) && n < len(p); i++ {
		seg := s.segs[i]
		in := off + int64(n) - s.offs[i]
		want := min(int64(len(p)-n), seg.Len-in)
		k, err := s.r.ReadAt(p[n:n+int(want)], seg.Off+in)
		n += k
		if err != nil && !(err == io.EOF && int64(k) == want) {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
