package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mail/portcullis/filter"
)

// The rule file format (YAML):
//
//	thresholds: {add-header: 5, quarantine: 10, reject: 15}
//	scores: {SOME_RULE: 2.5}          # override scores of rules from any file
//	rules:
//	  - name: SUBJECT_WIN
//	    kind: header                    # header body rawbody full uri attachment envelope meta
//	    field: Subject                  # see Kind
//	    regex: '(?i)\byou (have )?won\b' # or literal: "you won"
//	    nocase: false
//	    negate: false                   # hit when no value matches
//	    test: exists                    # or absent, instead of regex
//	    cidr: [192.0.2.0/24]            # envelope ip
//	    domains: [example.com]          # uri host/domain, envelope from/rcpt
//	    expr: 'A && (B || !C)'          # meta
//	    if-unset: ''                    # header: value tested when the header is missing
//	    score: 2.5
//	    description: Subject claims a prize
//	corpus:                             # regression samples, paths relative to the file
//	  - file: corpus/spam1.eml
//	    expect: reject
//	    envelope: {from: a@example.com, rcpt: [b@example.org], helo: mx.example.com, ip: 192.0.2.1}

type ruleDoc struct {
	Name        string   `yaml:"name"`
	Kind        string   `yaml:"kind"`
	Field       string   `yaml:"field"`
	Regex       string   `yaml:"regex"`
	Literal     string   `yaml:"literal"`
	NoCase      bool     `yaml:"nocase"`
	Negate      bool     `yaml:"negate"`
	Test        string   `yaml:"test"`
	CIDR        []string `yaml:"cidr"`
	Domains     []string `yaml:"domains"`
	Expr        string   `yaml:"expr"`
	IfUnset     *string  `yaml:"if-unset"`
	Score       float64  `yaml:"score"`
	Description string   `yaml:"description"`
}

type sampleDoc struct {
	File     string `yaml:"file"`
	Expect   string `yaml:"expect"`
	Envelope struct {
		From string   `yaml:"from"`
		Rcpt []string `yaml:"rcpt"`
		Helo string   `yaml:"helo"`
		IP   string   `yaml:"ip"`
	} `yaml:"envelope"`
}

// readLimited reads at most max bytes; beyond that it fails naming the line
// at which the limit was passed.
func readLimited(name string, r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, &LoadError{File: name, Err: err}
	}
	if int64(len(data)) > max {
		line := bytes.Count(data[:max], []byte("\n")) + 1
		return nil, &LoadError{File: name, Line: line, Err: fmt.Errorf("%w: file larger than %d bytes", ErrLimit, max)}
	}
	return data, nil
}

// parseYAML reads one rule file into sp. readRel reads a file named
// relative to the rule file (corpus samples).
func parseYAML(name string, data []byte, sp *spec, readRel func(string) ([]byte, error)) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &LoadError{File: name, Line: yamlErrLine(err), Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if len(doc.Content) == 0 {
		// Most likely a file caught half written, or truncated by
		// mistake: loading it would silently drop every rule.
		return &LoadError{File: name, Line: 1, Err: fmt.Errorf("%w: empty rule file", ErrSyntax)}
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return &LoadError{File: name, Line: top.Line, Err: fmt.Errorf("%w: a rule file is a mapping with keys rules, scores, thresholds and corpus", ErrSyntax)}
	}
	var errs []error
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "rules":
			if v.Kind != yaml.SequenceNode {
				return &LoadError{File: name, Line: v.Line, Err: fmt.Errorf("%w: rules: must be a list", ErrSyntax)}
			}
			for _, rn := range v.Content {
				r, err := decodeRule(name, rn)
				if err != nil {
					errs = append(errs, err)
					if len(errs) >= maxErrors {
						return errors.Join(errs...)
					}
					continue
				}
				sp.rules = append(sp.rules, r)
			}
		case "scores":
			if v.Kind != yaml.MappingNode {
				return &LoadError{File: name, Line: v.Line, Err: fmt.Errorf("%w: scores: must be a mapping", ErrSyntax)}
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				var f float64
				if err := v.Content[j+1].Decode(&f); err != nil {
					return &LoadError{File: name, Line: v.Content[j+1].Line, Err: fmt.Errorf("%w: score: %v", ErrSyntax, err)}
				}
				sp.scores = append(sp.scores, scoreOverride{name: v.Content[j].Value, score: f, file: name, line: v.Content[j].Line})
			}
		case "thresholds":
			if err := checkKeys(name, v, "add-header", "quarantine", "reject"); err != nil {
				return err
			}
			var t Thresholds
			if err := v.Decode(&t); err != nil {
				return &LoadError{File: name, Line: v.Line, Err: fmt.Errorf("%w: thresholds: %v", ErrSyntax, err)}
			}
			sp.thresholds = &t
		case "corpus":
			if v.Kind != yaml.SequenceNode {
				return &LoadError{File: name, Line: v.Line, Err: fmt.Errorf("%w: corpus: must be a list", ErrSyntax)}
			}
			for _, sn := range v.Content {
				s, err := decodeSample(name, sn, readRel)
				if err != nil {
					return err
				}
				sp.corpus = append(sp.corpus, s)
			}
		default:
			return &LoadError{File: name, Line: k.Line, Err: fmt.Errorf("%w: unknown key %q", ErrSyntax, k.Value)}
		}
	}
	return errors.Join(errs...)
}

func yamlErrLine(err error) int {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return 0
	}
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil {
		return line
	}
	return 0
}

func checkKeys(file string, n *yaml.Node, allowed ...string) error {
	if n.Kind != yaml.MappingNode {
		return &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("%w: expected a mapping", ErrSyntax)}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(allowed, n.Content[i].Value) {
			return &LoadError{File: file, Line: n.Content[i].Line, Err: fmt.Errorf("%w: unknown key %q", ErrSyntax, n.Content[i].Value)}
		}
	}
	return nil
}

var ruleKeys = []string{"name", "kind", "field", "regex", "literal", "nocase", "negate", "test",
	"cidr", "domains", "expr", "if-unset", "score", "description"}

func decodeRule(file string, n *yaml.Node) (Rule, error) {
	if err := checkKeys(file, n, ruleKeys...); err != nil {
		return Rule{}, err
	}
	var d ruleDoc
	if err := n.Decode(&d); err != nil {
		return Rule{}, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	r := Rule{
		Name: d.Name, Kind: Kind(d.Kind), Field: d.Field, Regex: d.Regex, Literal: d.Literal,
		NoCase: d.NoCase, Negate: d.Negate, Test: Test(d.Test), CIDR: d.CIDR, Domains: d.Domains,
		Expr: d.Expr, IfUnset: d.IfUnset, Score: d.Score, Description: d.Description,
		File: file, Line: n.Line,
	}
	if r.Name == "" {
		return Rule{}, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("%w: rule without a name", ErrInvalid)}
	}
	return r, nil
}

func decodeSample(file string, n *yaml.Node, readRel func(string) ([]byte, error)) (Sample, error) {
	if err := checkKeys(file, n, "file", "expect", "envelope"); err != nil {
		return Sample{}, err
	}
	var d sampleDoc
	if err := n.Decode(&d); err != nil {
		return Sample{}, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	fail := func(err error) (Sample, error) {
		return Sample{}, &LoadError{File: file, Line: n.Line, Err: err}
	}
	a, err := filter.ParseAction(d.Expect)
	if err != nil {
		return fail(fmt.Errorf("%w: expect: %v", ErrSyntax, err))
	}
	if d.File == "" {
		return fail(fmt.Errorf("%w: corpus sample without file", ErrSyntax))
	}
	raw, err := readRel(d.File)
	if err != nil {
		return fail(err)
	}
	s := Sample{Name: d.File, Raw: raw, Expect: a, File: file, Line: n.Line}
	s.Envelope.MailFrom = d.Envelope.From
	s.Envelope.RcptTo = d.Envelope.Rcpt
	s.Envelope.Helo = d.Envelope.Helo
	if d.Envelope.IP != "" {
		ip, err := netip.ParseAddr(d.Envelope.IP)
		if err != nil {
			return fail(fmt.Errorf("%w: envelope ip: %v", ErrSyntax, err))
		}
		s.Envelope.ClientIP = ip
	}
	return s, nil
}

// ReadCorpus reads a corpus manifest: a YAML file with only a corpus: list
// (the format of a rule file's corpus section), message paths relative to
// the manifest.
func ReadCorpus(file string) ([]Sample, error) {
	lim := Limits{}.withDefaults()
	data, err := readFile(file, lim)
	if err != nil {
		return nil, err
	}
	sp := &spec{}
	dir := filepath.Dir(file)
	if err := parseYAML(file, data, sp, func(rel string) ([]byte, error) {
		return readFile(filepath.Join(dir, filepath.FromSlash(rel)), lim)
	}); err != nil {
		return nil, err
	}
	if len(sp.rules) > 0 || len(sp.scores) > 0 || sp.thresholds != nil {
		return nil, &LoadError{File: file, Err: fmt.Errorf("%w: a corpus manifest holds only a corpus list", ErrSyntax)}
	}
	return sp.corpus, nil
}
