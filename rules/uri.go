package rules

import (
	"github.com/portcullis-mail/portcullis/internal/links"
)

// uriSet is the links of a message as uri rules see them, found by the
// extractor the URI blocklists use, so both judge the same hosts.
type uriSet struct {
	urls, hosts, domains []string
}

func (v *view) uris() *uriSet {
	if v.links != nil {
		return v.links
	}
	u := &uriSet{}
	for _, l := range links.FromMessage(v.m, links.DefaultMax) {
		u.urls = append(u.urls, l.URL)
		u.hosts = append(u.hosts, l.Host)
		d := l.Domain
		if d == "" {
			d = l.Host // an IP or a bare suffix is its own "domain"
		}
		u.domains = append(u.domains, d)
	}
	v.links = u
	return u
}

func (v *view) uriValues(field string) []string {
	u := v.uris()
	switch field {
	case "host":
		return u.hosts
	case "domain":
		return u.domains
	}
	return u.urls
}
