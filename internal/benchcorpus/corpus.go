// Package benchcorpus generates the message tiers that the speed
// benchmarks measure: the same bytes for the in-process benchmark
// (config's BenchmarkDefaultPipeline) and for the side-by-side benchmark
// against rspamd (internal/cmd/bench, driven by scripts/bench.sh).
//
// The tiers are deterministic (a fixed seed), so two runs measure the
// same messages: a 2 KB plain-text message, a 30 KB HTML newsletter with
// 30 links in quoted-printable, a 160 KB message with a zip attachment
// (text and binary members) in base64, and a 3 MB plain-text message.
package benchcorpus

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
)

// Tier is one kind of message.
type Tier struct {
	Name string // short, for benchmark names: "text-2k"
	What string // one line for tables
	Raw  []byte // the message, CRLF line ends
}

// Tiers returns the tiers, smallest first.
func Tiers() []Tier {
	return []Tier{
		{"text-2k", "synthetic text, 2 KB", Text(2 << 10)},
		{"html-30k", "HTML, 30 KB, 30 links, quoted-printable", HTML(30<<10, 30)},
		{"zip-160k", "160 KB with a zip (base64)", Zip(160 << 10)},
		{"text-3m", "synthetic text, 3 MB", Text(3 << 20)},
	}
}

var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there would their we him been has when who will
more no if out so said what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made after also did many before must
through back years where much your way well down should because each just those people how too little
state good very make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go came right used
take three meeting invoice report quarterly shipment customer account please review figures attached`)

func header(b *bytes.Buffer, subject, ctype string) {
	fmt.Fprintf(b, "Return-Path: <sender@example.org>\r\nReceived: from mail.example.org (mail.example.org [192.0.2.10])\r\n"+
		"\tby mx.example.net with ESMTPS id 4Ab3Cd5Ef6; Tue, 1 Dec 2026 08:00:00 +0000\r\n"+
		"From: Sender Name <sender@example.org>\r\nTo: Recipient <rcpt@example.net>\r\n"+
		"Date: Tue, 1 Dec 2026 08:00:00 +0000\r\nMessage-ID: <bench.%d@example.org>\r\n"+
		"Subject: %s\r\nMIME-Version: 1.0\r\nContent-Type: %s\r\n", len(subject), subject, ctype)
}

// prose appends sentences of plain words, wrapped at about 72
// characters, until dst holds n more bytes.
func prose(dst *bytes.Buffer, rng *rand.Rand, n int) {
	end := dst.Len() + n
	col := 0
	for dst.Len() < end {
		w := words[rng.IntN(len(words))]
		if col+len(w) > 72 {
			dst.WriteString("\r\n")
			col = 0
		} else if col > 0 {
			dst.WriteByte(' ')
			col++
		}
		dst.WriteString(w)
		col += len(w)
		if rng.IntN(12) == 0 {
			dst.WriteByte('.')
			col++
		}
	}
	dst.WriteString("\r\n")
}

// Text returns a plain-text message of about size bytes.
func Text(size int) []byte {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	var b bytes.Buffer
	header(&b, "quarterly report and meeting notes", "text/plain; charset=utf-8")
	b.WriteString("\r\n")
	prose(&b, rng, size-b.Len())
	return b.Bytes()
}

// HTML returns a multipart/alternative newsletter of about size bytes:
// a short text part and an HTML part in quoted-printable with links
// links to several hosts.
func HTML(size, links int) []byte {
	rng := rand.New(rand.NewPCG(2, uint64(size)))
	var b bytes.Buffer
	header(&b, "Our newsletter for December", `multipart/alternative; boundary="alt-b0undary"`)
	b.WriteString("\r\n--alt-b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	prose(&b, rng, 1<<10)
	b.WriteString("--alt-b0undary\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	var h bytes.Buffer
	h.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>Newsletter</title>` +
		`<style>p{font-family:Arial,sans-serif;color:#333333}</style></head><body><table width="600" cellpadding="0">` + "\n")
	per := (size - b.Len() - 600) / links
	for i := range links {
		fmt.Fprintf(&h, `<tr><td class="item"><h2 style="font-size:18px">Story %d</h2><p>`, i)
		var p bytes.Buffer
		prose(&p, rng, max(per-200, 40))
		h.WriteString(strings.ReplaceAll(p.String(), "\r\n", "\n"))
		fmt.Fprintf(&h, `</p><a href="https://news%d.example.com/story/%d?utm_source=newsletter&amp;id=%x">Read more</a></td></tr>`+"\n",
			i%5, i, rng.Uint32())
	}
	h.WriteString("</table><p>You receive this because you subscribed. <a href=\"https://example.com/unsubscribe\">Unsubscribe</a></p></body></html>\n")
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write(h.Bytes())
	w.Close()
	b.Write(bytes.ReplaceAll(bytes.ReplaceAll(q.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
	b.WriteString("\r\n--alt-b0undary--\r\n")
	return b.Bytes()
}

// Zip returns a message of about size bytes with a short text part and a
// zip attachment (two text members and one of random bytes) in base64.
func Zip(size int) []byte {
	rng := rand.New(rand.NewPCG(3, uint64(size)))
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	target := size * 3 / 4 // base64 expands by 4/3
	for i := 0; z.Len() < target-2048; i++ {
		var content bytes.Buffer
		name := fmt.Sprintf("docs/notes-%d.txt", i)
		if i%3 == 2 {
			name = fmt.Sprintf("docs/scan-%d.bin", i)
			buf := make([]byte, 8<<10)
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			content.Write(buf)
		} else {
			prose(&content, rng, 24<<10)
		}
		f, _ := zw.Create(name)
		f.Write(content.Bytes())
		zw.Flush()
	}
	zw.Close()
	var b bytes.Buffer
	header(&b, "documents for the meeting", `multipart/mixed; boundary="mix-b0undary"`)
	b.WriteString("\r\n--mix-b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	prose(&b, rng, 600)
	b.WriteString("--mix-b0undary\r\nContent-Type: application/zip; name=\"documents.zip\"\r\n" +
		"Content-Disposition: attachment; filename=\"documents.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	for i := 0; i < len(enc); i += 76 {
		b.WriteString(enc[i:min(i+76, len(enc))])
		b.WriteString("\r\n")
	}
	b.WriteString("--mix-b0undary--\r\n")
	return b.Bytes()
}

// Large returns the tiers too slow for a benchmark loop, measured by the
// side-by-side benchmark only: a 10 MB plain-text message.
func Large() []Tier {
	return []Tier{{"text-10m", "synthetic text, 10 MB", Text(10 << 20)}}
}
