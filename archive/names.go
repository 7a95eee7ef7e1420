package archive

import (
	"strings"
	"unicode"
)

// bidi controls reorder how a name is shown: "invoice_\u202Eexe.pdf" shows as
// "invoice_fdp.exe". Zero-width characters hide nothing on their own but
// are removed too, so they cannot split an extension.
func isBidi(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

func isInvisible(r rune) bool {
	return r == 0x200b || r == 0x200c || r == 0x200d || r == 0xfeff || r == 0x00ad
}

// normalName is a name as Windows would act on it: bidi and zero-width
// characters removed, trailing dots and spaces trimmed, case folded.
func normalName(name string) string {
	n, _ := normalise(name)
	return n
}

// normalise returns normalName(name) and whether name held bidi controls.
func normalise(name string) (string, bool) {
	bidi := false
	clean := strings.Map(func(r rune) rune {
		if isBidi(r) {
			bidi = true
			return -1
		}
		if isInvisible(r) || r == 0 {
			return -1
		}
		return r
	}, name)
	clean = strings.TrimRightFunc(clean, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	return strings.ToLower(clean), bidi
}

// baseName is the last element of a path in an archive, whichever
// separator its writer used.
func baseName(p string) string {
	p = strings.TrimRight(p, "/\\")
	if i := strings.LastIndexAny(p, "/\\"); i >= 0 {
		return p[i+1:]
	}
	return p
}

// traversal reports an entry name that would escape the directory it is
// extracted into: a ".." element, or an absolute or drive path.
func traversal(name string) bool {
	if name == "" {
		return false
	}
	if name[0] == '/' || name[0] == '\\' || (len(name) >= 2 && name[1] == ':' && unicode.IsLetter(rune(name[0]))) {
		return true
	}
	for _, el := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if strings.TrimRight(el, " .") == "" && strings.Contains(el, "..") {
			return true
		}
	}
	return false
}

// decoyExt are extensions people trust; seen before an executable one they
// are the bait of a double extension ("report.pdf.exe").
var decoyExt = setOf("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "rtf", "txt", "csv",
	"jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "mp3", "mp4", "avi", "mov", "wav", "htm", "html",
	"zip", "rar", "7z", "eml", "msg", "ics", "xml", "json")

// doubleExt reports a normalised name whose last extension is in banned and
// whose one before it is a decoy, allowing spaces between them.
func doubleExt(name string, banned func(ext string) bool) bool {
	base := baseName(name)
	i := strings.LastIndexByte(base, '.')
	if i <= 0 || !banned(base[i+1:]) {
		return false
	}
	rest := strings.TrimRightFunc(base[:i], unicode.IsSpace)
	j := strings.LastIndexByte(rest, '.')
	return j >= 0 && decoyExt[rest[j+1:]]
}
