package smtpd

import (
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
)

func TestSMTPError(t *testing.T) {
	tests := []struct {
		in   filter.Reply
		code int
		enh  smtp.EnhancedCode
		text string
	}{
		{filter.Reply{Code: 451, Enhanced: "4.3.2", Text: "Queue busy"}, 451, smtp.EnhancedCode{4, 3, 2}, "Queue busy"},
		{filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "Refused"}, 550, smtp.EnhancedCode{5, 7, 1}, "Refused"},
		{filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as x"}, 250, smtp.EnhancedCode{2, 0, 0}, "OK: queued as x"},
		{filter.Reply{Code: 552, Text: "Too big"}, 552, smtp.EnhancedCode{5, 0, 0}, "Too big"},
		{filter.Reply{Code: 451, Enhanced: "5.7.1", Text: "mismatch"}, 451, smtp.EnhancedCode{4, 0, 0}, "mismatch"},
		{filter.Reply{}, 451, smtp.EnhancedCode{4, 3, 0}, ""},
		{filter.Reply{Code: 354, Text: "go ahead"}, 451, smtp.EnhancedCode{4, 3, 0}, ""},
		{filter.Reply{Code: 999, Text: "bogus"}, 451, smtp.EnhancedCode{4, 3, 0}, ""},
		{filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "two\r\n250 lines"}, 550, smtp.EnhancedCode{5, 7, 1}, "two  250 lines"},
	}
	for _, tt := range tests {
		e := SMTPError(tt.in)
		if e.Code != tt.code || e.EnhancedCode != tt.enh || (tt.text != "" && e.Message != tt.text) {
			t.Errorf("SMTPError(%v) = %d %v %q, want %d %v %q", tt.in, e.Code, e.EnhancedCode, e.Message, tt.code, tt.enh, tt.text)
		}
	}
}

// FuzzSMTPError: whatever the reply, the result is a 2xx, 4xx or 5xx with
// an enhanced code of the same class and one line of text, and an input
// that was not a success never comes out as one.
func FuzzSMTPError(f *testing.F) {
	f.Add(451, "4.3.2", "Queue busy")
	f.Add(250, "2.0.0", "OK")
	f.Add(0, "", "")
	f.Add(550, "5.7.1", "a\nb")
	f.Add(421, "4.999.1000", "x")
	f.Fuzz(func(t *testing.T, code int, enh, text string) {
		in := filter.Reply{Code: code, Enhanced: enh, Text: text}
		e := SMTPError(in)
		class := e.Code / 100
		if class != 2 && class != 4 && class != 5 {
			t.Fatalf("%v: code %d", in, e.Code)
		}
		if e.EnhancedCode[0] != class {
			t.Fatalf("%v: enhanced %v for %d", in, e.EnhancedCode, e.Code)
		}
		if strings.ContainsAny(e.Message, "\r\n") {
			t.Fatalf("%v: text %q", in, e.Message)
		}
		if class == 2 && code/100 != 2 {
			t.Fatalf("%v became a success", in)
		}
	})
}

func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	l := LimitListener(raw, ListenerLimits{MaxConns: 10, MaxPerIP: 1})
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := dial()
	defer first.Close()
	s1 := <-accepted

	second := dial() // over the per-IP limit: answered and closed
	buf := make([]byte, 100)
	n, _ := second.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0") {
		t.Fatalf("excess connection got %q, want 421 4.7.0", buf[:n])
	}
	second.Close()

	s1.Close() // frees the slot
	third := dial()
	defer third.Close()
	s3 := <-accepted
	s3.Close()
	s3.Close() // a second Close must not free a second slot
	fourth := dial()
	defer fourth.Close()
	(<-accepted).Close()
	fifth, sixth := dial(), dial()
	defer fifth.Close()
	defer sixth.Close()
	s5 := <-accepted
	defer s5.Close()
	n, _ = sixth.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421") {
		t.Fatalf("after a double Close the limit let through %q", buf[:n])
	}
}
