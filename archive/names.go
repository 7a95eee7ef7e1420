package archive

import (
	"regexp"
	"slices"
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

// clsidExt is a Windows class ID used as an extension ("x.{3050F4D8-98B5-
// 11CF-BB82-00AA00BDCE0B}"): Explorer hides it and opens the file with
// the class it names, whatever the visible extension says.
var clsidExt = regexp.MustCompile(`(?i)\.?\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\}$`)

// nameReadings returns every name a file may be taken for: the name as
// written, the name cut at a NUL (as C code reads it), an NTFS name with
// its alternate stream ("a.txt:evil.bat", "a.bat::$DATA": the file and the
// stream), and the name without a CLSID extension. odd says what made a
// reading differ; clsid reports a CLSID extension.
func nameReadings(raw string) (readings, odd []string, clsid bool) {
	readings = []string{raw}
	add := func(s string) {
		if s != "" && !slices.Contains(readings, s) {
			readings = append(readings, s)
		}
	}
	if i := strings.IndexByte(raw, 0); i >= 0 {
		odd = append(odd, "NUL in the name")
		add(raw[:i])
	}
	for _, r := range slices.Clone(readings) {
		base := baseName(r)
		dir := r[:len(r)-len(base)]
		// "C:name" on its own is a drive-relative path, not a stream.
		i := strings.IndexByte(base, ':')
		if i == 1 && unicode.IsLetter(rune(base[0])) && strings.Count(base, ":") == 1 {
			i = -1
		}
		if i >= 0 && len(base) > 1 {
			odd = append(odd, "NTFS stream name")
			for _, s := range strings.Split(base, ":") {
				if s != "" && !strings.HasPrefix(s, "$") {
					add(dir + s)
				}
			}
		}
	}
	for _, r := range slices.Clone(readings) {
		if loc := clsidExt.FindStringIndex(r); loc != nil {
			clsid = true
			add(r[:loc[0]])
		}
	}
	return readings, odd, clsid
}
