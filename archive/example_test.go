package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
)

// mail wraps a file as a base64 attachment of a small message.
func mail(name string, data []byte) *filter.Message {
	raw := "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n" +
		base64.StdEncoding.EncodeToString(data) + "\r\n--B--\r\n"
	return filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
}

// zipOf zips files given as name, content pairs.
func zipOf(files ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < len(files); i += 2 {
		w, _ := zw.Create(files[i])
		w.Write([]byte(files[i+1]))
	}
	zw.Close()
	return b.Bytes()
}

// A zip inside a zip is refused by default, and so is a banned name at
// any depth.
func ExampleInspector_Check() {
	in := archive.New(archive.Config{})
	inner := zipOf("setup.exe", "not really a program")
	res, err := in.Check(context.Background(), mail("invoice.zip", zipOf("readme.txt", "hello", "more.zip", string(inner))))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Action, res.Symbols[0].Name, res.Symbols[0].Detail)

	// With nesting allowed the walk goes on and finds the name.
	in = archive.New(archive.Config{AllowNested: true})
	res, _ = in.Check(context.Background(), mail("invoice.zip", zipOf("more.zip", string(inner))))
	for _, s := range res.Symbols {
		fmt.Println(res.Action, s.Name, s.Detail)
	}
	// Output:
	// reject ARCHIVE_NESTED invoice.zip/more.zip (zip)
	// reject ARCHIVE_BANNED_TYPE invoice.zip/more.zip/setup.exe (.exe)
}

// Leaves hands every unpacked file to a scanner.
func ExampleInspector_Leaves() {
	in := archive.New(archive.Config{})
	m := mail("docs.zip", zipOf("a.txt", "hello", "b/c.txt", "world"))
	err := in.Leaves(context.Background(), m, func(l archive.Leaf, r io.Reader) error {
		b, err := io.ReadAll(r)
		fmt.Printf("%s %s depth=%d %q\n", l.Path, l.Type, l.Depth, b)
		return err
	})
	fmt.Println(err)
	// Output:
	// docs.zip/a.txt text depth=1 "hello"
	// docs.zip/b/c.txt text depth=1 "world"
	// <nil>
}

func ExampleDetectType() {
	fmt.Println(archive.DetectType([]byte("%PDF-1.7\n"), "x.exe"))
	fmt.Println(archive.DetectType([]byte("echo off"), "run.bat"))
	fmt.Println(archive.DetectType([]byte("MZ is not enough"), "x.txt"))
	// Output:
	// pdf
	// script
	// text
}
