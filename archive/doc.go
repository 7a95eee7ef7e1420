// Package archive inspects the attachments of a message and, recursively,
// the files inside their archives and compressed files, and reports what
// it finds as symbols with a demanded action. It is the filter behind the
// policy "executables are not allowed, standalone or archived; a zip in a
// zip is refused".
//
// # What it looks at
//
// Every leaf part of the message, attachment or not, under every candidate
// name the MIME parser decoded (RFC 2047, RFC 2231, duplicates) and every
// reading of its transfer encoding. Types are told by content first
// (DetectType), whatever the part declares: a real PE header, and "MZ"
// without one (type mz: a DOS program or a truncated PE, banned too); ELF;
// Mach-O; OLE; LNK; Java; CHM; TNEF; a mail message; zip-based documents
// (Office Open XML, OpenDocument, EPUB) are documents, not archives. Names
// are normalised as Windows acts on them: bidi controls (U+202E and the
// rest) removed and flagged, trailing dots and spaces trimmed, case
// folded; the last extension decides. Every reading of a name is judged:
// cut at a NUL, an NTFS file and its alternate stream ("a.txt:evil.bat"),
// without a CLSID extension (itself banned). Link entries are judged by
// their names and their targets'. A tar entry whose ustar, GNU and PAX
// names disagree and a zip entry whose local sizes differ from the central
// directory are findings. DefaultBannedExtensions is compared with rspamd's
// and amavis' lists in docs/BANNED.md.
//
// Archives are opened by content, never by name: zip (through this
// package's own structure parser, which also reports overlapping entries,
// local names that differ from central ones, concatenated zips and
// encryption flags before any decoding), tar, gzip, bzip2, xz, zstd (the
// decoders of klauspost/compress and mholt/archives), lz4
// (pierrec/lz4), 7z and rar (mholt/archives). Formats it recognises but
// cannot open (arj, cab, ace, lzh, cpio, lzip, chm, UDF and raw disk
// images, ...), corrupt or truncated
// ones, and unsupported zip methods are "uninspectable"; encrypted
// archives and entries are "encrypted".
//
// Files hide in other files, and each hiding place is opened with a small
// bounded reader of this package's own (each file says why it is not a
// library): archives behind a prefix (a zip after a PDF or an image, a 7z
// after a PNG, an SFX stub: polyglot.go), OLE compound files and the
// Packager objects and Outlook .msg attachments inside them (cfb.go,
// ole.go), RTF \objdata objects (rtf.go), forwarded mail in any wrapping —
// message/rfc822 in base64, an .eml sent as octet-stream (eml.go),
// Outlook's TNEF (tnef.go), files embedded in PDFs, and PDF actions that
// run on opening (pdf.go: ARCHIVE_PDF_ACTIVE), ISO 9660
// images (iso.go), and text-embedded encodings — uuencode in every
// begin-line form, begin-base64, yEnc, BinHex 4.0 — in a text body or a
// part of their own (uu.go), and files smuggled in HTML or script text as
// base64 — a data: URI, a string for atob() — which a browser builds on
// the reader's machine (smuggle.go: ARCHIVE_SMUGGLED, and the file is
// walked). message/partial cannot be judged alone and quarantines.
//
// # Findings and policy
//
// Each finding has a Kind, a path inside the message and what was found:
// ARCHIVE_BANNED_TYPE "invoice.zip/setup.exe (pe)". Detection is apart from
// policy: Config.Actions maps each kind to the action it demands
// (DefaultActions(): banned types, nested archives, bombs and overlapping zip
// entries reject; encrypted and uninspectable content, disguised names and
// odd zip structure quarantine, which is recoverable; macros and double
// extensions only score). A doubtful case never deletes.
//
// # Failure semantics
//
// Hostile content is a finding, never an error: a file that cannot be
// opened is uninspectable (default quarantine), never a silent pass. Check
// returns an error only when it could not decide: the context ended or the
// message could not be read; the pipeline then applies the filter's
// failure mode. Every limit (Limits: depth, total and per-file unpacked
// bytes, expansion ratio, entries, wall time) is checked while the data
// streams, so memory stays bounded whatever an archive claims; exceeding one
// is an ARCHIVE_BOMB finding (default reject) that ends the inspection.
// Check also stops at the first finding that demands reject.
//
// Third-party decoders are fenced: a panic in one is recovered into an
// uninspectable finding (logged with its stack, counted in
// portcullis_archive_panics_total); a RAR signature rardecode would loop on
// is refused before it gets there; 7z headers must pass their checksums
// before bodgit/sevenzip parses them, because that parser allocates by the
// counts a header declares — a forged header with valid checksums can still
// make it allocate, which is the one memory bound this package cannot
// enforce (see Limits for all the others). xz dictionaries are capped at
// 16 MiB and zstd windows at 16 MiB.
//
// # MIME defects
//
// The parser's defects (filter.Message.Defects) are judged here, where
// every part is typed by content: each becomes a MIME_* symbol that
// scores (MIME_BARE_CR, MIME_HEADER_SYNTAX, MIME_ENCODING, ...), and a
// structure that two clients may read differently (two boundaries, two
// Content-Type, transfer-encoding or disposition fields, a missing boundary,
// a multipart never closed) over anything that is not plain text under any
// reading adds MIME_AMBIGUOUS (KindAmbiguous, default quarantine). Every
// reading the parser offers is walked: a leaf under each of its transfer
// encodings, a multipart with no parts as a leaf. Every leaf is typed by
// content whatever it declares: a text/plain part that holds a PE is a PE.
// The defect symbols need the inspector in the pipeline: a configuration
// without it loses them.
//
// Nothing is ever written under a name from the message: traversal names
// and links are findings. Zip and 7z need random access; those larger than
// Limits.MemoryBytes are spilled to an anonymous temporary file (created in
// os.TempDir and unlinked at once).
//
// # Cost
//
// Every byte of every file is unpacked once and read once by the checks
// that need it. A file that needs random access (an archive, or a file
// searched for hidden archives) is held in one buffer from a pool, which
// it keeps only while it is walked; the entries of a zip so held go to
// their decoders as slices of it, with no buffer between. Check then
// skips one read, for one class of file: one that is neither text nor a
// container, held for the polyglot scans, is not read again as a leaf,
// since that read would only drain it and the hold already read it to
// its end through the limits (a bomb stops the hold, a corrupt stream
// makes it uninspectable: TestHeldOnceHidesNothing). Compound files are
// read again, for their macros, and Leaves hands every file on whole.
// Texts are searched for encoded files a window of whole lines at a
// time: lines before the first that could start or hold one (a begin
// line, "=ybegin ", a BinHex tag, a base64 run) are passed over unread
// one by one, which finds what the line-by-line search finds
// (TestSkipPlainHidesNothing, FuzzSkipPlain).
//
// # Leaves for scanners
//
// Leaves visits every leaf file — attachments, files inside archives at any
// depth, documents whole, containers that could not be opened as they are
// — with its path, so antivirus engines scan unpacked content. Leaf.Size is
// the declared size when known: a scanner compares it with its engine's own
// size limit and reports a larger member as partially scanned. When a
// limit stops the walk, Leaves returns a *LimitError.
package archive
