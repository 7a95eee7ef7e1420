package archive

import (
	"bytes"
	"encoding/binary"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/h2non/filetype"
	"github.com/h2non/filetype/matchers"
)

// Detected types. DetectType returns one of these, or the extension
// h2non/filetype gives a media type it knows ("jpg", "png", "mp3", ...).
const (
	TypePE     = "pe"     // Windows PE: MZ header pointing at a PE signature
	TypeMZ     = "mz"     // "MZ" and no PE header: DOS program, truncated or stub executable
	TypeELF    = "elf"    // ELF executable or library
	TypeMachO  = "macho"  // Mach-O, thin or universal
	TypeLNK    = "lnk"    // Windows shortcut
	TypeOLE    = "ole"    // OLE compound file: .doc, .xls, .ppt, ...
	TypeMSI    = "msi"    // Windows Installer package (an OLE file whose root says so, when the head shows it)
	TypeClass  = "class"  // Java class file
	TypeScript = "script" // shebang script, or a script by name (.bat .js .vbs .ps1 ...)
	TypeHTA    = "hta"    // HTML application
	TypeHTML   = "html"
	TypeText   = "text"
	TypePDF    = "pdf"
	TypeRTF    = "rtf"
	TypeBinary = "binary"  // nothing recognised
	TypeEML    = "eml"     // a mail message (RFC 5322 header first): walked like the message itself
	TypeTNEF   = "tnef"    // Outlook's winmail.dat: its attachments are walked
	TypeISO    = "iso9660" // a CD/DVD image (found past the head, at sector 16): its files are walked
	TypeCHM    = "chm"     // compiled HTML help: runs scripts when opened

	// Archives and compressed files the inspector opens.
	TypeZip   = "zip"
	TypeTar   = "tar"
	Type7z    = "7z"
	TypeRar   = "rar"
	TypeGzip  = "gzip"
	TypeBzip2 = "bzip2"
	TypeXz    = "xz"
	TypeZstd  = "zstd"

	// Zip containers that are documents or programs, told apart by their
	// entries (DetectType sees only the first one and may say "zip").
	TypeOOXML = "ooxml" // docx, xlsx, pptx and their macro variants
	TypeODF   = "odf"   // OpenDocument
	TypeEPUB  = "epub"
	TypeJar   = "jar"

	// Archives the inspector recognises but does not open: uninspectable.
	TypeARJ  = "arj"
	TypeCAB  = "cab"
	TypeACE  = "ace"
	TypeLZH  = "lzh"
	TypeCPIO = "cpio"
	TypeLZ4  = "lz4"
	TypeLzip = "lzip"
	TypeZ    = "compress" // Unix compress (.Z)
	TypeSZDD = "szdd"     // MS-DOS COMPRESS.EXE
)

// HeadSize is how many leading bytes DetectType looks at; give it at least
// this many when the file has them.
const HeadSize = 8 << 10

// DetectType names the type of a file from its first bytes (up to HeadSize),
// content first: a PE named invoice.pdf is "pe". The name (any path, any
// case) only decides between kinds of text, for scripts that have no magic
// number (.bat .cmd .vbs .js .ps1 ...) and HTML applications. It never
// returns "".
//
// Zip-based documents are "ooxml", "odf" or "epub" when the first entry
// gives them away, else "zip"; the inspector refines that from the whole
// central directory.
func DetectType(head []byte, name string) string {
	if t := magicType(head); t != "" {
		return t
	}
	ext := extOf(normalName(name))
	if looksText(head) {
		low := head[:min(len(head), 4096)]
		switch {
		case bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n\ufeff"), []byte("#!")):
			return TypeScript
		case containsFold(low, "<hta:application") || ext == "hta":
			return TypeHTA
		case scriptExt[ext]:
			return TypeScript
		case looksMessage(head):
			return TypeEML
		case containsFold(low, "<html") || containsFold(low, "<!doctype html"):
			return TypeHTML
		}
		return TypeText
	}
	if bytes.HasPrefix(head, []byte("MZ")) {
		// No PE header behind it (that was ruled out above): a DOS
		// program, a truncated PE, or a stub with something after it.
		// Windows still runs those; nothing else starts so.
		return TypeMZ
	}
	if t := matchFiletype(head); t != "" && t != "exe" {
		// filetype calls anything starting with "MZ" an exe; a real PE was
		// ruled out above.
		return t
	}
	return TypeBinary
}

// fileMatchers are h2non/filetype's matchers in the order filetype.Match
// tries them, looked up once. Match looks each one up in a map keyed by a
// struct of four strings, for every buffer; hashing those keys was most
// of its cost (5.2 µs for 8 KB of random bytes, which no matcher takes,
// so all of them run; the whole of DetectType now takes 2.1 µs).
var fileMatchers = func() []matchers.TypeMatcher {
	keys := *filetype.MatcherKeys
	out := make([]matchers.TypeMatcher, len(keys))
	for i, k := range keys {
		out[i] = filetype.Matchers[k]
	}
	return out
}()

// matchFiletype is filetype.Match's extension for head, or "" when no
// matcher takes it.
func matchFiletype(head []byte) string {
	if len(fileMatchers) != len(*filetype.MatcherKeys) {
		// A matcher was added since (filetype.AddMatcher): ask filetype.
		t, err := filetype.Match(head)
		if err != nil || t.Extension == "unknown" {
			return ""
		}
		return t.Extension
	}
	if len(head) == 0 {
		return ""
	}
	for _, m := range fileMatchers {
		if t := m(head); t.Extension != "unknown" && t.Extension != "" {
			return t.Extension
		}
	}
	return ""
}

// containsFold reports whether b contains pat, a lower-case ASCII string
// whose first byte has no case ('<'), in any ASCII case. Lower-casing b whole (a copy per call) would find no
// more: no other character lower-cases to these patterns' letters.
func containsFold(b []byte, pat string) bool {
	for i := 0; i+len(pat) <= len(b); i++ {
		j := bytes.IndexByte(b[i:len(b)-len(pat)+1], pat[0])
		if j < 0 {
			return false
		}
		i += j
		k := 1
		for ; k < len(pat); k++ {
			c := b[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != pat[k] {
				break
			}
		}
		if k == len(pat) {
			return true
		}
	}
	return false
}

var scriptExt = setOf("bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "ps1", "psm1", "sh", "command")

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, x := range s {
		m[x] = true
	}
	return m
}

var (
	lnkHeader = []byte{0x4c, 0, 0, 0, 0x01, 0x14, 0x02, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46}
	oleHeader = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}
)

// magicType recognises the types whose magic numbers h2non/filetype gets
// wrong or does not know.
func magicType(h []byte) string {
	has := func(off int, s string) bool { return len(h) >= off+len(s) && string(h[off:off+len(s)]) == s }
	switch {
	case isPE(h, 0):
		return TypePE
	case has(0, "\x7fELF"):
		return TypeELF
	case has(0, "\xfe\xed\xfa\xce"), has(0, "\xfe\xed\xfa\xcf"), has(0, "\xce\xfa\xed\xfe"), has(0, "\xcf\xfa\xed\xfe"):
		return TypeMachO
	case has(0, "\xca\xfe\xba\xbe") && len(h) >= 8:
		// Universal Mach-O and Java class files share this magic: a fat
		// binary counts a few architectures where a class has its version.
		if binary.BigEndian.Uint32(h[4:]) < 45 {
			return TypeMachO
		}
		return TypeClass
	case bytes.HasPrefix(h, lnkHeader):
		return TypeLNK
	case bytes.HasPrefix(h, oleHeader):
		if isMSI(h) {
			return TypeMSI
		}
		return TypeOLE
	case has(0, "PK\x03\x04"), has(0, "PK\x05\x06"), has(0, "PK\x07\x08PK\x03\x04"):
		if t := zipDocType(h); t != "" {
			return t
		}
		return TypeZip
	case has(0, "7z\xbc\xaf\x27\x1c"):
		return Type7z
	case has(0, "Rar!\x1a\x07"):
		return TypeRar
	case has(0, "\x1f\x8b"):
		return TypeGzip
	case has(0, "BZh") && len(h) >= 4 && h[3] >= '1' && h[3] <= '9':
		return TypeBzip2
	case has(0, "\xfd7zXZ\x00"):
		return TypeXz
	case has(0, "\x28\xb5\x2f\xfd"):
		return TypeZstd
	case isTar(h):
		return TypeTar
	case has(0, "\x60\xea"):
		return TypeARJ
	case has(0, "MSCF\x00\x00\x00\x00"):
		return TypeCAB
	case has(7, "**ACE**"):
		return TypeACE
	case has(2, "-lh") && len(h) > 6 && h[6] == '-', has(2, "-lz") && len(h) > 6 && h[6] == '-':
		return TypeLZH
	case has(0, "070707"), has(0, "070701"), has(0, "070702"), has(0, "\xc7\x71"), has(0, "\x71\xc7"):
		return TypeCPIO
	case has(0, "\x04\x22\x4d\x18"):
		return TypeLZ4
	case has(0, "LZIP"):
		return TypeLzip
	case has(0, "\x1f\x9d"):
		return TypeZ
	case has(0, "SZDD\x88\xf0\x27\x33"):
		return TypeSZDD
	case has(0, "\x78\x9f\x3e\x22"):
		return TypeTNEF
	case has(0, "ITSF\x03\x00\x00\x00"):
		return TypeCHM
	case has(0, "{\\rtf"):
		return TypeRTF
	case bytes.Contains(h[:min(len(h), 1024)], []byte("%PDF-")):
		return TypePDF
	}
	return ""
}

// msiCLSIDs are the root storage classes of Windows Installer packages,
// patches and transforms ({000C1084-…}, {000C1086-…}, {000C1082-…}), as
// stored (little endian).
var msiCLSIDs = [][]byte{
	{0x84, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46},
	{0x86, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46},
	{0x82, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46},
}

// isMSI reads the OLE root directory entry's class, when the first
// directory sector lies within the head.
func isMSI(h []byte) bool {
	if len(h) < 0x34 {
		return false
	}
	shift := binary.LittleEndian.Uint16(h[0x1e:])
	if shift != 9 && shift != 12 {
		return false
	}
	dir := (int64(binary.LittleEndian.Uint32(h[0x30:])) + 1) << shift
	if dir+0x60 > int64(len(h)) {
		return false
	}
	clsid := h[dir+0x50 : dir+0x60]
	for _, c := range msiCLSIDs {
		if bytes.Equal(clsid, c) {
			return true
		}
	}
	return false
}

// isPE checks for a real PE header: "MZ", an e_lfanew that points inside
// the head at "PE\0\0", and a known optional header magic — not just "MZ",
// which plenty of text and data starts with.
func isPE(h []byte, off int) bool {
	h = h[off:]
	if len(h) < 0x40 || h[0] != 'M' || h[1] != 'Z' {
		return false
	}
	lfanew := int64(binary.LittleEndian.Uint32(h[0x3c:]))
	if lfanew < 0x40 || lfanew+26 > int64(len(h)) {
		return false
	}
	pe := h[lfanew:]
	if string(pe[:4]) != "PE\x00\x00" {
		return false
	}
	magic := binary.LittleEndian.Uint16(pe[24:])
	return magic == 0x10b || magic == 0x20b || magic == 0x107
}

// isTar accepts a POSIX/GNU "ustar" header, or an old V7 header whose
// checksum adds up.
func isTar(h []byte) bool {
	if len(h) < 512 {
		return false
	}
	if string(h[257:262]) == "ustar" {
		return true
	}
	sum := 0
	for i, b := range h[:512] {
		if i >= 148 && i < 156 {
			b = ' '
		}
		sum += int(b)
	}
	field := strings.Trim(string(h[148:156]), " \x00")
	if field == "" || h[0] == 0 {
		return false
	}
	want := 0
	for _, c := range field {
		if c < '0' || c > '7' {
			return false
		}
		want = want*8 + int(c-'0')
	}
	return want == sum
}

// zipDocType looks at the first local header's name, which document
// formats fix: "mimetype" for OpenDocument and EPUB (stored, first), and
// "[Content_Types].xml" for Office Open XML in the common writers.
func zipDocType(h []byte) string {
	if len(h) < 30 || string(h[:4]) != "PK\x03\x04" {
		return ""
	}
	n := int(binary.LittleEndian.Uint16(h[26:]))
	m := int(binary.LittleEndian.Uint16(h[28:]))
	if 30+n > len(h) {
		return ""
	}
	name := string(h[30 : 30+n])
	switch {
	case name == "[Content_Types].xml":
		return TypeOOXML
	case name == "mimetype":
		data := h[min(len(h), 30+n+m):]
		switch {
		case bytes.HasPrefix(data, []byte("application/epub+zip")):
			return TypeEPUB
		case bytes.HasPrefix(data, []byte("application/vnd.oasis.opendocument.")):
			return TypeODF
		}
	case name == "META-INF/MANIFEST.MF":
		return TypeJar
	}
	return ""
}

// looksText accepts UTF-8 (or UTF-16 with a byte order mark) without NUL
// and with few control characters.
func looksText(h []byte) bool {
	if len(h) == 0 {
		return true
	}
	if bytes.HasPrefix(h, []byte{0xff, 0xfe}) || bytes.HasPrefix(h, []byte{0xfe, 0xff}) {
		return true
	}
	ctl := 0
	for i := 0; i < len(h); {
		// Eight bytes at a time while they are printable ASCII (the bulk
		// of any text): none with its top bit set, none below 0x20 (a
		// borrow from one below 0x20 only sends its neighbours the slow
		// way). The slow way takes the next eight bytes, or what follows
		// them when a rune straddles the end.
		for i+8 <= len(h) {
			x := binary.LittleEndian.Uint64(h[i:])
			if (x|(x-0x2020202020202020))&0x8080808080808080 != 0 {
				break
			}
			i += 8
		}
		for end := min(i+8, len(h)); i < end; {
			c := h[i]
			if c < utf8.RuneSelf {
				if c == 0 {
					return false
				}
				if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != 0x1b {
					ctl++
				}
				i++
				continue
			}
			r, size := utf8.DecodeRune(h[i:])
			if r == utf8.RuneError && size == 1 {
				if len(h)-i < utf8.UTFMax && !utf8.FullRune(h[i:]) {
					return ctl*100 < len(h) // a rune cut by the end of the head
				}
				return false
			}
			i += size
		}
	}
	return ctl*100 < len(h)
}

// extOf returns the last extension of a normalised name, without the dot.
func extOf(name string) string {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	i := strings.LastIndexByte(base, '.')
	if i <= 0 && !(i == 0 && len(base) > 1) {
		return ""
	}
	return base[i+1:]
}
