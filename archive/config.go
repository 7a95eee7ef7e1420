package archive

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Kind is a kind of finding. Its symbol is "ARCHIVE_" followed by the kind
// in upper snake case (KindBannedType is ARCHIVE_BANNED_TYPE), or for the
// MIME kinds "MIME_" and the rest (KindMIMEBareCR is MIME_BARE_CR).
type Kind string

// Finding kinds.
const (
	KindBannedType      Kind = "banned-type"        // banned extension or content type, at any depth
	KindNested          Kind = "nested"             // an archive inside an archive
	KindEncrypted       Kind = "encrypted"          // encrypted archive or entry
	KindUninspectable   Kind = "uninspectable"      // an archive that cannot be opened: unknown format, corrupt, truncated
	KindBomb            Kind = "bomb"               // a limit was exceeded (bytes, ratio, entries, depth, time)
	KindNameBidi        Kind = "name-bidi"          // bidi controls in a name (RTLO)
	KindDoubleExt       Kind = "double-ext"         // report.pdf.exe
	KindTypeMismatch    Kind = "type-mismatch"      // a declared name or type that hides an executable
	KindTraversal       Kind = "traversal"          // ../ or absolute entry names
	KindLink            Kind = "link"               // symbolic or hard link entries
	KindZipOverlap      Kind = "zip-overlap"        // zip entries whose data overlap: a non-recursive bomb
	KindZipNameMismatch Kind = "zip-name-mismatch"  // local header name differs from the central directory
	KindZipConcatenated Kind = "zip-concatenated"   // zip data the central directory does not account for
	KindZipSizeMismatch Kind = "zip-size-mismatch"  // local header sizes differ from the central directory
	KindTarNameMismatch Kind = "tar-name-mismatch"  // ustar, GNU long and PAX names of one entry disagree
	KindMacro           Kind = "macro"              // a document with VBA macros
	KindEmbeddedExe     Kind = "embedded-exe"       // a document with an executable inside an embedded object
	KindHiddenArchive   Kind = "hidden-archive"     // an archive inside a file that is not one (zip after a PDF, SFX)
	KindEmbeddedObject  Kind = "embedded-object"    // a file embedded in a document as an OLE object (Packager)
	KindPartial         Kind = "mime-partial"       // message/partial: a fragment that cannot be judged alone
	KindDiskImage       Kind = "disk-image"         // an ISO 9660, UDF, VHD(X) or raw disk image: Windows mounts it
	KindBadName         Kind = "bad-name"           // NUL, an NTFS stream or an empty member name
	KindRiskyName       Kind = "risky-ext"          // an extension that is scored, not banned (.svg: scripts in an image)
	KindExternalBody    Kind = "mime-external-body" // message/external-body: content fetched from elsewhere
	KindSmuggled        Kind = "smuggled"           // a file carried as base64 in an HTML or script text (data: URI, a string for atob)
	KindPDFActive       Kind = "pdf-active"         // a PDF with actions that run: /JavaScript, /JS, /Launch

	// MIME defects (filter.Defect), one kind each; their symbols are
	// MIME_*, e.g. MIME_BARE_CR. They score; KindAmbiguous decides.
	KindMIMEBoundaryParams  Kind = "mime-boundary-params"
	KindMIMEDuplicateHeader Kind = "mime-duplicate-header"
	KindMIMENoBoundary      Kind = "mime-no-boundary"
	KindMIMEUnterminated    Kind = "mime-unterminated"
	KindMIMEHeaderSyntax    Kind = "mime-header-syntax"
	KindMIMEBareCR          Kind = "mime-bare-cr"
	KindMIMEEncoding        Kind = "mime-encoding"
	KindMIMEContentType     Kind = "mime-content-type"
	KindMIMEParams          Kind = "mime-params"
	KindMIMEMbox            Kind = "mime-mbox-from"
	KindMIMEDelimiter       Kind = "mime-delimiter"
	// KindAmbiguous: a part whose structure is ambiguous (a defect for
	// which filter.DefectKind.Ambiguous is true) carries, under some
	// reading, content that is not plain text: a client may show a file
	// that no reading here judged the way the client does.
	KindAmbiguous Kind = "mime-ambiguous"
)

// DefectKind is the finding kind of a parser defect.
func DefectKind(k filter.DefectKind) Kind { return Kind("mime-" + string(k)) }

// kinds holds every kind with its default action and score. Doubt
// quarantines (recoverable); only certainty rejects.
var kinds = [...]struct {
	kind   Kind
	action filter.Action
	score  float64
}{
	{KindBannedType, filter.Reject, 10},
	{KindNested, filter.Reject, 5},
	{KindEncrypted, filter.Quarantine, 3},
	{KindUninspectable, filter.Quarantine, 3},
	{KindBomb, filter.Reject, 10},
	{KindNameBidi, filter.Quarantine, 6},
	{KindDoubleExt, filter.Accept, 4},
	{KindTypeMismatch, filter.Quarantine, 5},
	{KindTraversal, filter.Quarantine, 4},
	{KindLink, filter.Accept, 1},
	{KindZipOverlap, filter.Reject, 10},
	{KindZipNameMismatch, filter.Quarantine, 4},
	{KindZipConcatenated, filter.Quarantine, 4},
	{KindZipSizeMismatch, filter.Quarantine, 4},
	{KindTarNameMismatch, filter.Quarantine, 4},
	{KindMacro, filter.Accept, 4},
	{KindEmbeddedExe, filter.Quarantine, 8},
	{KindHiddenArchive, filter.Quarantine, 5},
	{KindEmbeddedObject, filter.Accept, 1},
	{KindPartial, filter.Quarantine, 3},
	{KindDiskImage, filter.Quarantine, 5},
	{KindBadName, filter.Accept, 2},
	{KindRiskyName, filter.Accept, 3},
	{KindExternalBody, filter.Accept, 1},
	{KindSmuggled, filter.Quarantine, 5},
	{KindPDFActive, filter.Accept, 1.5},
	{KindMIMEBoundaryParams, filter.Accept, 3},
	{KindMIMEDuplicateHeader, filter.Accept, 2},
	{KindMIMENoBoundary, filter.Accept, 2},
	{KindMIMEUnterminated, filter.Accept, 0.5},
	{KindMIMEHeaderSyntax, filter.Accept, 1},
	{KindMIMEBareCR, filter.Accept, 2},
	{KindMIMEEncoding, filter.Accept, 2},
	{KindMIMEContentType, filter.Accept, 0.5},
	{KindMIMEParams, filter.Accept, 0.5},
	{KindMIMEMbox, filter.Accept, 0},
	{KindMIMEDelimiter, filter.Accept, 0.5},
	{KindAmbiguous, filter.Quarantine, 4},
	{KindNotMail, filter.Accept, 3},
}

// Kinds lists every finding kind.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// Symbol is the kind's symbol name: ARCHIVE_BANNED_TYPE for
// KindBannedType, MIME_BARE_CR for KindMIMEBareCR.
func (k Kind) Symbol() string {
	if rest, ok := strings.CutPrefix(string(k), "mime-"); ok {
		return "MIME_" + filter.SymbolName(rest)
	}
	return "ARCHIVE_" + filter.SymbolName(string(k))
}

// DefaultActions returns the actions findings demand unless Config.Actions
// says otherwise: banned types, nested archives, bombs and overlapping zip
// entries reject; encrypted and uninspectable content, disguised names,
// odd zip structure and ambiguous MIME structure over files quarantine;
// the rest only score.
func DefaultActions() map[Kind]filter.Action {
	m := make(map[Kind]filter.Action, len(kinds))
	for _, k := range kinds {
		m[k.kind] = k.action
	}
	return m
}

// DefaultScores returns the scores of the findings' symbols unless
// Config.Scores says otherwise.
func DefaultScores() map[Kind]float64 {
	m := make(map[Kind]float64, len(kinds))
	for _, k := range kinds {
		m[k.kind] = k.score
	}
	return m
}

// DefaultBannedExtensions returns the extensions banned by name,
// standalone or at any depth: what Windows runs, installs or mounts when
// it is opened (docs/BANNED.md compares the list with rspamd's and
// amavis'). A CLSID extension ("x.{3050F4D8-…}") is banned too.
func DefaultBannedExtensions() []string {
	return []string{
		// programs and installers
		"exe", "com", "pif", "scr", "cpl", "msi", "msp", "mst", "msu", "appx", "appxbundle", "msix",
		"msixbundle", "application", "appref-ms", "gadget", "xbap", "jar", "jnlp", "dll", "sys", "ocx",
		"drv", "vxd", "xll", "xlam", "ppam", "diagcab",
		// scripts and their hosts
		"bat", "cmd", "vb", "vbs", "vbe", "vbp", "js", "jse", "ws", "wsf", "wsh", "wsc", "sct", "hta",
		"ps1", "ps1xml", "ps2", "ps2xml", "psc1", "psc2", "psm1", "psd1", "psdm1", "msh", "msh1", "msh2",
		"mshxml", "msh1xml", "msh2xml", "reg", "inf", "ins", "isp", "shb", "shs", "mcf", "vsmacros",
		// shortcuts, links and shell files
		"lnk", "url", "website", "scf", "library-ms", "settingcontent-ms", "search-ms", "searchconnector-ms",
		"xnk", "webpnp", "printerexport", "its", "grp",
		// management consoles, profiles and other files their handlers execute
		"msc", "ops", "osd", "prf", "plg", "vsw", "nsh", "pcd", "prg", "fxp", "bas", "hpj",
		// Access projects, databases and their shortcuts (macros run)
		"ade", "adp", "mdb", "mde", "mda", "mdt", "mdw", "mdz", "mad", "maf", "mag", "mam", "maq", "mar",
		"mas", "mat", "mau", "mav", "maw",
		// help, compiled HTML and web archives (they run script)
		"chm", "hlp", "mht", "mhtml",
		// disk images Windows mounts with a click, OneNote
		"iso", "img", "vhd", "vhdx", "one",
	}
}

// DefaultScoredExtensions returns the extensions that add a score (KindRiskyName)
// without a ban: an SVG image runs script when opened in a browser.
func DefaultScoredExtensions() []string { return []string{"svg", "svgz"} }

// DefaultBannedTypes returns the types banned by content whatever the name.
func DefaultBannedTypes() []string {
	return []string{TypePE, TypeMZ, TypeELF, TypeMachO, TypeLNK, TypeCHM}
}

// Finding is one piece of evidence: what was found and where.
type Finding struct {
	Kind Kind
	Path string // where in the message: "invoice.zip/setup.exe"
	What string // what: the detected type, the limit, the offending name
}

// Detail is the symbol detail: "invoice.zip/setup.exe (pe)".
func (f Finding) Detail() string {
	if f.What == "" {
		return f.Path
	}
	return f.Path + " (" + f.What + ")"
}

func (f Finding) String() string { return f.Kind.Symbol() + " " + f.Detail() }

// Limits bound what inspecting one message may cost. A zero field means its
// default; a negative one means no limit (only for input you trust). Every
// limit is checked while the data streams, so memory stays bounded whatever
// an archive claims about itself; exceeding one is a KindBomb finding and
// ends the inspection of the message.
type Limits struct {
	// MaxDepth bounds containers inside containers (a compressed file
	// counts as a container). Default 8.
	MaxDepth int
	// MaxTotalBytes bounds the bytes produced by unpacking, summed over
	// every layer (a tar.gz counts its tar stream and its files). Default 512 MiB.
	MaxTotalBytes int64
	// MaxEntryBytes bounds one unpacked file. Default 128 MiB.
	MaxEntryBytes int64
	// MaxRatio bounds unpacked bytes over packed bytes of one stream, checked
	// once RatioFloor bytes came out. Default 250 (text compresses about 10:1,
	// deflate tops out near 1032:1).
	MaxRatio float64
	// RatioFloor is the output below which the ratio is not checked. Default 1 MiB.
	RatioFloor int64
	// MaxEntries bounds the files and directories in all archives of a
	// message. Default 10,000.
	MaxEntries int
	// MaxTime bounds one message's inspection. Default 20 s (below a
	// pipeline's default 30 s filter timeout, so the finding says why).
	MaxTime time.Duration
	// MemoryBytes is how much of an archive that needs random access (zip,
	// 7z) is kept in memory; larger ones go to an anonymous temporary file.
	// Default 4 MiB.
	MemoryBytes int64
}

// Default limits.
const (
	DefaultMaxDepth      = 8
	DefaultMaxTotalBytes = 512 << 20
	DefaultMaxEntryBytes = 128 << 20
	DefaultMaxRatio      = 250
	DefaultRatioFloor    = 1 << 20
	DefaultMaxEntries    = 10000
	DefaultMaxTime       = 20 * time.Second
	DefaultMemoryBytes   = 4 << 20
)

const unlimited = int64(1<<63 - 1)

func pick(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return unlimited
	}
	return v
}

func (l Limits) withDefaults() Limits {
	ratio := l.MaxRatio
	switch {
	case ratio == 0:
		ratio = DefaultMaxRatio
	case ratio < 0:
		ratio = 1e300
	}
	maxTime := l.MaxTime
	switch {
	case maxTime == 0:
		maxTime = DefaultMaxTime
	case maxTime < 0:
		maxTime = time.Duration(unlimited)
	}
	return Limits{
		MaxDepth:      int(min(pick(int64(l.MaxDepth), DefaultMaxDepth), 1<<20)),
		MaxTotalBytes: pick(l.MaxTotalBytes, DefaultMaxTotalBytes),
		MaxEntryBytes: pick(l.MaxEntryBytes, DefaultMaxEntryBytes),
		MaxRatio:      ratio,
		RatioFloor:    pick(l.RatioFloor, DefaultRatioFloor),
		MaxEntries:    int(min(pick(int64(l.MaxEntries), DefaultMaxEntries), 1<<31-1)),
		MaxTime:       maxTime,
		MemoryBytes:   min(pick(l.MemoryBytes, DefaultMemoryBytes), 1<<30),
	}
}

// Config configures an Inspector. The zero Config is the safe default
// policy: the default banned lists, no nested archives, the default limits
// and DefaultActions.
type Config struct {
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards
	Limits  Limits

	// BannedExtensions (without the dot, any case) and BannedTypes (see
	// DetectType) replace the defaults when non-nil; an empty non-nil slice
	// bans nothing by that criterion.
	BannedExtensions []string
	BannedTypes      []string
	// AllowedExtensions and AllowedTypes are exceptions to the bans: a file
	// whose extension is allowed is not banned by its extension, one whose
	// type is allowed not by its type.
	AllowedExtensions []string
	AllowedTypes      []string
	// ScoredExtensions replaces DefaultScoredExtensions when non-nil.
	ScoredExtensions []string

	// AllowNested lets an archive contain archives (down to MaxDepth)
	// without a KindNested finding. Documents (docx, odt, epub) and
	// compressed files (gz, bz2, xz, zst) never count as archives.
	AllowNested bool

	// Actions and Scores override DefaultActions() and DefaultScores() per kind;
	// a kind present with filter.Accept demands nothing.
	Actions map[Kind]filter.Action
	Scores  map[Kind]float64
}

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("archive: limit exceeded")

// ErrUninspectable is matched by errors for content that could not be
// opened (corrupt, truncated, unsupported method).
var ErrUninspectable = errors.New("archive: uninspectable")

// LimitError reports which limit stopped an inspection, and where.
type LimitError struct {
	Limit string // "depth", "total-bytes", "entry-bytes", "ratio", "entries", "time"
	Max   string // the limit in force, as text
	Path  string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("archive: %s limit of %s exceeded at %s", e.Limit, e.Max, e.Path)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }
