package filter

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

func benchMessages() map[string][]byte {
	small := "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: lunch?\r\n" +
		"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.Repeat("Shall we meet at noon at the usual place? ", 40) + "\r\n"

	var html strings.Builder
	html.WriteString("From: news@example.com\r\nTo: bob@example.org\r\nSubject: newsletter\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	html.WriteString(strings.Repeat("News of the week, read it online. ", 200))
	html.WriteString("\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for html.Len() < 30<<10 {
		html.WriteString("<p class=3D\"x\">Read <a href=3D\"https://example.com/a\">more</a> of the news</p>\r\n")
	}
	html.WriteString("--alt--\r\n")

	att := make([]byte, 220<<10)
	for i := range att {
		att[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(att)
	var large strings.Builder
	large.WriteString("From: a@example.com\r\nTo: b@example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=mix\r\n\r\n--mix\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--mix\r\nContent-Type: application/pdf; name=report.pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; i < len(enc); i += 76 {
		large.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	large.WriteString("--mix--\r\n")
	return map[string][]byte{"small": []byte(small), "medium": []byte(html.String()), "large": []byte(large.String())}
}

// BenchmarkParse is parse + part walking (every part's header and names),
// the work shared by all filters; bodies are not decoded.
func BenchmarkParse(b *testing.B) {
	for _, name := range []string{"small", "medium", "large"} {
		raw := benchMessages()[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				m := NewMessageBytes(Envelope{}, raw, Limits{})
				parts, err := m.Parts()
				if err != nil || len(parts) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseDecode adds decoding every leaf body.
func BenchmarkParseDecode(b *testing.B) {
	for _, name := range []string{"small", "medium", "large"} {
		raw := benchMessages()[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				m := NewMessageBytes(Envelope{}, raw, Limits{})
				parts, _ := m.Parts()
				for _, p := range parts {
					if len(p.Children) == 0 {
						if _, err := p.DecodedSize(); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
	}
}

// BenchmarkGoMessage is go-message's bare parse and walk over the same
// messages, reading every body: the yardstick (we must stay within 2×).
func BenchmarkGoMessage(b *testing.B) {
	for _, name := range []string{"small", "medium", "large"} {
		raw := benchMessages()[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				e, err := message.Read(bytes.NewReader(raw))
				if err != nil {
					b.Fatal(err)
				}
				err = e.Walk(func(path []int, e *message.Entity, err error) error {
					if err != nil {
						return err
					}
					if e.MultipartReader() == nil {
						_, err = io.Copy(io.Discard, e.Body)
					}
					return err
				})
				if err != nil {
					b.Fatal(fmt.Errorf("%s: %w", name, err))
				}
			}
		})
	}
}
