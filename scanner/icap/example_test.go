package icap_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/portcullis-mail/portcullis/scanner/icap"
)

// tinyICAP answers OPTIONS, and every RESPMOD with an infection header,
// without looking at what it was sent (it reads up to the last chunk).
func tinyICAP() net.Listener {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch {
					case strings.HasPrefix(line, "OPTIONS"):
						skipHead(br)
						io.WriteString(c, "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"demo-1\"\r\nAllow: 204\r\nEncapsulated: null-body=0\r\n\r\n")
					case strings.HasPrefix(line, "RESPMOD"):
						skipHead(br) // ICAP head
						skipHead(br) // encapsulated HTTP head
						for {        // chunks up to the last one
							l, _ := br.ReadString('\n')
							if strings.HasPrefix(l, "0") {
								br.ReadString('\n')
								break
							}
							var n int
							fmt.Sscanf(l, "%x", &n)
							io.CopyN(io.Discard, br, int64(n)+2)
						}
						io.WriteString(c, "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;\r\nEncapsulated: null-body=0\r\n\r\n")
					}
				}
			}()
		}
	}()
	return ln
}

func skipHead(br *bufio.Reader) {
	for {
		if l, err := br.ReadString('\n'); err != nil || l == "\r\n" {
			return
		}
	}
}

func Example() {
	ln := tinyICAP()
	defer ln.Close()
	c, err := icap.New(icap.Config{URL: "icap://" + ln.Addr().String() + "/virus_scan", Preview: -1})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := c.Scan(context.Background(), strings.NewReader("X5O!..."))
	fmt.Println(res.Signatures, err)
	tag, _ := c.Version(context.Background())
	fmt.Println(tag)
	// Output:
	// [Eicar-Test-Signature] <nil>
	// demo-1
}
