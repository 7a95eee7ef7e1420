package filter

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lenientBase64 is the reference reading base64Reader must give: bytes
// outside the alphabet skipped, the URL-safe alphabet read as the standard
// one, and padding ending the data so far (a trailing partial quantum of
// two or three characters decodes to what it holds, of one to nothing).
func lenientBase64(in []byte) []byte {
	out, work := []byte{}, []byte(nil)
	flush := func() {
		whole := len(work) &^ 3
		dec, _ := base64.StdEncoding.DecodeString(string(work[:whole]))
		out = append(out, dec...)
		if rest := work[whole:]; len(rest) >= 2 {
			dec, _ := base64.RawStdEncoding.DecodeString(string(rest))
			out = append(out, dec...)
		}
		work = work[:0]
	}
	for _, c := range in {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			work = append(work, c)
		case c == '-':
			work = append(work, '+')
		case c == '_':
			work = append(work, '/')
		case c == '=':
			flush()
		}
	}
	flush()
	return out
}

func readBase64(t testing.TB, r io.Reader) []byte {
	got, err := io.ReadAll(newBase64Reader(r))
	require.NoError(t, err)
	return got
}

func TestBase64Reader(t *testing.T) {
	payload := bytes.Repeat([]byte("MZ\x90\x00 the bytes of a file \xff\xfe"), 700)
	wrapped := func(s string) string {
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		return b.String() + s + "\r\n"
	}
	std := wrapped(base64.StdEncoding.EncodeToString(payload))
	for name, in := range map[string]string{
		"wrapped":          std,
		"unwrapped":        base64.StdEncoding.EncodeToString(payload),
		"url-safe":         wrapped(base64.URLEncoding.EncodeToString(payload)),
		"stray characters": strings.ReplaceAll(std, "A", "A!*\x00\xff"),
		"padding inside":   "aGVsbG8=" + std + "==" + std,
		"no padding":       wrapped(base64.RawStdEncoding.EncodeToString(payload[:1000])),
		"lone char":        "QUJD" + "Q",
		"empty":            "",
		"only junk":        "!!! ***\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			want := lenientBase64([]byte(in))
			assert.Equal(t, want, readBase64(t, strings.NewReader(in)))
			assert.Equal(t, want, readBase64(t, iotest.OneByteReader(strings.NewReader(in))))
			assert.Equal(t, want, readBase64(t, iotest.HalfReader(strings.NewReader(in))))
		})
	}
	assert.Equal(t, payload, lenientBase64([]byte(std)), "the reference reads clean base64 as encoding/base64 does")
}

// FuzzBase64 holds base64Reader to the reference reading over any input,
// read whole, a byte at a time and in halves, decoded from the bytes
// themselves (a message in memory), and read into buffers of 1 to 16
// bytes (below 8 the reader decodes into a buffer of its own).
func FuzzBase64(f *testing.F) {
	f.Add([]byte("aGVsbG8gd29ybGQ=\r\n"), uint8(0))
	f.Add([]byte("aGVs!bG8g*d29y\r\nbGQ\r\n"), uint8(1))
	f.Add([]byte("a-_b==cd=e"), uint8(2))
	f.Add([]byte("QUJDRA==QUI=QQ==QUJD\r\nQUJDREVG"), uint8(3))
	f.Add([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\nQ"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		if len(in) > 64<<10 {
			return
		}
		var r io.Reader = bytes.NewReader(in)
		switch mode % 4 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		want := lenientBase64(in)
		if mode%4 == 3 {
			if got, err := io.ReadAll(newBase64Bytes(in)); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("newBase64Bytes(%q) = %q, %v; want %q", in, got, err, want)
			}
		} else if got := readBase64(t, r); !bytes.Equal(got, want) {
			t.Fatalf("base64Reader(%q) = %q, want %q", in, got, want)
		}
		small := make([]byte, int(mode/4)%16+1)
		var got []byte
		d := newBase64Bytes(in)
		for {
			n, err := d.Read(small)
			got = append(got, small[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil || n == 0 {
				t.Fatalf("Read into %d bytes: %d, %v", len(small), n, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %d at a time: %q, want %q", len(small), got, want)
		}
	})
}

func BenchmarkBase64Reader(b *testing.B) {
	payload := bytes.Repeat([]byte("PK\x03\x04 compressed-looking bytes \x8f\x1e"), 5000)
	enc := base64.StdEncoding.EncodeToString(payload)
	var w strings.Builder
	for len(enc) > 76 {
		w.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	w.WriteString(enc + "\r\n")
	in := w.String()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := io.Copy(io.Discard, newBase64Reader(strings.NewReader(in))); err != nil {
			b.Fatal(err)
		}
	}
}
