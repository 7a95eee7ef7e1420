package archive

import (
	"bufio"
	"io"
	"regexp"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// Old mail clients put files in the body as uuencoded blocks ("begin 644
// x.exe" … "end"), and some clients still show them as attachments: they
// are files like any other.
var uuBegin = regexp.MustCompile(`^begin [0-7]{3,4} (.+)$`)

// uuBlocks walks the uuencoded blocks of a text part read from r.
func (w *walker) uuBlocks(p *filter.Part, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		m := uuBegin.FindStringSubmatch(strings.TrimRight(sc.Text(), "\r"))
		if m == nil {
			continue
		}
		name := strings.TrimSpace(m[1])
		n := node{path: partPath(p) + "/" + printable(name), name: name, names: []string{name}, size: -1}
		if err := w.file(n, &uuReader{sc: sc}); err != nil {
			return err
		}
	}
	return nil // an overlong line ends the search; the text is not a file
}

// uuReader decodes lines from sc up to "end" (or a line that is not
// uuencoding).
type uuReader struct {
	sc   *bufio.Scanner
	out  []byte
	done bool
}

func (u *uuReader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.done || !u.sc.Scan() {
			u.done = true
			return 0, io.EOF
		}
		line := strings.TrimRight(u.sc.Text(), "\r")
		if line == "end" {
			u.done = true
			continue
		}
		if line == "" || line[0] < ' ' || line[0] > '`' {
			u.done = true
			continue
		}
		u.out = uuLine(u.out[:0], line)
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

func uuLine(dst []byte, line string) []byte {
	n := int((line[0] - ' ') & 63)
	val := func(i int) byte {
		if i >= len(line) {
			return 0
		}
		return (line[i] - ' ') & 63
	}
	for i := 1; n > 0; i += 4 {
		a, b, c, d := val(i), val(i+1), val(i+2), val(i+3)
		for _, x := range [3]byte{a<<2 | b>>4, b<<4 | c>>2, c<<6 | d} {
			if n == 0 {
				break
			}
			dst = append(dst, x)
			n--
		}
	}
	return dst
}
