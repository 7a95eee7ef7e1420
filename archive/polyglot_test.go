package archive

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

// Prefixes that make a file look like something else at offset 0.
var prefixes = map[string][]byte{
	"pdf":  []byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"),
	"jpeg": append([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0}, bytes.Repeat([]byte{0x11}, 300)...),
	"gif":  append([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), bytes.Repeat([]byte{0}, 40)...),
	"png":  append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{1}, 200)...),
	"junk": bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 100),
	"nul":  {0},
}

func TestArchiveBehindAPrefix(t *testing.T) {
	z := makeZip(t, zfile{name: "setup.exe", data: tinyPE()})
	for name, pre := range prefixes {
		t.Run("zip after "+name, func(t *testing.T) {
			res, fs := inspect(t, Config{}, att{name: "file." + name, data: append(append([]byte(nil), pre...), z...)})
			requireFinding(t, fs, KindHiddenArchive, "zip at offset")
			requireFinding(t, fs, KindBannedType, "/setup.exe (pe)")
			assert.Equal(t, filter.Reject, res.Action)
		})
	}
	t.Run("7z after png", func(t *testing.T) {
		data := append(append([]byte(nil), prefixes["png"]...), clamFile(t, "clam.7z")...)
		res, fs := inspect(t, Config{}, att{name: "cat.png", data: data})
		requireFinding(t, fs, KindHiddenArchive, "7z at offset")
		requireFinding(t, fs, KindBannedType, "(pe)")
		assert.Equal(t, filter.Reject, res.Action)
	})
	t.Run("zip followed by more data", func(t *testing.T) {
		data := append(append(append([]byte(nil), prefixes["pdf"]...), z...), bytes.Repeat([]byte("x"), 100<<10)...)
		_, fs := inspect(t, Config{}, att{name: "a.pdf", data: data})
		requireFinding(t, fs, KindBannedType, "/setup.exe (pe)")
	})
	t.Run("a signature straddling two scan windows", func(t *testing.T) {
		pad := bytes.Repeat([]byte{0x33}, 64<<10-8-len(z)+3)
		data := append(append([]byte("%PDF-1.4\n"), pad...), z...)
		_, fs := inspect(t, Config{}, att{name: "a.pdf", data: data})
		requireFinding(t, fs, KindBannedType, "/setup.exe (pe)")
	})
	t.Run("harmless zip in a pdf still quarantines", func(t *testing.T) {
		data := append(append([]byte(nil), prefixes["pdf"]...), makeZip(t, zfile{name: "a.txt", data: []byte("hi")})...)
		res, fs := inspect(t, Config{}, att{name: "a.pdf", data: data})
		requireFinding(t, fs, KindHiddenArchive, "zip")
		assert.Equal(t, filter.Quarantine, res.Action)
	})
}

func TestPlainFilesHaveNoHiddenArchive(t *testing.T) {
	for name, pre := range prefixes {
		res, _ := inspect(t, Config{}, att{name: "file." + name, data: pre})
		assert.Empty(t, res.Symbols, name)
	}
	// The scanner still gets the file whole, and its size.
	in := New(Config{})
	m := newMsg(message(att{name: "a.pdf", data: append(append([]byte(nil), prefixes["pdf"]...), makeZip(t, zfile{name: "a.txt", data: []byte("hi")})...)}))
	var paths []string
	require.NoError(t, in.Leaves(context.Background(), m, func(l Leaf, r io.Reader) error {
		paths = append(paths, l.Path+" "+l.Type)
		return nil
	}))
	assert.Equal(t, []string{"a.pdf#zip@" + itoa(len(prefixes["pdf"])) + "/a.txt text", "a.pdf pdf"}, paths)
}

func TestMZAlone(t *testing.T) {
	res, fs := inspect(t, Config{}, att{data: append([]byte("MZ"), bytes.Repeat([]byte{0x90}, 100)...)})
	requireFinding(t, fs, KindBannedType, "(mz)")
	assert.Equal(t, filter.Reject, res.Action)
	// Text that starts with "MZ" is text.
	res, _ = inspect(t, Config{}, att{name: "notes.txt", ctype: "text/plain", data: []byte("MZ is the start of a DOS program.\n")})
	assert.Empty(t, res.Symbols)
}
