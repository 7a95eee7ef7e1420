package drills

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"os"
	"strings"
	"testing"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// withAttachment builds a multipart message with one base64 attachment.
func withAttachment(id, name, contentType string, content []byte) string {
	b64 := base64.StdEncoding.EncodeToString(content)
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	lines = append(lines, b64)
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nDate: Tue, 1 Dec 2026 08:00:00 +0000\r\n" +
		"Message-ID: <" + id + "@drill.example.org>\r\nSubject: " + id + "\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BOUND\r\n\r\n" +
		"--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--BOUND\r\nContent-Type: " + contentType + "; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n") + "\r\n--BOUND--\r\n"
}

// exeInZip is a zip holding a (minimal) Windows executable.
func exeInZip(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("invoice.exe")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), bytes.Repeat([]byte{0}, 200)...))
	zw.Close()
	return buf.Bytes()
}

// testdata reads a file of the repository (path relative to its root).
func testdata(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile("../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encryptedZip is a zip whose one entry (a spreadsheet) is marked
// encrypted (ZipCrypto): the inspector cannot look inside.
func encryptedZip(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	payload := bytes.Repeat([]byte{0x5a, 0x13, 0xc7, 0x88}, 64) // ciphertext stand-in
	h := &zip.FileHeader{Name: "payroll.xlsx", Method: zip.Store, Flags: 0x1,
		CRC32: 0x12345678, CompressedSize64: uint64(len(payload)), UncompressedSize64: uint64(len(payload) - 12)}
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(payload)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
