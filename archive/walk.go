package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"github.com/pierrec/lz4/v4"
	"io"
	"io/fs"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/bodgit/sevenzip"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"
	fastxz "github.com/mikelolasagasti/xz"
	"github.com/nwaples/rardecode/v2"

	"github.com/portcullis-mail/portcullis/archive/internal/zipscan"
	"github.com/portcullis-mail/portcullis/filter"
)

// errStop ends a walk: a finding demanded reject (Check needs no more), or
// a limit was hit (w.limit says which).
var errStop = errors.New("archive: walk stopped")

// fnError carries an error from the Leaves callback up through the
// archive libraries, which wrap what they get.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// walker is one inspection of one message. It is not shared.
type walker struct {
	in       *Inspector
	ctx      context.Context
	lim      Limits
	fn       func(Leaf, io.Reader) error // nil when checking
	start    time.Time
	deadline time.Time

	findings []Finding
	seen     map[Finding]bool
	dropped  int
	demand   filter.Action
	total    int64 // bytes produced by unpacking, every layer
	entries  int
	stop     bool
	limit    *LimitError
	embeds   int // files found smuggled in texts, for their names
}

// node is a file being looked at.
type node struct {
	path     string   // where, for people
	name     string   // its name inside its container ("" when nameless)
	names    []string // every candidate name (raw)
	ctype    string   // declared media type (attachments only)
	depth    int      // containers above it
	archives int      // of which archives (not documents, not compressed files)
	size     int64    // declared size, -1 when unknown
	hint     int64    // a first guess at its size (a part's raw size, a member's declared one), else 0: see hold
}

func (n node) child(name string, archive bool, size int64) node {
	c := node{path: n.path + "/" + printable(name), name: baseName(name), names: []string{name},
		depth: n.depth + 1, archives: n.archives, size: size, hint: max(size, 0)}
	if archive {
		c.archives++
	}
	return c
}

const maxFindings = 64

// find records a finding. In Check mode a finding that demands reject
// stops the walk.
func (w *walker) find(k Kind, path, what string) {
	f := Finding{Kind: k, Path: printable(path), What: printable(what)}
	if w.seen == nil {
		w.seen = make(map[Finding]bool)
	}
	if !w.seen[f] {
		w.seen[f] = true
		if len(w.findings) < maxFindings {
			w.findings = append(w.findings, f)
		} else {
			w.dropped++
		}
	}
	a := w.in.actions[k]
	w.demand = w.demand.Max(a)
	if w.fn == nil && a >= filter.Reject {
		w.stop = true
	}
}

// printable keeps details on one short line whatever a name holds.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidi(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// hitLimit records a limit and stops the walk.
func (w *walker) hitLimit(limit, max, path string) error {
	if w.limit == nil {
		w.limit = &LimitError{Limit: limit, Max: max, Path: printable(path)}
		w.find(KindBomb, path, limit+" > "+max)
	}
	w.stop = true
	return w.limit
}

// tick is called before each file: it ends the walk when asked to, when
// the context is done, or when the time is up.
func (w *walker) tick(path string) error {
	if w.stop {
		if w.limit != nil {
			return w.limit
		}
		return errStop
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if time.Now().After(w.deadline) {
		return w.hitLimit("time", w.lim.MaxTime.String(), path)
	}
	return nil
}

func (w *walker) countEntry(path string) error {
	if err := w.tick(path); err != nil {
		return err
	}
	w.entries++
	if w.entries > w.lim.MaxEntries {
		return w.hitLimit("entries", strconv.Itoa(w.lim.MaxEntries), path)
	}
	return nil
}

// fatal tells errors that end the walk from those that only make one file
// uninspectable.
func (w *walker) fatal(err error) bool {
	var fe *fnError
	return w.stop || errors.Is(err, errStop) || errors.Is(err, ErrLimit) || errors.As(err, &fe) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// message walks every leaf of m. Attachments are files; a text leaf is a
// file too when its content is not text (an unnamed base64 part typed
// text/plain that holds a PE is a PE), else it is searched for files
// encoded in it (uuencode, yEnc, BinHex). A multipart with no parts (no
// delimiter found) is read as a leaf. Every reading of a leaf's encoding
// is walked.
func (w *walker) message(m *filter.Message) error {
	return w.result(w.parts(m, nil))
}

// parts walks the parts of m; in is the file m was found in (an attached
// .eml, an encoded message/rfc822), nil for the message under inspection.
func (w *walker) parts(m *filter.Message, in *node) error {
	parts, _ := m.Parts() // a parse error is the pipeline's to report
	if w.fn == nil {
		w.defects(m, parts, in)
		w.notMail(m, parts, in)
	}
	for _, p := range parts {
		if len(p.Children) > 0 {
			continue
		}
		if err := w.part(p, in); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) part(p *filter.Part, in *node) error {
	n := node{path: partPath(p), name: p.Filename(), names: p.Names, ctype: p.ContentType, size: -1, hint: p.RawSize()}
	if p.Encoding == "base64" {
		n.hint = n.hint/4*3 + 3 // decoding never makes a body longer; base64 makes it ¾
	}
	if in != nil {
		n.path = in.path + "/" + n.path
		n.depth, n.archives = in.depth+1, in.archives
	}
	switch p.ContentType {
	case "message/partial":
		// One fragment of a message: what the fragments make together
		// cannot be judged from one of them.
		w.find(KindPartial, n.path, p.Params["id"])
	case "message/external-body":
		w.find(KindExternalBody, n.path, p.Params["access-type"])
	}
	if p.IsMessage() {
		// Encoded, so the parser did not descend it: a client does.
		return w.eml(n, p.Open())
	}
	if !p.IsAttachment() && !isUU(p.Encoding) {
		br := headBufs.Get().(*bufio.Reader)
		br.Reset(p.Open())
		defer func() { br.Reset(nil); headBufs.Put(br) }()
		head, _ := br.Peek(HeadSize)
		if t := DetectType(head, n.name); t == TypeText || t == TypeHTML {
			if err := w.textBlocks(n, br); err != nil {
				return err
			}
			return w.leafReadings(p, n)
		}
		if err := w.file(n, br); err != nil {
			return err
		}
		return w.leafReadings(p, n)
	}
	if err := w.file(n, p.Open()); err != nil {
		return err
	}
	return w.leafReadings(p, n)
}

func isUU(enc string) bool {
	switch enc {
	case "x-uuencode", "uuencode", "x-uue", "uue":
		return true
	}
	return false
}

// result turns the error that ended a walk into what the caller sees.
func (w *walker) result(err error) error {
	var fe *fnError
	switch {
	case errors.As(err, &fe):
		return fe.err
	case w.limit != nil:
		if w.fn == nil {
			return nil // Check: the limit is a finding
		}
		return w.limit
	case errors.Is(err, errStop):
		return nil
	}
	return err
}

// partPath names an attachment: its first candidate name, prefixed by the
// names of the message/rfc822 attachments it sits in.
func partPath(p *filter.Part) string {
	name := p.Filename()
	if name == "" {
		name = "part " + p.Path
		if p.Path == "" {
			name = "message"
		}
	}
	for q := p.Parent; q != nil; q = q.Parent {
		if q.IsMessage() && q.Filename() != "" {
			name = q.Filename() + "/" + name
		}
	}
	return printable(name)
}

// file looks at one file: names, type, and then either walks into it or
// treats it as a leaf. It returns only errors that end the walk.
func (w *walker) file(n node, r io.Reader) error {
	if err := w.tick(n.path); err != nil {
		return err
	}
	bannedExt := w.checkNames(n)
	br := headBufs.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); headBufs.Put(br) }()
	head, err := br.Peek(HeadSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		if bannedExt != "" {
			w.find(KindBannedType, n.path, "."+bannedExt)
		}
		return w.unreadable(n, "", err)
	}
	t := DetectType(head, n.name)
	w.checkType(n, t, bannedExt)
	if err := w.tick(n.path); err != nil {
		return err
	}
	switch t {
	case TypeZip, TypeOOXML, TypeODF, TypeEPUB, TypeJar, Type7z:
		return w.randomAccess(n, t, br)
	case TypeOLE:
		return w.ole(n, t, br)
	case TypeEML:
		return w.eml(n, br)
	case TypeTNEF:
		return w.tnef(n, br)
	case TypeText, TypeHTML, TypeScript, TypeHTA:
		return w.textFile(n, t, br)
	case TypeTar:
		return w.tar(n, br)
	case TypeRar:
		return w.rar(n, br)
	case TypeGzip, TypeBzip2, TypeXz, TypeZstd, TypeLZ4:
		return w.compressed(n, t, br)
	case TypeARJ, TypeCAB, TypeACE, TypeLZH, TypeCPIO, TypeLzip, TypeZ, TypeSZDD, TypeCHM:
		w.archiveChecks(n, t)
		w.find(KindUninspectable, n.path, t)
		if err := w.tick(n.path); err != nil {
			return err
		}
	}
	if polyglotCandidate(t) {
		return w.polyglot(n, t, br)
	}
	return w.leaf(n, t, br)
}

// guard runs one container's walk and turns a panic in a decoder (third
// party parsers do panic on hostile input) into an uninspectable finding:
// never a crash, never a pass. The panic is logged with its stack and
// counted.
func (w *walker) guard(n node, t string, walk func() error) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		stack := debug.Stack()
		w.in.recordPanic(stack)
		w.in.metrics.Add("portcullis_archive_panics_total", 1, "type", t)
		w.in.log.Error("archive: decoder panic", "path", n.path, "type", t, "panic", fmt.Sprint(v), "stack", string(stack))
		w.find(KindUninspectable, n.path, t+": decoder panic")
		err = w.tick(n.path)
	}()
	return walk()
}

// unreadable reports a file that could not be read: encrypted when the
// library says so, else uninspectable.
func (w *walker) unreadable(n node, t string, err error) error {
	if w.fatal(err) {
		if terr := w.tick(n.path); terr != nil {
			return terr
		}
		return err // the Leaves callback's, wrapped by a library
	}
	what := strings.TrimSpace(t + " " + shortErr(err))
	if encrypted(err) {
		w.find(KindEncrypted, n.path, what)
	} else {
		w.find(KindUninspectable, n.path, what)
	}
	return w.tick(n.path)
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func encrypted(err error) bool {
	var re *sevenzip.ReadError
	if errors.As(err, &re) && re.Encrypted {
		return true
	}
	return errors.Is(err, rardecode.ErrArchiveEncrypted) || errors.Is(err, rardecode.ErrArchivedFileEncrypted) ||
		errors.Is(err, rardecode.ErrBadPassword)
}

// checkNames reports bidi controls, double extensions and odd names
// (NUL, NTFS streams, CLSID extensions, empty member names) in every
// reading of every candidate name, and returns the first banned extension
// ("" for none).
func (w *walker) checkNames(n node) string {
	banned := ""
	empty := n.depth > 0 && len(n.names) > 0
	for _, raw := range n.names {
		readings, odd, clsid := nameReadings(raw)
		for _, o := range odd {
			w.find(KindBadName, n.path, o+" "+strconv.QuoteToASCII(raw))
		}
		if clsid && banned == "" {
			banned = "{clsid}"
		}
		for _, r := range readings {
			norm, bidi := normalise(r)
			if bidi {
				w.find(KindNameBidi, n.path, strconv.QuoteToASCII(raw))
			}
			if strings.TrimSpace(baseName(norm)) != "" {
				empty = false
			}
			ext := extOf(norm)
			if banned == "" && w.in.bannedExt[ext] {
				banned = ext
			}
			if w.in.riskyExt[ext] {
				w.find(KindRiskyName, n.path, "."+ext)
			}
			if doubleExt(norm, func(e string) bool { return w.in.bannedExt[e] || execExt[e] }) {
				w.find(KindDoubleExt, n.path, baseName(norm))
			}
		}
	}
	if empty {
		w.find(KindBadName, n.path, "empty name")
	}
	return banned
}

// namesOnly judges a file by its names alone, for entries whose content
// cannot be read (encrypted, unsupported method).
func (w *walker) namesOnly(n node) {
	if ext := w.checkNames(n); ext != "" {
		w.find(KindBannedType, n.path, "."+ext)
	}
}

// execExt are the extensions under which executable content is expected;
// executable content under any other name is disguised.
var execExt = setOf("exe", "dll", "scr", "com", "pif", "cpl", "sys", "ocx", "drv", "efi", "msi", "lnk",
	"so", "elf", "bin", "run", "out", "app", "dylib", "bundle", "o", "ko", "axf", "prx", "mui", "dat", "tmp", "")

// checkType reports a banned type, or else a banned extension, and a name or
// media type that disguises executable content.
func (w *walker) checkType(n node, t, bannedExt string) {
	switch {
	case w.in.bannedType[t]:
		w.find(KindBannedType, n.path, t)
	case bannedExt != "":
		w.find(KindBannedType, n.path, "."+bannedExt)
	}
	if t != TypePE && t != TypeMZ && t != TypeELF && t != TypeMachO && t != TypeLNK && t != TypeMSI {
		return
	}
	for _, name := range n.names {
		if ext := extOf(normalName(name)); !execExt[ext] {
			w.find(KindTypeMismatch, n.path, "."+ext+" is "+t)
		}
	}
	if ct := n.ctype; ct != "" && (ct == "application/pdf" || strings.HasPrefix(ct, "image/") ||
		strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "audio/") || strings.HasPrefix(ct, "video/") ||
		strings.Contains(ct, "officedocument") || ct == "application/msword") {
		w.find(KindTypeMismatch, n.path, ct+" is "+t)
	}
}

// archiveChecks applies the nesting and depth policy to a container about
// to be opened. archive is false for documents and compressed files.
func (w *walker) archiveChecks(n node, t string) {
	if isArchive(t) && n.archives > 0 && !w.in.allowNested && w.fn == nil {
		w.find(KindNested, n.path, t)
	}
	if n.depth+1 > w.lim.MaxDepth {
		w.hitLimit("depth", strconv.Itoa(w.lim.MaxDepth), n.path)
	}
}

func isArchive(t string) bool {
	switch t {
	case TypeZip, TypeJar, TypeTar, Type7z, TypeRar, TypeARJ, TypeCAB, TypeACE, TypeLZH, TypeCPIO:
		return true
	}
	return false
}

func isDocument(t string) bool { return t == TypeOOXML || t == TypeODF || t == TypeEPUB }

// leaf hands a file to the Leaves callback, or (Check) reads it to its end
// when it came out of an archive: that is where bombs go off and corrupt
// streams show, and where OLE files are scanned for macros.
func (w *walker) leaf(n node, t string, r io.Reader) error {
	if w.fn != nil {
		l := Leaf{Path: n.path, Name: n.name, Type: t, Size: n.size, Depth: n.depth}
		if err := w.fn(l, r); err != nil {
			if errors.Is(err, ErrLimit) && w.limit != nil {
				return w.limit
			}
			return &fnError{err}
		}
		return w.tick(n.path)
	}
	if n.depth == 0 && t != TypeOLE && t != TypeMSI {
		return nil
	}
	var sc *oleScan
	if t == TypeOLE || t == TypeMSI {
		sc = &oleScan{}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for empty := 0; ; {
		k, err := r.Read(buf)
		if sc != nil {
			sc.write(buf[:k])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if k == 0 && err == nil {
			if empty++; empty > 100 {
				err = io.ErrNoProgress // a decoder that neither reads nor fails
			}
		}
		if err != nil {
			return w.unreadable(n, t, err)
		}
	}
	if sc != nil {
		if sc.macro {
			w.find(KindMacro, n.path, "vba")
		}
		if sc.pe {
			w.find(KindEmbeddedExe, n.path, "pe")
		}
	}
	return w.tick(n.path)
}

// meter counts what an unpacking stream produces and enforces the byte,
// ratio and time limits while it streams.
type meter struct {
	w    *walker
	r    io.Reader
	in   *counter // the packed input, nil when there is no ratio to check
	n    int64
	path string
}

// counter counts what is read of r; when at is set, r reads it and what
// was consumed is what is gone from it (a decoder may read at directly).
type counter struct {
	r    io.Reader
	n    int64
	at   *bytes.Reader
	size int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counter) count() int64 {
	if c.at != nil {
		return c.size - int64(c.at.Len())
	}
	return c.n
}

func (w *walker) meter(r io.Reader, in *counter, path string) *meter {
	return &meter{w: w, r: r, in: in, path: path}
}

func (m *meter) Read(p []byte) (int, error) {
	w := m.w
	if w.stop {
		return 0, w.tick(m.path)
	}
	k, err := m.r.Read(p)
	m.n += int64(k)
	w.total += int64(k)
	lim := &w.lim
	switch {
	case m.n > lim.MaxEntryBytes:
		return k, w.hitLimit("entry-bytes", strconv.FormatInt(lim.MaxEntryBytes, 10), m.path)
	case w.total > lim.MaxTotalBytes:
		return k, w.hitLimit("total-bytes", strconv.FormatInt(lim.MaxTotalBytes, 10), m.path)
	case m.in != nil && m.n > lim.RatioFloor && float64(m.n) > lim.MaxRatio*float64(max(m.in.count(), 1)):
		return k, w.hitLimit("ratio", strconv.FormatFloat(lim.MaxRatio, 'f', -1, 64), m.path)
	}
	if err == nil {
		if terr := w.tick(m.path); terr != nil {
			return k, terr
		}
	}
	return k, err
}

// declared checks an entry's declared sizes before unpacking it: a
// declared bomb is stopped without spending the work.
func (w *walker) declared(path string, size, packed int64) error {
	lim := &w.lim
	switch {
	case size > lim.MaxEntryBytes:
		return w.hitLimit("entry-bytes", strconv.FormatInt(lim.MaxEntryBytes, 10), path)
	case w.total+size > lim.MaxTotalBytes:
		return w.hitLimit("total-bytes", strconv.FormatInt(lim.MaxTotalBytes, 10), path)
	case packed >= 0 && size > lim.RatioFloor && float64(size) > lim.MaxRatio*float64(max(packed, 1)):
		return w.hitLimit("ratio", strconv.FormatFloat(lim.MaxRatio, 'f', -1, 64), path)
	}
	return nil
}

var (
	// readBufs are the buffers leaf drains a file through, and headBufs
	// the readers a part or a file is sniffed and read through (file, part):
	// each lives for one call, never longer; no decoder reads one from a
	// goroutine of its own.
	readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	headBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, HeadSize) }}

	flatePool sync.Pool
	bufPool   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

type flateReader struct{ io.ReadCloser }

func (f flateReader) Close() error {
	err := f.ReadCloser.Close()
	flatePool.Put(f.ReadCloser)
	return err
}

// decoder opens a decompressor over r: t is a detected type, or a zip
// method as "zip-N".
func decoder(t string, r io.Reader) (io.ReadCloser, error) {
	switch t {
	case "zip-8":
		if fr, ok := flatePool.Get().(io.ReadCloser); ok {
			if err := fr.(flate.Resetter).Reset(r, nil); err == nil {
				return flateReader{fr}, nil
			}
		}
		return flateReader{flate.NewReader(r)}, nil
	case TypeGzip:
		return gzip.NewReader(r)
	case TypeBzip2, "zip-12":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case TypeXz, "zip-95":
		// 16 MiB of dictionary covers xz -0 to -7; larger ones are
		// uninspectable rather than a 64 MiB allocation an attacker chooses.
		xr, err := fastxz.NewReader(r, 16<<20)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(xr), nil
	case TypeZstd, "zip-93":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(16<<20), zstd.WithDecoderMaxMemory(uint64(DefaultMaxEntryBytes)))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case TypeLZ4:
		// Streaming, blocks of at most 4 MiB. (Lzip stays uninspectable:
		// its Go reader reads the whole input and panics on a short one.)
		return io.NopCloser(lz4.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%w: compression %s", ErrUninspectable, t)
}

// compressed opens a single compressed stream; the file inside is named
// after the stream (gzip's stored name, else the name less its extension).
func (w *walker) compressed(n node, t string, r io.Reader) error {
	w.archiveChecks(n, t)
	if err := w.tick(n.path); err != nil {
		return err
	}
	in := &counter{r: r}
	dec, err := decoder(t, in)
	if err != nil {
		return w.unreadable(n, t, err)
	}
	defer dec.Close()
	return w.guard(n, t, func() error { return w.decompressed(n, t, dec, in) })
}

func (w *walker) decompressed(n node, t string, dec io.Reader, in *counter) error {
	inner := innerName(n.name, t)
	names := []string{inner}
	if gz, ok := dec.(*gzip.Reader); ok && gz.Name != "" {
		names = append(names, gz.Name)
		if inner == "" {
			inner = gz.Name
		}
	}
	if inner == "" {
		inner = "data"
	}
	c := n.child(inner, false, -1)
	c.names = names
	return w.file(c, w.meter(dec, in, c.path))
}

func innerName(name, t string) string {
	low := strings.ToLower(name)
	for _, s := range [...]struct{ ext, repl string }{
		{".tgz", ".tar"}, {".taz", ".tar"}, {".tbz2", ".tar"}, {".tbz", ".tar"}, {".txz", ".tar"}, {".tzst", ".tar"},
		{".gz", ""}, {".gzip", ""}, {".bz2", ""}, {".bz", ""}, {".xz", ""}, {".zst", ""}, {".zstd", ""}, {".z", ""}, {".lz4", ""},
	} {
		if strings.HasSuffix(low, s.ext) {
			return name[:len(name)-len(s.ext)] + s.repl
		}
	}
	return baseName(name)
}

// randomAccess spills a zip, 7z or MZ-prefixed file so it can be read at
// any offset, then opens it.
func (w *walker) randomAccess(n node, t string, r io.Reader) error {
	if t == Type7z {
		// A zip's policy waits for its directory: a docx is no archive.
		w.archiveChecks(n, t)
		if err := w.tick(n.path); err != nil {
			return err
		}
	}
	// In memory up to MemoryBytes, else an unlinked temporary file. r is
	// metered, so what is held cannot grow past the byte limits. The
	// memory is pooled, so one zip after another reuses the same buffer.
	sp, release, err := w.hold(r, n.hint)
	if err != nil {
		return w.unreadable(n, t, err)
	}
	defer release()
	if n.size < 0 {
		n.size = sp.Size()
	}
	if t == Type7z {
		return w.sevenZip(n, sp)
	}
	return w.zip(n, t, sp, sp.Size(), "")
}

func (w *walker) entryBudget() int {
	return max(w.lim.MaxEntries-w.entries, 1)
}

// zip walks a zip from its own structure parser, which sees what the
// usual readers skip.
func (w *walker) zip(n node, t string, ra io.ReaderAt, size int64, suffix string) error {
	if mf, ok := ra.(memFile); ok {
		ra = memFile(mf.section(0, size))
	}
	a, err := zipscan.Parse(ra, size, w.entryBudget())
	switch {
	case errors.Is(err, zipscan.ErrTooManyEntries):
		return w.hitLimit("entries", strconv.Itoa(w.lim.MaxEntries), n.path)
	case err != nil:
		w.find(KindUninspectable, n.path, "zip: "+shortErr(err))
		if err := w.tick(n.path); err != nil {
			return err
		}
		return w.leaf(n, t, io.NewSectionReader(ra, 0, size))
	}
	if suffix == "" {
		// The directory tells documents and programs from plain zips.
		if refined := refineZip(a); refined != t {
			t = refined
			w.checkType(n, t, "")
		}
		w.archiveChecks(n, t)
	}
	for _, o := range a.Overlaps {
		w.find(KindZipOverlap, n.path, o)
	}
	if len(a.Overlaps) > 0 {
		// Overlapping entries are the bomb; their data is not worth a byte.
		return w.tick(n.path)
	}
	for _, name := range a.NameMismatch {
		w.find(KindZipNameMismatch, n.path+"/"+name, "local name differs")
	}
	for _, name := range a.SizeMismatch {
		w.find(KindZipSizeMismatch, n.path+"/"+printable(name), "local sizes differ from the central directory")
	}
	for _, off := range a.Hidden {
		w.find(KindZipConcatenated, n.path, "zip data at offset "+strconv.FormatInt(off, 10))
	}
	if a.HiddenEnd > 0 {
		w.find(KindZipConcatenated, n.path, "a second zip in the first "+strconv.FormatInt(a.HiddenEnd, 10)+" bytes")
	}
	if err := w.tick(n.path); err != nil {
		return err
	}
	if isDocument(t) && w.fn != nil {
		// Engines judge documents whole.
		return w.leaf(n, t, io.NewSectionReader(ra, 0, size))
	}
	if err := w.zipEntries(n, t, ra, a); err != nil {
		return err
	}
	if a.HiddenEnd > 0 && suffix == "" {
		hidden := n
		hidden.path += "#hidden"
		if mf, ok := ra.(memFile); ok {
			return w.zip(hidden, TypeZip, memFile(mf.section(0, a.HiddenEnd)), a.HiddenEnd, "#hidden")
		}
		return w.zip(hidden, TypeZip, io.NewSectionReader(ra, 0, a.HiddenEnd), a.HiddenEnd, "#hidden")
	}
	return nil
}

// refineZip tells documents and Java archives from plain zips by their
// entries.
func refineZip(a *zipscan.Archive) string {
	has := map[string]bool{}
	class := false
	for i := range a.Entries {
		name := a.Entries[i].Name
		switch name {
		case "[Content_Types].xml", "mimetype", "META-INF/manifest.xml", "META-INF/container.xml", "META-INF/MANIFEST.MF":
			has[name] = true
		}
		class = class || strings.HasSuffix(name, ".class")
	}
	switch {
	case has["[Content_Types].xml"]:
		return TypeOOXML
	case has["mimetype"] && has["META-INF/container.xml"]:
		return TypeEPUB
	case has["mimetype"] && has["META-INF/manifest.xml"]:
		return TypeODF
	case has["META-INF/MANIFEST.MF"] || class:
		return TypeJar
	}
	return TypeZip
}

func (w *walker) zipEntries(n node, t string, ra io.ReaderAt, a *zipscan.Archive) error {
	archive := isArchive(t)
	for i := range a.Entries {
		e := &a.Entries[i]
		if err := w.countEntry(n.path); err != nil {
			return err
		}
		c := n.child(e.Name, archive, int64(e.Size))
		for _, alt := range []string{e.UnicodeName, e.LocalName} {
			if alt != "" && alt != e.Name {
				c.names = append(c.names, alt)
			}
		}
		for _, name := range c.names {
			if traversal(name) {
				w.find(KindTraversal, c.path, name)
			}
		}
		if isDocument(t) {
			low := strings.ToLower(e.Name)
			if strings.HasSuffix(low, "vbaproject.bin") || (t == TypeODF && strings.HasPrefix(low, "basic/") && strings.HasSuffix(low, ".xml")) {
				w.find(KindMacro, n.path, e.Name)
			}
		}
		switch {
		case e.IsSymlink():
			// A link opens what it points at, but people see its name.
			w.find(KindLink, c.path, "symlink")
			w.namesOnly(c)
			continue
		case e.IsDir():
			continue
		case e.Encrypted():
			w.namesOnly(c)
			method := "zip crypto"
			if e.Method == zipscan.AES {
				method = "winzip aes"
			}
			w.find(KindEncrypted, c.path, method)
			if err := w.tick(c.path); err != nil {
				return err
			}
			continue
		}
		if err := w.zipEntry(c, ra, e); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) zipEntry(c node, ra io.ReaderAt, e *zipscan.Entry) error {
	unopened := func(why string) error {
		w.namesOnly(c)
		w.find(KindUninspectable, c.path, why)
		return w.tick(c.path)
	}
	if e.LocalErr != nil {
		return unopened(shortErr(e.LocalErr))
	}
	packed := int64(e.CompSize)
	if e.Method == zipscan.Store {
		packed = -1
	}
	if err := w.declared(c.path, int64(e.Size), packed); err != nil {
		return err
	}
	method := "zip-" + strconv.Itoa(int(e.Method))
	var in *counter
	var src io.Reader
	if mf, ok := ra.(memFile); ok {
		// In memory: decoders read the entry's bytes themselves, with no
		// buffer between (klauspost's inflater has a loop for a
		// *bytes.Reader), and what they consumed is what is left of it.
		data := mf.section(e.Data, int64(e.CompSize))
		br := bytes.NewReader(data)
		in = &counter{r: br, at: br, size: int64(len(data))}
		src = br
	} else {
		in = &counter{r: io.NewSectionReader(ra, e.Data, int64(e.CompSize))}
		// Decoders read a byte at a time from a ByteReader; without one they
		// would wrap the section in a small buffer of their own and turn a
		// spilled zip into a storm of 4 KiB reads.
		br := bufPool.Get().(*bufio.Reader)
		br.Reset(in)
		defer bufPool.Put(br)
		src = br
	}
	if e.Method == zipscan.Store {
		return w.file(c, w.meter(in, nil, c.path))
	}
	dec, err := decoder(method, src)
	if err != nil {
		return unopened("method " + strconv.Itoa(int(e.Method)))
	}
	defer dec.Close()
	return w.guard(c, method, func() error { return w.file(c, w.meter(dec, in, c.path)) })
}

// tar walks a tar stream.
func (w *walker) tar(n node, r io.Reader) error {
	w.archiveChecks(n, TypeTar)
	if err := w.tick(n.path); err != nil {
		return err
	}
	tw := &tarWatch{r: r}
	return w.guard(n, TypeTar, func() error {
		err := archives.Tar{}.Extract(w.ctx, tw, func(ctx context.Context, f archives.FileInfo) error {
			return w.member(n, f, -1)
		})
		w.tarNames(n, tw)
		if err != nil {
			return w.unreadable(n, TypeTar, err)
		}
		return w.tick(n.path)
	})
}

// tarNames reports the entries whose ustar, GNU and PAX names disagree,
// and judges every one of those names.
func (w *walker) tarNames(n node, tw *tarWatch) {
	for _, names := range tw.mismatches {
		c := n.child(names[0], true, -1)
		c.names = names
		w.find(KindTarNameMismatch, c.path, strings.Join(names, " | "))
		w.namesOnly(c)
	}
}

// member handles one entry that an mholt/archives extractor found.
func (w *walker) member(n node, f archives.FileInfo, packed int64) error {
	if err := w.countEntry(n.path); err != nil {
		return err
	}
	c := n.child(f.NameInArchive, true, f.Size())
	if traversal(f.NameInArchive) {
		w.find(KindTraversal, c.path, f.NameInArchive)
	}
	if f.LinkTarget != "" || f.Mode()&fs.ModeSymlink != 0 {
		// Judged by its own name and its target's, like a file.
		w.find(KindLink, c.path, "-> "+printable(f.LinkTarget))
		if t := baseName(f.LinkTarget); t != "" {
			c.names = append(c.names, t)
		}
		w.namesOnly(c)
		return w.tick(c.path)
	}
	if f.IsDir() || !f.Mode().IsRegular() {
		return w.tick(c.path)
	}
	if h, ok := f.Header.(*rardecode.FileHeader); ok && h.Encrypted {
		w.namesOnly(c)
		w.find(KindEncrypted, c.path, "rar")
		return w.tick(c.path)
	}
	if err := w.declared(c.path, f.Size(), packed); err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		w.namesOnly(c)
		return w.unreadable(c, "", err)
	}
	defer rc.Close()
	return w.file(c, w.meter(rc, nil, c.path))
}

func (w *walker) rar(n node, r *bufio.Reader) error {
	w.archiveChecks(n, TypeRar)
	if err := w.tick(n.path); err != nil {
		return err
	}
	// rardecode v2.2.0 loops forever in its signature search when the
	// version bytes after "Rar!\x1a\x07" are not one it knows: only the
	// exact signatures of RAR 1.5–4 and RAR 5 reach it.
	head, _ := r.Peek(8)
	if !bytes.HasPrefix(head, []byte("Rar!\x1a\x07\x00")) && !bytes.HasPrefix(head, []byte("Rar!\x1a\x07\x01\x00")) {
		w.find(KindUninspectable, n.path, "rar: unknown version")
		if err := w.tick(n.path); err != nil || w.fn == nil {
			return err
		}
		return w.leaf(n, TypeRar, r)
	}
	return w.guard(n, TypeRar, func() error {
		err := archives.Rar{}.Extract(w.ctx, r, func(ctx context.Context, f archives.FileInfo) error {
			return w.member(n, f, -1)
		})
		if err != nil {
			return w.unreadable(n, TypeRar, err)
		}
		return w.tick(n.path)
	})
}

func (w *walker) sevenZip(n node, sp held) error {
	err := check7z(sp, sp.Size())
	if err != nil {
		w.find(KindUninspectable, n.path, shortErr(err))
		if err := w.tick(n.path); err != nil || w.fn == nil {
			return err
		}
		return w.leaf(n, Type7z, sp.Reader())
	}
	if gerr := w.guard(n, Type7z, func() error {
		err = archives.SevenZip{}.Extract(w.ctx, sp.Reader(), func(ctx context.Context, f archives.FileInfo) error {
			return w.member(n, f, -1)
		})
		return nil
	}); gerr != nil {
		return gerr
	}
	if err != nil {
		if err := w.unreadable(n, Type7z, err); err != nil {
			return err
		}
		if w.fn != nil {
			// Engines get what could not be opened, as it is.
			return w.leaf(n, Type7z, sp.Reader())
		}
	}
	return w.tick(n.path)
}
