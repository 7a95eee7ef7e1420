package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"sync"

	"github.com/portcullis-mail/portcullis/archive/internal/zipscan"
)

// Archives hide behind other files: a zip appended to a PDF, a JPEG, a PNG
// or a GIF opens in any unzip tool (their readers start from the end of
// central directory record, wherever it is), a self-extractor is a program
// with an archive after it, a 7z or RAR after a few bytes of junk still
// opens in 7-Zip. So every file that is not itself a container is searched
// for archive signatures at any offset (zip end records, 7z and RAR
// signatures), and each archive found is walked like an attachment, with a
// KindHiddenArchive finding.

// maxHidden bounds the archives searched for and walked in one file.
const maxHidden = 4

var (
	sigZipEnd = []byte("PK\x05\x06")
	sig7z     = []byte("7z\xbc\xaf\x27\x1c")
	sigRar    = []byte("Rar!\x1a\x07")
)

// polyglotCandidate reports whether files of type t are searched for
// archives inside: everything but text (which holds no binary archive) and
// the containers that are opened anyway.
func polyglotCandidate(t string) bool {
	switch t {
	case TypeText, TypeHTML, TypeScript, TypeHTA, TypeZip, TypeOOXML, TypeODF, TypeEPUB, TypeJar, Type7z, TypeRar,
		TypeTar, TypeGzip, TypeBzip2, TypeXz, TypeZstd, TypeOLE, TypeMSI:
		return false
	}
	return true
}

// polyglot spills a file, walks the archives hidden in it, and then treats
// the file itself as a leaf.
func (w *walker) polyglot(n node, t string, r io.Reader) error {
	sp, release, err := w.hold(r, n.hint)
	if err != nil {
		return w.unreadable(n, t, err)
	}
	defer release()
	if n.size < 0 {
		n.size = sp.Size()
	}
	switch t {
	case TypeRTF:
		if err := w.rtfObjects(n, sp); err != nil {
			return err
		}
	case TypePDF:
		if err := w.pdfObjects(n, sp); err != nil {
			return err
		}
	}
	if isISO(sp) {
		if err := w.iso(n, sp); err != nil {
			return err
		}
		return w.heldLeaf(n, t, sp)
	}
	if d := diskImage(sp, sp.Size()); d != "" {
		w.find(KindDiskImage, n.path, d)
		w.find(KindUninspectable, n.path, d)
		if err := w.tick(n.path); err != nil {
			return err
		}
	}
	for _, h := range findHidden(sp, sp.Size(), w.entryBudget()) {
		if err := w.tick(n.path); err != nil {
			return err
		}
		c := n
		c.path = n.path + "#" + h.kind + "@" + strconv.FormatInt(h.off, 10)
		c.name, c.names = "", nil
		c.depth++
		w.find(KindHiddenArchive, n.path, h.kind+" at offset "+strconv.FormatInt(h.off, 10)+" of a "+t)
		w.archiveChecks(n, h.kind)
		if err := w.tick(n.path); err != nil {
			return err
		}
		sec := io.NewSectionReader(sp, h.off, h.end-h.off)
		if h.kind == TypeZip {
			err = w.zip(c, TypeZip, sp, h.end, "")
		} else {
			err = w.file(c, sec)
		}
		if err != nil {
			return err
		}
	}
	if hasTextBlock(sp) {
		// yEnc is 8-bit: a body that holds it does not look like text.
		if err := w.textBlocks(n, sp.Reader()); err != nil {
			return err
		}
	}
	return w.heldLeaf(n, t, sp)
}

// heldLeaf is leaf for a file already held, so already read to its end
// through its meter: for Check, reading it again could find nothing more
// (no bomb goes off twice, a corrupt stream showed while it was held),
// and only the compound files leaf scans for macros are read again.
func (w *walker) heldLeaf(n node, t string, f held) error {
	if w.fn == nil && t != TypeOLE && t != TypeMSI {
		return w.tick(n.path)
	}
	return w.leaf(n, t, f.Reader())
}

// hasTextBlock reports a yEnc or uuencode begin line in the first 64 KiB.
func hasTextBlock(r io.ReaderAt) bool {
	bp := scanBufs.Get().(*[scanWindow]byte)
	defer scanBufs.Put(bp)
	buf := bp[:]
	n, _ := r.ReadAt(buf, 0)
	buf = buf[:n]
	return bytes.HasPrefix(buf, []byte("=ybegin ")) || bytes.Contains(buf, []byte("\n=ybegin ")) ||
		bytes.HasPrefix(buf, []byte("begin ")) || bytes.Contains(buf, []byte("\nbegin "))
}

const scanWindow = 64 << 10

// scanBufs holds the windows of the signature scans: one file after
// another needs one.
var scanBufs = sync.Pool{New: func() any { return new([scanWindow]byte) }}

type hidden struct {
	kind     string
	off, end int64
}

// findHidden scans ra for archives that do not start at offset 0: zips by
// their end records (the zip is what a reader of the bytes up to the
// record's end sees), 7z and RAR by their signatures.
func findHidden(ra io.ReaderAt, size int64, maxEntries int) []hidden {
	var out []hidden
	seenBase := map[int64]bool{}
	scanSigs(ra, size, func(off int64, sig []byte) bool {
		switch {
		case bytes.Equal(sig, sigZipEnd):
			var rec [22]byte
			if _, err := ra.ReadAt(rec[:], off); err != nil {
				return true
			}
			end := min(size, off+22+int64(binary.LittleEndian.Uint16(rec[20:])))
			a, err := zipscan.Parse(ra, end, maxEntries)
			if err != nil && !errors.Is(err, zipscan.ErrTooManyEntries) {
				return true // not a zip's end
			}
			// Where the zip starts: its first local header (an SFX keeps
			// offsets from the start of the file), or its base.
			base := off
			if a != nil {
				base = a.CDStart
				for i := range a.Entries {
					base = min(base, a.Entries[i].Header)
				}
				base = max(base, 0)
			}
			if base == 0 {
				return true // a zip from the first byte is opened as one
			}
			if !seenBase[base] {
				seenBase[base] = true
				out = append(out, hidden{kind: TypeZip, off: base, end: end})
			}
		case off > 0 && bytes.Equal(sig, sig7z):
			out = append(out, hidden{kind: Type7z, off: off, end: size})
		case off > 0 && bytes.Equal(sig, sigRar):
			out = append(out, hidden{kind: TypeRar, off: off, end: size})
		}
		return len(out) < maxHidden
	})
	return out
}

// scanSigs calls fn for each archive signature in ra, in order, until fn
// returns false. It reads in 64 KiB windows that overlap by a signature's
// length, so its memory is fixed whatever the size.
func scanSigs(ra io.ReaderAt, size int64, fn func(off int64, sig []byte) bool) {
	const window = scanWindow
	const overlap = 8 // longer than any signature
	bp := scanBufs.Get().(*[scanWindow]byte)
	defer scanBufs.Put(bp)
	buf := bp[:]
	hits := 0
	for base := int64(0); base < size; base += window - overlap {
		n, err := ra.ReadAt(buf, base)
		if n <= 0 {
			return
		}
		chunk := buf[:n]
		last := err != nil || int64(n) < window || base+int64(n) >= size
		// Each offset is looked at in one window only: this one takes
		// those that leave a whole signature inside it.
		stop := len(chunk)
		if !last {
			stop -= overlap
		}
		for i := 0; i < stop; {
			j := indexAnySig(chunk[i:])
			if j < 0 || i+j >= stop {
				break
			}
			at := i + j
			for _, sig := range [][]byte{sigZipEnd, sig7z, sigRar} {
				if bytes.HasPrefix(chunk[at:], sig) {
					if hits++; hits > 1000 || !fn(base+int64(at), sig) {
						return
					}
				}
			}
			i = at + 1
		}
		if last {
			return
		}
	}
}

// indexAnySig finds the first byte that may start a signature: 'P', '7'
// or 'R' followed by the signature's second byte.
func indexAnySig(b []byte) int {
	best := -1
	for _, p := range [...]string{"PK\x05\x06", "7z\xbc\xaf", "Rar!"} {
		if k := bytes.Index(b, []byte(p)); k >= 0 && (best < 0 || k < best) {
			best = k
		}
	}
	return best
}
