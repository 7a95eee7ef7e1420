// Package config is Portcullis's one configuration schema, read from YAML
// (go.yaml.in/yaml/v3), and the builder that turns it into a running
// filter: the pipeline with every filter the file names (archive
// inspector, rules, DNS lists and resolvers, clamd, ICAP and command-line
// engines in one multi-engine scanner with its guard, breaker and cache),
// the queue (the local spool or NATS JetStream), the quarantine, the relay
// that delivers and the router that carries out verdicts. Every example
// binary reads this schema; an integrator can too, or configure the
// packages directly in Go.
//
// Parse and Load read a file over the embedded default (DefaultYAML),
// which needs no network: SMTP on 127.0.0.1:2525 relaying to
// 127.0.0.1:2526, data under ./portcullis-data, the archive inspector and
// the default rules on, DNS lists and AV engines off until configured.
// Unknown keys are errors that name the file and line, so a typo never
// silently disables a check; Check reports settings that parse but cannot
// work (a DNS list without a resolver, an unknown AV mode). A file's
// lists replace the default's; its maps (relay.routes, policy.filters) add
// to the default's entries, so the default "*" route stays unless the file
// names "*" too.
//
// BuildFilters makes the filters and the pipeline (the scan CLI needs no
// more); Build makes the whole System. Both fail without side effects: what
// was opened before an error is closed again. BuildFilters loads the rules
// before it returns and fails on a bad rule file; Build, for a server,
// returns at once and loads them in the background: until the first load
// succeeds the rules filter is not ready (rules.ErrLoading, or the load's
// error), so the System tempfails mail and its readiness probe fails
// rather than the server refusing connections; a failed first load is
// logged and counted and the next reload retries. A System's Close stops the
// queue after its deliveries in flight, then closes the stores, the filters
// and the data_dir lock.
//
// The fleet (fleet.url, package fleet): rules.source nats serves the
// fleet's rule set; av.fleet.cache shares AV results in JetStream KV
// (one scan per attachment across the fleet) and av.fleet.guard shares
// the faulty-update guard's counts (a signature version that floods one
// node with detections is doubted, quarantined instead of rejected, on
// every node). Both are off unless set, and need the engines' signature
// versions. The shared cache is an optimisation, never a reason to fail
// or pass mail: with NATS down the engines scan locally, and the outage
// shows in portcullis_scanner_shared_cache_up and the log.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/filter"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 4 << 20

// Config is the whole schema. Sections of packages that a binary does not
// use are ignored by it.
type Config struct {
	Policy     Policy     `yaml:"policy"`
	Limits     Limits     `yaml:"limits"`
	Archive    Archive    `yaml:"archive"`
	Rules      Rules      `yaml:"rules"`
	DNS        DNS        `yaml:"dns"`
	AV         AV         `yaml:"av"`
	DataDir    string     `yaml:"data_dir"`
	SMTP       SMTP       `yaml:"smtp"`
	Relay      Relay      `yaml:"relay"`
	Queue      Queue      `yaml:"queue"`
	Quarantine Quarantine `yaml:"quarantine"`
	Router     Router     `yaml:"router"`
	Admin      Admin      `yaml:"admin"`
	Fleet      Fleet      `yaml:"fleet,omitempty"`
}

// SMTP configures the gateway's SMTP listener (package smtpd).
type SMTP struct {
	// Listen is the address, "127.0.0.1:2525" by default.
	Listen string `yaml:"listen"`
	// Domain names the gateway in the greeting.
	Domain string `yaml:"domain"`
	// MaxMessageBytes is advertised with SIZE; 0 means limits'
	// max_message_bytes or the library default (64 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxRecipients per transaction; 0 means 100.
	MaxRecipients int `yaml:"max_recipients"`
	// MaxConnections in total and per client IP; 0 means 1,000 and 20.
	MaxConnections int `yaml:"max_connections"`
	MaxPerIP       int `yaml:"max_per_ip"`
	// MaxMessagesPerSession bounds transactions per connection; 0 means 1,000.
	MaxMessagesPerSession int `yaml:"max_messages_per_session"`
	// ReadTimeout and WriteTimeout bound every command; 0 means 5m and 1m.
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// TLSCert and TLSKey are PEM files; with both set STARTTLS is offered.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Relay configures delivery of accepted mail (package relay).
type Relay struct {
	// Routes by recipient domain; "*" is every other domain.
	Routes map[string]Route `yaml:"routes"`
	// LocalName is sent in EHLO; "" means "localhost".
	LocalName string `yaml:"local_name"`
	// TLS is "opportunistic" (the default) or "required".
	TLS string `yaml:"tls"`
	// MaxConnsPerHost bounds connections to one next hop; 0 means 10.
	MaxConnsPerHost int `yaml:"max_conns_per_host"`
	// RatePerHost throttles transactions per second to one next hop; 0: none.
	RatePerHost float64 `yaml:"rate_per_host"`
}

// Route is one route's next hops.
type Route struct {
	Hosts    []string `yaml:"hosts"`
	Fallback []string `yaml:"fallback"`
	LMTP     bool     `yaml:"lmtp"`
}

// Queue configures the queue (package queue, or queue/jetstream).
type Queue struct {
	// Backend is "spool" (the local spool under data_dir, the default) or
	// "jetstream" (NATS JetStream at URL, shared by several gateways).
	Backend string `yaml:"backend"`
	// URL of the NATS server for backend jetstream.
	URL string `yaml:"url"`
	// Name of the shared JetStream queue; "" means "portcullis".
	Name string `yaml:"name"`
	// Replicas of the JetStream streams; 0 means 1.
	Replicas int `yaml:"replicas"`
	// AckWait (backend jetstream) is how long a gateway may hold a claimed
	// message without renewing the claim before another gateway takes it
	// over, e.g. after the first one died; 0 means 30s.
	AckWait Duration `yaml:"ack_wait"`
	// Workers is how many deliveries run at once; 0 means 16.
	Workers int `yaml:"workers"`
	// RetryBase and RetryMax bound the retry backoff; 0 means 1m and 1h.
	RetryBase Duration `yaml:"retry_base"`
	RetryMax  Duration `yaml:"retry_max"`
	// MaxLifetime before pending recipients bounce; 0 means 5 days.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// MaxCrashes is how many attempts of one message may die with the
	// process before it is held (the poison guard); 0 means 3.
	MaxCrashes int `yaml:"max_crashes"`
	// Backpressure: 451 4.3.2 above MaxDepth entries (0 means 100,000) or
	// when the oldest is older than MaxAge (0: off); 452 4.3.1 below
	// MinFreeBytes free on the spool's disk (0 means 256 MiB).
	MaxDepth     int      `yaml:"max_depth"`
	MaxAge       Duration `yaml:"max_age"`
	MinFreeBytes uint64   `yaml:"min_free_bytes"`
	// SweepInterval is how often the local spool directory is checked for
	// files that do not belong there (moved to corrupt/, counted); 0 means
	// one minute, a negative value turns the sweep off.
	SweepInterval Duration `yaml:"sweep_interval"`
	// Bounce is "bounce" (a DSN to the sender, the default) or "hold".
	Bounce string `yaml:"bounce"`
}

// Quarantine configures the quarantine (package quarantine); it lives
// where the queue does: under data_dir, or in JetStream.
type Quarantine struct {
	// Retention before Expire removes a held message; 0 means 30 days.
	Retention Duration `yaml:"retention"`
	// RescanRate bounds re-scanned messages per second; 0 means 50.
	RescanRate float64 `yaml:"rescan_rate"`
}

// Router configures what verdicts do (package router).
type Router struct {
	// HeadersOnAccept adds the verdict headers to accepted mail too.
	HeadersOnAccept bool `yaml:"headers_on_accept"`
	// KeepDiscarded holds discarded mail in the quarantine.
	KeepDiscarded bool `yaml:"keep_discarded"`
}

// Admin configures the admin HTTP listener (package admin).
type Admin struct {
	// Listen is the address; "" disables the listener.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token of mutating endpoints; "" means
	// data_dir/admin.token, generated (mode 0600) on first start.
	TokenFile string `yaml:"token_file"`
	// SecureCookies marks the console's session cookie Secure on plain
	// HTTP too: set it behind a TLS-terminating proxy.
	SecureCookies bool `yaml:"secure_cookies"`
	// Users may log in to the console with a password, and use the JSON
	// API with HTTP Basic authentication; at most MaxUsers.
	Users []User `yaml:"users"`
}

// User is a console user (admin.User).
type User struct {
	// Name is the login name: 1 to 256 bytes, unique.
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash ("$2a$10$...": `htpasswd -nbB NAME
	// PASSWORD`, or admin.HashPassword); never the password itself.
	PasswordHash string `yaml:"password_hash"`
	// Admin users see and act on every held message and the queue.
	Admin bool `yaml:"admin"`
	// Recipients scope a user who is not an admin: the addresses whose
	// held mail they see ("@example.net" for a whole domain); at most
	// MaxUserRecipients.
	Recipients []string `yaml:"recipients"`
}

// Bounds of admin.users.
const (
	MaxUsers          = 10000
	MaxUserRecipients = 10000
)

// AdminUsers returns the configured console users as package admin
// takes them (admin.Config.Users).
func (a Admin) AdminUsers() []admin.User {
	var out []admin.User
	for _, u := range a.Users {
		out = append(out, admin.User{Name: u.Name, PasswordHash: u.PasswordHash, Admin: u.Admin, Recipients: slices.Clone(u.Recipients)})
	}
	return out
}

// Policy maps onto filter.Policy.
type Policy struct {
	AddHeader  float64                 `yaml:"add_header"`
	Quarantine float64                 `yaml:"quarantine"`
	Reject     float64                 `yaml:"reject"`
	Timeout    Duration                `yaml:"timeout"`
	OnError    filter.FailMode         `yaml:"on_error"`
	OnLimit    filter.ActionSetting    `yaml:"on_limit"`
	Filters    map[string]FilterPolicy `yaml:"filters"`
}

// FilterPolicy maps onto filter.FilterPolicy.
type FilterPolicy struct {
	Timeout   Duration        `yaml:"timeout"`
	OnError   filter.FailMode `yaml:"on_error"`
	FailScore float64         `yaml:"fail_score"`
}

// Limits maps onto filter.Limits (0 = the library default).
type Limits struct {
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	MaxHeaderBytes  int64 `yaml:"max_header_bytes"`
	MaxDepth        int   `yaml:"max_depth"`
	MaxParts        int   `yaml:"max_parts"`
	MaxDecodedBytes int64 `yaml:"max_decoded_bytes"`
}

// Archive configures the attachment and archive inspector (package
// archive); unset fields keep the library's defaults.
type Archive struct {
	Enabled     bool `yaml:"enabled"`
	AllowNested bool `yaml:"allow_nested"`
	// The lists are printed only when not empty: an unset list means the
	// library's defaults, and a printed [] read back would ban nothing.
	BannedExtensions  []string `yaml:"banned_extensions,omitempty"`
	BannedTypes       []string `yaml:"banned_types,omitempty"`
	AllowedExtensions []string `yaml:"allowed_extensions,omitempty"`
	AllowedTypes      []string `yaml:"allowed_types,omitempty"`
	MaxDepth          int      `yaml:"max_depth"`
	MaxTotalBytes     int64    `yaml:"max_total_bytes"`
	MaxEntries        int      `yaml:"max_entries"`
}

// Rules configures the rule scorer (package rules).
type Rules struct {
	// Default includes the embedded default rule set.
	Default bool `yaml:"default"`
	// Files are rule files: ".cf" files are SpamAssassin rules, others YAML.
	Files []string `yaml:"files"`
	// Source is "files" (the default: Default and Files) or "nats": the
	// fleet's rule set, watched in the JetStream KV bucket at fleet.url
	// (package fleet); Default and Files are then ignored, and the
	// gateway is not ready until it has loaded the current version.
	Source string `yaml:"source,omitempty"`
	// Bucket is the KV bucket of source nats; "" means "portcullis-rules".
	Bucket string `yaml:"bucket,omitempty"`
	// SpamAssassin is a directory of SpamAssassin rules, every ".cf" file
	// in it read in name order (Debian's spamassassin package:
	// /usr/share/spamassassin). "" loads none.
	SpamAssassin string `yaml:"spamassassin"`
}

// Fleet configures what a node shares with its fleet on NATS JetStream
// (package fleet): the rule set (rules.source nats) and its status.
type Fleet struct {
	// URL of the NATS servers (comma separated); "" means no fleet.
	URL string `yaml:"url,omitempty"`
	// Node is this node's id in the fleet status (letters, digits, - and
	// _); "" means the host name and the SMTP port.
	Node string `yaml:"node,omitempty"`
	// Replicas of the fleet's KV buckets; 0 means 1.
	Replicas int `yaml:"replicas,omitempty"`
	// StatusInterval is how often the node publishes its status; 0 means 5s.
	StatusInterval Duration `yaml:"status_interval,omitempty"`
}

// AV configures the antivirus engines (package scanner and its adapters).
// No engine is used unless named.
type AV struct {
	// Clamd are clamd addresses: "host:port", "unix:/path" or "/path".
	Clamd []string `yaml:"clamd"`
	// ICAP are ICAP service URLs: icap://host[:port]/service.
	ICAP []string `yaml:"icap"`
	// ICAPMaxSize is the largest object the ICAP services scan whole; a
	// clean answer for more is a partial scan. 0: no limit.
	ICAPMaxSize int64 `yaml:"icap_max_size"`
	// ICAPTrustPreview takes a clean answer to the preview alone as clean.
	// By default it is a partial scan: the service judged the first bytes
	// (c-icap by its ScanFileTypes) and never read the rest.
	ICAPTrustPreview bool `yaml:"icap_trust_preview"`
	// ClamdConfig is clamd's clamd.conf, read for StreamMaxLength,
	// MaxFileSize and MaxScanSize when clamd runs on this host; any answer
	// about more bytes than they allow is a partial scan.
	ClamdConfig string `yaml:"clamd_config"`
	// ClamdMaxSize is the largest input clamd scans whole, over what
	// ClamdConfig says; 0 means ClamdConfig's limits, or ClamAV's defaults
	// (100 MiB); negative: no known limit.
	ClamdMaxSize int64 `yaml:"clamd_max_size"`
	// Mode is "any" (one hit is enough, the default) or "quorum".
	Mode string `yaml:"mode"`
	// Quorum is k in k-of-n for mode quorum; 0 means a majority.
	Quorum int `yaml:"quorum"`
	// Timeout bounds one engine's scan; 0 means the library default (20 s).
	Timeout Duration `yaml:"timeout"`
	// OnInfected is demanded by a confirmed detection (reject or quarantine).
	OnInfected filter.Action `yaml:"on_infected"`
	// OnDoubt is demanded by an unconfirmed detection (a suspect engine,
	// below the quorum); unset means quarantine.
	OnDoubt filter.Action `yaml:"on_doubt"`
	// Command are command-line engines (clamscan and the like).
	Command []Command `yaml:"command"`
	// Backups are spare engines, by name ("clamd-2", "icap-1", a command's
	// name), that scan in place of an unavailable one instead of with them.
	Backups []string `yaml:"backups"`
	// Breaker, Guard and Cache tune the multi-engine scanner; zero values
	// are the library defaults.
	Breaker Breaker `yaml:"breaker"`
	Guard   Guard   `yaml:"guard"`
	Cache   Cache   `yaml:"cache"`
	// Fleet shares results and the guard's counts with the fleet at
	// fleet.url (package fleet); off unless asked for.
	Fleet AVFleet `yaml:"fleet,omitempty"`
}

// Command is one command-line engine (package scanner/command).
type Command struct {
	Name string   `yaml:"name"`
	Path string   `yaml:"path"`
	Args []string `yaml:"args"`
	// Clean and Infected exit codes; defaults 0 and 1 (clamscan's).
	Clean    []int `yaml:"clean"`
	Infected []int `yaml:"infected"`
	// Pattern is a regular expression whose first group names the
	// signature; "" means clamscan's "FILE: NAME FOUND".
	Pattern string   `yaml:"pattern"`
	Timeout Duration `yaml:"timeout"`
}

// Breaker is scanner.BreakerConfig.
type Breaker struct {
	Failures int      `yaml:"failures"`
	Cooldown Duration `yaml:"cooldown"`
}

// Guard is scanner.GuardConfig: the faulty-update guard.
type Guard struct {
	Disabled bool    `yaml:"disabled"`
	Window   int     `yaml:"window"`
	MinScans int     `yaml:"min_scans"`
	Multiple float64 `yaml:"multiple"`
	Baseline float64 `yaml:"baseline"`
}

// Cache is scanner.CacheConfig: the result cache (entries -1 disables it).
type Cache struct {
	Entries int      `yaml:"entries"`
	TTL     Duration `yaml:"ttl"`
}

// DNS configures the blocklist checks (package rbl). No list is queried
// unless named: queries need an agreement with the list operator.
type DNS struct {
	// Resolvers in failover order, "host:port".
	Resolvers []string `yaml:"resolvers"`
	// DNSBL are IP lists asked about the client: a preset name ("zen",
	// "spamcop", "barracuda", "dnswl") or ZONE[=SCORE].
	DNSBL []string `yaml:"dnsbl"`
	// URIBL are domain lists asked about the links of the body: a preset
	// ("dbl", "surbl", "uribl") or ZONE[=SCORE].
	URIBL []string `yaml:"uribl"`
	// OnUnknown is the action a lookup that got no usable answer demands;
	// the default (accept) leaves only the visible LIST_FAIL symbol.
	OnUnknown filter.Action `yaml:"on_unknown"`
	// LookupNonPublic are CIDR ranges of non-public addresses (loopback,
	// private, documentation ...) that are sent to the lists all the
	// same: for a list of your own, or a test rbldnsd. By default such an
	// address is never sent and gets the symbol RBL_LOCAL instead.
	LookupNonPublic []string `yaml:"lookup_non_public"`
	// QueryTimeout bounds one query to one resolver before the next one
	// is asked; 0 means 1s.
	QueryTimeout Duration `yaml:"query_timeout"`
	// HealthInterval is how often every resolver is checked against the
	// lists' RFC 5782 test points (a failed one leaves the rotation until
	// it passes); 0 means 1m.
	HealthInterval Duration `yaml:"health_interval"`
	// Zones answers dnsbl lists from zones held in memory on every node
	// (package fleet), DNS being the fallback.
	Zones Zones `yaml:"zones,omitempty"`
}

// Zones serves dnsbl lists from zones in memory: rbldnsd ip4set data
// published to the fleet with "rulecheck publish-zone" and watched by
// every node (package fleet), so a lookup needs no network round trip.
// An address a zone does not cover (IPv6, or the zone not loaded yet
// with until_loaded dns) is asked over DNS as before.
type Zones struct {
	// Source is "" (no zones) or "nats": the zones published in the
	// fleet's JetStream at fleet.url, like rules.source nats.
	Source string `yaml:"source,omitempty"`
	// Bucket of source nats (KV and object store); "" means
	// "portcullis-zones".
	Bucket string `yaml:"bucket,omitempty"`
	// Lists are the DNS zones answered from memory ("bl.example",
	// "zen.spamhaus.org"): each the zone of a dnsbl list, and the name
	// the zone is published under.
	Lists []string `yaml:"lists,omitempty"`
	// UntilLoaded is what a node does while a zone is not loaded: "wait"
	// (the default: not ready, mail tempfailed with 451 and /readyz 503,
	// as with rules.source nats) or "dns" (ready; the lists are asked
	// over DNS meanwhile).
	UntilLoaded string `yaml:"until_loaded,omitempty"`
	// MaxBytes refuses zones larger than this; 0 means 256 MiB.
	MaxBytes int64 `yaml:"max_bytes,omitempty"`
	// MaxEntries refuses zones with more blocks than this (each a /8,
	// /16, /24 or /32); 0 means 10,000,000.
	MaxEntries int `yaml:"max_entries,omitempty"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as "30s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// FilterPolicy converts to the library's type.
func (p Policy) FilterPolicy() filter.Policy {
	fp := filter.Policy{
		AddHeaderScore:  p.AddHeader,
		QuarantineScore: p.Quarantine,
		RejectScore:     p.Reject,
		Timeout:         time.Duration(p.Timeout),
		OnError:         p.OnError,
		OnLimit:         p.OnLimit,
	}
	if len(p.Filters) > 0 {
		fp.Filters = make(map[string]filter.FilterPolicy, len(p.Filters))
		for name, f := range p.Filters {
			fp.Filters[name] = filter.FilterPolicy{Timeout: time.Duration(f.Timeout), OnError: f.OnError, FailScore: f.FailScore}
		}
	}
	return fp
}

// FilterLimits converts to the library's type.
func (l Limits) FilterLimits() filter.Limits {
	return filter.Limits{
		MaxMessageBytes: l.MaxMessageBytes,
		MaxHeaderBytes:  l.MaxHeaderBytes,
		MaxDepth:        l.MaxDepth,
		MaxParts:        l.MaxParts,
		MaxDecodedBytes: l.MaxDecodedBytes,
	}
}

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("config: embedded default is invalid: " + err.Error())
	}
	return c
}

// DefaultYAML returns the text of the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Load reads a configuration file over the embedded defaults: what the
// file does not set keeps its default.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, MaxFileBytes)
	}
	return Parse(path, b)
}

// Parse reads YAML over the embedded defaults. name is used in errors.
func Parse(name string, b []byte) (*Config, error) {
	c := &Config{}
	if name != "default.yaml" {
		c = Default()
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	return c, nil
}
