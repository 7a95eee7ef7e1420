package links_test

import (
	"fmt"

	"github.com/portcullis-mail/portcullis/internal/links"
)

func ExampleExtract() {
	html := `<a href="http://WWW.Exa&#109;ple.co.uk./login?a=1&amp;b=2">bank</a>
<img src="//3232235777/pixel.gif"> Visit www.bücher.example today.`
	for _, l := range links.Extract(html, true, 0) {
		fmt.Printf("%s host=%s domain=%s ip=%v\n", l.URL, l.Host, l.Domain, l.IP)
	}
	// Output:
	// http://www.example.co.uk/login?a=1&b=2 host=www.example.co.uk domain=example.co.uk ip=invalid IP
	// http://192.168.1.1/pixel.gif host=192.168.1.1 domain= ip=192.168.1.1
	// http://www.xn--bcher-kva.example host=www.xn--bcher-kva.example domain=xn--bcher-kva.example ip=invalid IP
}
