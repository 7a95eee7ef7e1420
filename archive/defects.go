package archive

import (
	"bufio"
	"errors"
	"io"
	"sort"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// MIME defects are judged here because this is where every part is typed
// by content: the parser (package filter) records what it tolerated and
// reads an ambiguous part every way it can; the inspector turns each
// defect into a MIME_* symbol, and an ambiguous structure over anything
// that is not plain text into KindAmbiguous (default quarantine). Plain
// text is a leaf whose every reading sniffs as text or HTML.

// defects reports the parser's defects of m and judges the ambiguous ones.
func (w *walker) defects(m *filter.Message, parts []*filter.Part, in *node) {
	ds := m.Defects()
	if len(ds) == 0 {
		return
	}
	byPath := make(map[string]*filter.Part, len(parts))
	for _, p := range parts {
		byPath[p.Path] = p
	}
	ambiguous := map[string][]string{} // part path -> defect kinds
	for _, d := range ds {
		w.find(DefectKind(d.Kind), defectPath(byPath[d.Part], d.Part, in), d.Detail)
		if d.Kind.Ambiguous() && !contains(ambiguous[d.Part], string(d.Kind)) {
			ambiguous[d.Part] = append(ambiguous[d.Part], string(d.Kind))
		}
	}
	paths := make([]string, 0, len(ambiguous))
	for path := range ambiguous {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		if t := w.notPlain(parts, path); t != "" {
			w.find(KindAmbiguous, defectPath(byPath[path], path, in), strings.Join(ambiguous[path], ",")+" over "+t)
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func defectPath(p *filter.Part, path string, in *node) string {
	s := "part " + path
	switch {
	case p != nil:
		s = partPath(p)
	case path == "":
		s = "message"
	}
	if in != nil {
		s = in.path + "/" + s
	}
	return s
}

// notPlain returns the first type that is not plain text among the
// readings of the part at path and of every part inside it ("" when all
// are text). A part's own body counts too, read under each of its
// encodings, so that a multipart also read as a single file is judged as
// that file.
func (w *walker) notPlain(parts []*filter.Part, path string) string {
	for _, p := range parts {
		if p.Path != path && !(path == "" || strings.HasPrefix(p.Path, path+".")) {
			continue
		}
		if len(p.Children) > 0 && p.Path != path {
			continue
		}
		for _, enc := range p.Encodings() {
			if t := sniff(p, enc); t != TypeText && t != TypeHTML && t != TypeEML {
				return t
			}
		}
	}
	return ""
}

// sniff types the first bytes of a part read as enc.
func sniff(p *filter.Part, enc string) string {
	head := make([]byte, HeadSize)
	n, err := io.ReadFull(p.OpenAs(enc), head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "unreadable"
	}
	return DetectType(head[:n], p.Filename())
}

// leafReadings walks the readings of a leaf beyond its first: the other
// transfer encodings its header allows (two fields, or an unknown one read
// as base64). A reading that is not a file (text) is not walked.
func (w *walker) leafReadings(p *filter.Part, n node) error {
	encs := p.Encodings()
	for _, enc := range encs[1:] {
		br := bufio.NewReaderSize(p.OpenAs(enc), HeadSize)
		head, _ := br.Peek(HeadSize)
		if t := DetectType(head, n.name); t == TypeText || t == TypeBinary {
			continue // no file under this reading
		}
		alt := n
		alt.path = n.path + " (as " + enc + ")"
		if err := w.file(alt, br); err != nil {
			return err
		}
	}
	return nil
}
