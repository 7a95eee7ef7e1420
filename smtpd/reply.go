package smtpd

import (
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
)

// SMTPError converts a reply into go-smtp's error type, which go-smtp
// writes as it is (any other error type becomes a 554 at DATA). The reply
// is sanitised as filter.ErrorReply sanitises a Replier's: a code outside
// 2xx–5xx or the zero Reply becomes the generic 451 4.3.0, an enhanced code
// of the wrong class is replaced by class.0.0, and the text is one
// printable line.
func SMTPError(r filter.Reply) *smtp.SMTPError {
	r = filter.ErrorReply(replier{r})
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: enhanced(r), Message: r.Text}
}

// replier lets SMTPError use filter.ErrorReply's sanitising.
type replier struct{ r filter.Reply }

func (e replier) Error() string       { return e.r.String() }
func (e replier) Reply() filter.Reply { return e.r }

func enhanced(r filter.Reply) smtp.EnhancedCode {
	parts := strings.Split(r.Enhanced, ".")
	if len(parts) == 3 {
		var c smtp.EnhancedCode
		ok := true
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 999 {
				ok = false
				break
			}
			c[i] = n
		}
		if ok && c[0] == r.Code/100 {
			return c
		}
	}
	switch class := r.Code / 100; class {
	case 2, 4, 5:
		return smtp.EnhancedCode{class, 0, 0}
	}
	return smtp.NoEnhancedCode
}
