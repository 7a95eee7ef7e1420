package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
)

// avBytes filters each tier's messages once with the default pipeline
// and clamd (at addr, through a counting relay) attached, and prints the
// bytes streamed to clamd per message byte and the INSTREAM commands per
// message.
func avBytes(ts []tier, addr string) error {
	if err := waitClamd(addr, time.Minute); err != nil {
		return err
	}
	r, err := newRelay(addr)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx := context.Background()
	cfg := config.Default()
	cfg.AV.Clamd = []string{r.ln.Addr().String()}
	f, err := config.BuildFilters(ctx, cfg, config.Options{})
	if err != nil {
		return err
	}
	defer f.Close()
	lim := cfg.Limits.FilterLimits()
	fmt.Print("\n| tier | message bytes | leaves + rest | bytes streamed to clamd | per message byte | per leaf + rest byte | scans per message |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range ts {
		r.payload.Store(0)
		r.scans.Store(0)
		in, leaves := 0, 0
		for _, raw := range t.msgs {
			v := f.Pipeline.CheckAll(ctx, filter.NewMessageBytes(filter.Envelope{}, raw, lim))
			if v.Action == filter.Tempfail {
				return fmt.Errorf("with clamd, %s: tempfail: %v", t.what, v.Reply)
			}
			in += len(raw)
			leaves += leafBytes(raw)
		}
		p, n := r.payload.Load(), r.scans.Load()
		fmt.Printf("| %s | %d | %d | %d | %.3f | %.3f | %.1f |\n", t.what, in, leaves, p,
			float64(p)/float64(in), float64(p)/float64(leaves), float64(n)/float64(len(t.msgs)))
	}
	return nil
}

// waitClamd returns when clamd at addr answers PING, or an error after
// wait.
func waitClamd(addr string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write([]byte("zPING\x00"))
			var b [16]byte
			n := 0
			if err == nil {
				n, err = io.ReadAtLeast(c, b[:], 4)
			}
			c.Close()
			if err == nil && string(b[:n]) == "PONG\x00" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clamd at %s did not answer PING: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// relay forwards TCP connections to clamd and counts the INSTREAM
// commands and the payload bytes of their chunks (the 4-byte length
// prefixes not counted).
type relay struct {
	ln      net.Listener
	target  string
	payload atomic.Int64
	scans   atomic.Int64
	wg      sync.WaitGroup
}

func newRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(c)
			}()
		}
	}()
	return r, nil
}

func (r *relay) Close() {
	r.ln.Close()
	r.wg.Wait()
}

func (r *relay) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(c, s)
		c.Close()
	}()
	in := bufio.NewReader(c)
	out := bufio.NewWriter(s)
	for {
		// A command: 'z' … NUL or 'n' … newline.
		first, err := in.ReadByte()
		if err != nil {
			return
		}
		delim := byte('\n')
		if first == 'z' {
			delim = 0
		}
		cmd, err := in.ReadBytes(delim)
		if err != nil {
			return
		}
		out.WriteByte(first)
		out.Write(cmd)
		if string(cmd[:len(cmd)-1]) == "INSTREAM" {
			r.scans.Add(1)
			for {
				var hdr [4]byte
				if _, err := io.ReadFull(in, hdr[:]); err != nil {
					return
				}
				out.Write(hdr[:])
				n := binary.BigEndian.Uint32(hdr[:])
				if n == 0 {
					break
				}
				if _, err := io.CopyN(out, in, int64(n)); err != nil {
					return
				}
				r.payload.Add(int64(n))
			}
		}
		if out.Flush() != nil {
			return
		}
	}
}

// leafBytes returns what "each byte streamed once" allows for raw: the
// message with each attachment body replaced by its leaves (decoded; a
// zip's members expanded, its container bytes not counted). Parse errors
// leave a part counted as it is.
func leafBytes(raw []byte) int {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return len(raw)
	}
	return len(raw) + partDelta(textproto.MIMEHeader(m.Header), m.Body, false)
}

// partDelta reads a part's body and returns decoded leaf bytes minus
// encoded bytes for an attachment, recursing into multiparts.
func partDelta(h textproto.MIMEHeader, body io.Reader, inner bool) int {
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		d := 0
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return d
			}
			d += partDelta(p.Header, p, true)
		}
	}
	enc, _ := io.ReadAll(body)
	disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	if !inner || (disp != "attachment" && (mt == "" || strings.HasPrefix(mt, "text/"))) {
		return 0
	}
	var dec []byte
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "base64":
		dec, _ = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(enc, []byte("\r\n"), nil))))
	case "quoted-printable":
		dec, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
	default:
		dec = enc
	}
	n := len(dec)
	if z, err := zip.NewReader(bytes.NewReader(dec), int64(len(dec))); err == nil {
		n = 0
		for _, f := range z.File {
			n += int(f.UncompressedSize64)
		}
	}
	return n - len(enc)
}
