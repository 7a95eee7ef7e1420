package main

import (
	"errors"
	"flag"

	"github.com/portcullis-mail/portcullis/config"
)

// extraFlags are the flags that configure one package each. Adding a
// package is a field here, a line in register and a line in apply.
type extraFlags struct {
	rules    stringList
	dnsbl    stringList
	uribl    stringList
	resolver stringList
	local    stringList
	clamd    stringList
	icap     stringList
	sa       optionalString
}

// optionalString is a string flag that knows whether it was given, so
// that -spamassassin "" (none) differs from no flag (the configuration's).
type optionalString struct {
	value string
	set   bool
}

func (o *optionalString) String() string     { return o.value }
func (o *optionalString) Set(v string) error { o.value, o.set = v, true; return nil }

func (e *extraFlags) register(fs *flag.FlagSet) {
	fs.Var(&e.rules, "rules", "a rule file (.cf files are read as SpamAssassin rules); repeatable")
	fs.Var(&e.dnsbl, "dnsbl", "a DNS blocklist for the client IP: ZONE[=SCORE] or a preset (zen, spamcop, barracuda, dnswl); repeatable")
	fs.Var(&e.uribl, "uribl", "a DNS blocklist for the domains of links: ZONE[=SCORE] or a preset (dbl, surbl, uribl); repeatable")
	fs.Var(&e.resolver, "resolver", "a DNS resolver HOST:PORT; repeatable, in failover order")
	fs.Var(&e.local, "dnsbl-non-public", "a CIDR range of non-public addresses sent to the lists all the same (a test rbldnsd); repeatable")
	fs.Var(&e.clamd, "clamd", "a clamd address HOST:PORT or unix:/path; repeatable")
	fs.Var(&e.icap, "icap", "an ICAP antivirus service icap://HOST[:PORT]/SERVICE; repeatable")
	fs.Var(&e.sa, "spamassassin", "a directory of SpamAssassin rules (default: the configuration's, /usr/share/spamassassin); \"\" for none")
}

// apply writes the flags into the configuration, over the file.
func (e *extraFlags) apply(cfg *config.Config) error {
	cfg.Rules.Files = append(cfg.Rules.Files, e.rules...)
	cfg.DNS.DNSBL = append(cfg.DNS.DNSBL, e.dnsbl...)
	cfg.DNS.URIBL = append(cfg.DNS.URIBL, e.uribl...)
	cfg.DNS.Resolvers = append(cfg.DNS.Resolvers, e.resolver...)
	cfg.DNS.LookupNonPublic = append(cfg.DNS.LookupNonPublic, e.local...)
	cfg.AV.Clamd = append(cfg.AV.Clamd, e.clamd...)
	cfg.AV.ICAP = append(cfg.AV.ICAP, e.icap...)
	if e.sa.set {
		cfg.Rules.SpamAssassin = e.sa.value
	}
	if len(cfg.DNS.DNSBL)+len(cfg.DNS.URIBL) > 0 && len(cfg.DNS.Resolvers) == 0 {
		return errors.New("-dnsbl and -uribl need at least one -resolver")
	}
	return nil
}
