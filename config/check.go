package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/rbl"
)

// ErrInvalid is matched by every error Check returns.
var ErrInvalid = errors.New("config: invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Check reports settings that parse but cannot work. BuildPipeline checks
// the filter sections; Build checks everything.
func (c *Config) Check() error {
	if err := c.checkFilters(); err != nil {
		return err
	}
	if err := c.checkAdmin(); err != nil {
		return err
	}
	return c.checkGateway()
}

// checkAdmin checks the console users: what admin.New would refuse is
// refused here, naming the user, so -check-config finds it.
func (c *Config) checkAdmin() error {
	users := c.Admin.Users
	if len(users) > MaxUsers {
		return invalid("admin: %d users; %d at most", len(users), MaxUsers)
	}
	seen := map[string]bool{}
	for i, u := range users {
		if u.Name == "" || len(u.Name) > 256 {
			return invalid("admin: users[%d]: a name of 1 to 256 bytes is required", i)
		}
		if seen[u.Name] {
			return invalid("admin: user %q twice", u.Name)
		}
		seen[u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return invalid("admin: user %q: password_hash is not a bcrypt hash (htpasswd -nbB makes one): %v", u.Name, err)
		}
		if len(u.Recipients) > MaxUserRecipients {
			return invalid("admin: user %q: %d recipients; %d at most", u.Name, len(u.Recipients), MaxUserRecipients)
		}
		for _, r := range u.Recipients {
			if !strings.Contains(r, "@") || len(r) > 1024 {
				return invalid("admin: user %q: recipient %q: an address or an @domain", u.Name, r)
			}
		}
		if !u.Admin && len(u.Recipients) == 0 {
			return invalid("admin: user %q is neither an admin nor scoped to recipients: they would see nothing", u.Name)
		}
	}
	return nil
}

func (c *Config) checkFilters() error {
	if len(c.DNS.DNSBL)+len(c.DNS.URIBL) > 0 && len(c.DNS.Resolvers) == 0 {
		return invalid("dns: lists need at least one resolver")
	}
	for _, r := range c.DNS.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return invalid("dns: resolver %q: %v", r, err)
		}
	}
	switch c.Rules.Source {
	case "", "files":
	case "nats":
		if c.Fleet.URL == "" {
			return invalid("rules: source nats needs fleet.url")
		}
	default:
		return invalid("rules: source %q: want files or nats", c.Rules.Source)
	}
	if (c.AV.Fleet.Cache || c.AV.Fleet.Guard) && c.Fleet.URL == "" {
		return invalid("av: fleet cache and guard need fleet.url")
	}
	if err := c.checkZones(); err != nil {
		return err
	}
	switch c.AV.Mode {
	case "", "any", "quorum":
	default:
		return invalid("av: mode %q: want any or quorum", c.AV.Mode)
	}
	names := map[string]bool{}
	for _, n := range engineNames(c.AV) {
		names[n] = true
	}
	for _, b := range c.AV.Backups {
		if !names[b] {
			return invalid("av: backup %q names no engine (have %v)", b, engineNames(c.AV))
		}
	}
	for i, cmd := range c.AV.Command {
		if cmd.Path == "" {
			return invalid("av: command %d has no path", i+1)
		}
		if cmd.Pattern != "" {
			if _, err := regexp.Compile(cmd.Pattern); err != nil {
				return invalid("av: command %q: pattern: %v", cmd.Path, err)
			}
		}
	}
	return nil
}

// checkZones checks dns.zones: a source the fleet can serve, and lists
// that are the zones of dnsbl lists.
func (c *Config) checkZones() error {
	z := c.DNS.Zones
	switch z.Source {
	case "":
		if len(z.Lists) > 0 {
			return invalid("dns: zones: lists need a source (nats)")
		}
		return nil
	case "nats":
		if c.Fleet.URL == "" {
			return invalid("dns: zones: source nats needs fleet.url")
		}
	default:
		return invalid("dns: zones: source %q: want nats", z.Source)
	}
	switch z.UntilLoaded {
	case "", "wait", "dns":
	default:
		return invalid("dns: zones: until_loaded %q: want wait or dns", z.UntilLoaded)
	}
	if len(z.Lists) == 0 {
		return invalid("dns: zones: source nats names no lists")
	}
	if z.MaxBytes < 0 || z.MaxEntries < 0 {
		return invalid("dns: zones: max_bytes and max_entries cannot be negative")
	}
	have := map[string]bool{}
	for _, spec := range c.DNS.DNSBL {
		if l, err := rbl.ParseList(rbl.IPList, spec); err == nil {
			have[l.Zone] = true
		}
	}
	for _, name := range z.Lists {
		if err := fleet.CheckZoneName(name); err != nil {
			return invalid("dns: zones: %v", err)
		}
		if !have[name] {
			return invalid("dns: zones: %q is not the zone of a dnsbl list", name)
		}
	}
	return nil
}

func (c *Config) checkGateway() error {
	if c.DataDir == "" {
		return invalid("data_dir is empty")
	}
	if c.SMTP.Listen == "" {
		return invalid("smtp: listen is empty")
	}
	if (c.SMTP.TLSCert == "") != (c.SMTP.TLSKey == "") {
		return invalid("smtp: tls_cert and tls_key go together")
	}
	switch c.Relay.TLS {
	case "", "opportunistic", "required":
	default:
		return invalid("relay: tls %q: want opportunistic or required", c.Relay.TLS)
	}
	if len(c.Relay.Routes) == 0 {
		return invalid("relay: no routes")
	}
	for d, r := range c.Relay.Routes {
		if len(r.Hosts) == 0 {
			return invalid("relay: route %q has no hosts", d)
		}
		for _, h := range append(append([]string(nil), r.Hosts...), r.Fallback...) {
			if _, _, err := net.SplitHostPort(h); err != nil {
				return invalid("relay: route %q: host %q: %v", d, h, err)
			}
		}
	}
	switch c.Queue.Backend {
	case "", "spool":
	case "jetstream":
		if c.Queue.URL == "" {
			return invalid("queue: backend jetstream needs a url")
		}
	default:
		return invalid("queue: backend %q: want spool or jetstream", c.Queue.Backend)
	}
	switch c.Queue.Bounce {
	case "", "bounce", "hold":
	default:
		return invalid("queue: bounce %q: want bounce or hold", c.Queue.Bounce)
	}
	return nil
}

// engineNames are the names Build gives the AV engines, in order: clamd-N,
// icap-N, then each command's name (its program's base name by default).
func engineNames(av AV) []string {
	var out []string
	for i := range av.Clamd {
		out = append(out, fmt.Sprintf("clamd-%d", i+1))
	}
	for i := range av.ICAP {
		out = append(out, fmt.Sprintf("icap-%d", i+1))
	}
	for i, c := range av.Command {
		out = append(out, commandName(i, c))
	}
	return out
}

func commandName(i int, c Command) string {
	if c.Name != "" {
		return c.Name
	}
	return fmt.Sprintf("command-%d", i+1)
}

// Marshal returns the configuration as YAML that Parse reads back: the
// effective configuration, defaults filled in.
func (c *Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }
