package archive

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strconv"

	"github.com/h2non/filetype"
)

// HTML smuggling: a file carried inside an HTML or script text as base64,
// in a data: URI (href="data:application/zip;base64,UEsDB…") or in a
// string a script hands to atob() and offers as a download. A browser
// builds the file on the reader's machine, so no attachment ever shows it.
//
// textBlocks looks at every run of base64 characters of at least
// minEmbedded in a text's lines (a data: URI's payload, a quoted string),
// decodes its head and, when that is a file and not an image, sound,
// video or font (pictures inline in HTML are ordinary), records
// KindSmuggled and walks the decoded file like an attachment: an
// executable in it is banned wherever it sits. An HTML page so carried
// (an iframe of data:text/html;base64) is walked too, without a finding.
// A run longer than the line buffer is decoded on from the reader, so a
// multi-megabyte data: URI is seen whole.
//
// Runs are found without reading every byte: a run of minEmbedded
// characters that starts anywhere in [i, i+minEmbedded) covers
// i+minEmbedded-1, so when that byte is not base64 the scan moves on by
// minEmbedded. Prose, whose words are short, costs one look per
// minEmbedded bytes.

// minEmbedded is the shortest run of base64 characters looked at: 96
// decoded bytes, more than any magic number needs, and longer than the
// words, hashes and tokens of ordinary text.
const minEmbedded = 128

// b64Alphabet marks the standard base64 alphabet.
var b64Alphabet = func() [256]bool {
	var t [256]bool
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = true
	}
	return t
}()

// base64Runs calls fn with the bounds of every run of base64 characters
// of at least minEmbedded in line, in order, until fn returns false.
func base64Runs(line []byte, fn func(start, end int) bool) {
	for i := 0; i+minEmbedded <= len(line); {
		probe := i + minEmbedded - 1
		if !b64Alphabet[line[probe]] {
			i = probe + 1
			continue
		}
		start := probe
		for start > i && b64Alphabet[line[start-1]] {
			start--
		}
		end := probe + 1
		for end < len(line) && b64Alphabet[line[end]] {
			end++
		}
		if end-start >= minEmbedded && !fn(start, end) {
			return
		}
		i = end + 1
	}
}

// embedded walks the files smuggled in one line of a text, or in one
// piece of a line longer than the buffer. When long, more of the line
// follows in rest: a run reaching the end of the piece goes on there,
// whatever its length in the piece (a file must not hide by straddling
// two pieces), and the next piece starts after it.
func (w *walker) embedded(n node, line []byte, long bool, rest *bufio.Reader) error {
	tail := len(line)
	if long {
		for tail > 0 && b64Alphabet[line[tail-1]] {
			tail--
		}
	}
	var err error
	base64Runs(line[:tail], func(start, end int) bool {
		err = w.embeddedRun(n, bytes.NewReader(line[start:end]))
		return err == nil
	})
	if err != nil || tail == len(line) {
		return err
	}
	// The bytes of line are the reader's buffer: copy them before
	// reading on.
	src := io.MultiReader(bytes.NewReader(bytes.Clone(line[tail:])), &alphabetReader{br: rest})
	return w.embeddedRun(n, src)
}

// embeddedRun decodes one run and walks it when it is a file.
func (w *walker) embeddedRun(n node, src io.Reader) error {
	if err := w.tick(n.path); err != nil {
		return err
	}
	br := headBufs.Get().(*bufio.Reader)
	br.Reset(&lenientEOF{r: base64.NewDecoder(base64.RawStdEncoding, src)})
	defer func() { br.Reset(nil); headBufs.Put(br) }()
	head, _ := br.Peek(HeadSize)
	t := DetectType(head, "")
	switch {
	case t == TypeText || t == TypeBinary || t == TypeMZ:
		// "MZ" alone is two bytes: one long token in 4,096 starts "TV".
		return nil
	case filetype.IsImage(head) || filetype.IsAudio(head) || filetype.IsVideo(head) || filetype.IsFont(head):
		return nil
	}
	w.embeds++
	c := n.child("embedded-"+strconv.Itoa(w.embeds), false, -1)
	c.names = nil
	if c.depth > w.lim.MaxDepth {
		w.hitLimit("depth", strconv.Itoa(w.lim.MaxDepth), c.path)
		return w.tick(c.path)
	}
	if t != TypeHTML {
		w.find(KindSmuggled, c.path, t)
	}
	return w.file(c, w.meter(br, nil, c.path))
}

// alphabetReader reads base64 characters from br up to the first byte
// that is not one, which it leaves unread.
type alphabetReader struct {
	br   *bufio.Reader
	done bool
}

func (a *alphabetReader) Read(p []byte) (int, error) {
	if a.done {
		return 0, io.EOF
	}
	buf, err := a.br.Peek(min(len(p), a.br.Size()))
	n := 0
	for n < len(buf) && b64Alphabet[buf[n]] {
		n++
	}
	copy(p, buf[:n])
	a.br.Discard(n) //nolint:errcheck // n bytes are buffered
	if n < len(buf) || (err != nil && n == len(buf)) {
		a.done = true
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// lenientEOF ends a base64 decode at its first corrupt quantum (a lone
// last character) as at the end: what was decoded before it is the file.
type lenientEOF struct{ r io.Reader }

func (l *lenientEOF) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		err = io.EOF
	}
	return n, err
}
