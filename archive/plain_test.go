package archive

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// plainFill is prose of about n bytes in lines of 70 or so.
func plainFill(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of the minutes, nothing encoded in it, as agreed at the meeting.\n", i)
	}
	return b.String()
}

// textFindings walks text as a text body, skipping plain lines (or not).
func textFindings(t testing.TB, text []byte, every bool) []Finding {
	in := New(Config{})
	in.everyLine = every
	w := in.newWalker(t.Context(), nil)
	w.textBlocks(node{path: "t", size: -1}, bytes.NewReader(text)) //nolint:errcheck // findings compared
	return w.findings
}

// TestSkipPlainHidesNothing puts each kind of encoded file at offsets
// around the window and buffer edges and after other blocks: skipPlain
// must leave the findings of a line-by-line search unchanged, and every
// file found.
func TestSkipPlainHidesNothing(t *testing.T) {
	pe := tinyPE()
	var uu strings.Builder
	uu.WriteString("begin 644 a.exe\n")
	enc := func(v byte) byte {
		if v == 0 {
			return '`'
		}
		return 32 + v
	}
	for i := 0; i < len(pe); i += 45 {
		chunk := pe[i:min(i+45, len(pe))]
		uu.WriteByte(enc(byte(len(chunk))))
		for j := 0; j < len(chunk); j += 3 {
			var q [3]byte
			copy(q[:], chunk[j:])
			uu.Write([]byte{enc(q[0] >> 2), enc((q[0]&3)<<4 | q[1]>>4), enc((q[1]&15)<<2 | q[2]>>6), enc(q[2] & 63)})
		}
		uu.WriteByte('\n')
	}
	uu.WriteString("`\nend\n")
	exeZip := makeZip(t, zfile{name: "invoice.exe", data: pe})
	blocks := map[string]string{
		"uuencode":        uu.String(),
		"uuencode, upper": strings.Replace(strings.Replace(uu.String(), "begin", "BeGiN", 1), "a.exe", "a.dat", 1),
		"begin-base64":    "begin-base64 644 x.exe\n" + base64.StdEncoding.EncodeToString(pe) + "\n====\n",
		"binhex":          "so (This file must be converted with BinHex 4.0)\n" + string(clamFile(t, "clam.exe.binhex")),
		"smuggled":        `<a href="data:application/zip;base64,` + base64.StdEncoding.EncodeToString(exeZip) + `">x</a>` + "\n",
	}
	for name, block := range blocks {
		for _, at := range []int{0, 100, plainWindow - 90, plainWindow - 1, plainWindow + 3, 64<<10 - 50, 64 << 10, 200 << 10} {
			text := plainFill(at) + block + plainFill(3000) + block + "bye\n"
			fast, slow := textFindings(t, []byte(text), false), textFindings(t, []byte(text), true)
			require.True(t, reflect.DeepEqual(fast, slow), "%s at %d: %v, line by line %v", name, at, fast, slow)
			require.True(t, hasFinding(fast, KindBannedType, ""), "%s at %d: %v", name, at, fast)
		}
	}
}

// FuzzSkipPlain holds skipPlain to the line-by-line search over any
// text, set after filler that puts it anywhere in the window.
func FuzzSkipPlain(f *testing.F) {
	f.Add([]byte("begin 644 a.exe\n#35H`\n`\nend\n"), uint16(0))
	f.Add([]byte("x\nBEGIN 644 a\n#35H`\n`\nend\n"), uint16(1000))
	f.Add([]byte("=ybegin line=128 size=2 name=a.exe\nw\x84\n=yend size=2\n"), uint16(8191))
	f.Add([]byte("a (This file must be converted with BinHex 4.0)\n:#'0XB@dZCAKP!%9B43\"$E'&Y!!!!!!)J!!!!!EY969T3!!)!!!!%!!m!rrm!!,J:\n"), uint16(60000))
	f.Add([]byte("src=\""+strings.Repeat("TVqQAAMAAAAEAAAA", 12)+"\"\n"), uint16(8100))
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		if len(data) > 16<<10 {
			return
		}
		text := append([]byte(plainFill(int(at))), data...)
		text = append(text, plainFill(int(at)%9000)...)
		fast, slow := textFindings(t, text, false), textFindings(t, text, true)
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("findings %v, line by line %v", fast, slow)
		}
	})
}
