// Package config is the one configuration schema of the example binaries
// (scan, and the gateways to come), read from YAML with go.yaml.in/yaml/v3.
// Library users configure packages directly in Go; this schema only maps a
// file onto those Go structs. An embedded default needs no network.
//
// Errors name the file and the line. Unknown keys are errors, so a typo
// does not silently disable a check.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

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
	Policy  Policy  `yaml:"policy"`
	Limits  Limits  `yaml:"limits"`
	Archive Archive `yaml:"archive"`
	Rules   Rules   `yaml:"rules"`
	DNS     DNS     `yaml:"dns"`
	AV      AV      `yaml:"av"`
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
	Enabled           bool     `yaml:"enabled"`
	AllowNested       bool     `yaml:"allow_nested"`
	BannedExtensions  []string `yaml:"banned_extensions"`
	BannedTypes       []string `yaml:"banned_types"`
	AllowedExtensions []string `yaml:"allowed_extensions"`
	AllowedTypes      []string `yaml:"allowed_types"`
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
	// Mode is "any" (one hit is enough, the default) or "quorum".
	Mode string `yaml:"mode"`
	// Quorum is k in k-of-n for mode quorum; 0 means a majority.
	Quorum int `yaml:"quorum"`
	// Timeout bounds one engine's scan; 0 means the library default (20 s).
	Timeout Duration `yaml:"timeout"`
	// OnInfected is demanded by a confirmed detection (reject or quarantine).
	OnInfected filter.Action `yaml:"on_infected"`
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
