package rules

import (
	"fmt"
	"strconv"
)

// A meta expression is parsed into a small tree evaluated over the hit
// values of other rules (1 for a hit, 0 otherwise). The grammar is the
// part of Perl that SpamAssassin meta rules use:
//
//	expr    = or
//	or      = and { "||" and }
//	and     = cmp { "&&" cmp }
//	cmp     = sum [ ("=="|"!="|"<"|"<="|">"|">=") sum ]
//	sum     = product { ("+"|"-") product }
//	product = unary { ("*"|"/") unary }
//	unary   = ("!"|"-") unary | "(" expr ")" | NAME | NUMBER

// maxMetaDepth bounds nesting so that a hostile expression cannot exhaust
// the stack.
const maxMetaDepth = 100

type metaNode struct {
	op   string // "name", "num", or an operator
	id   int    // rule id for "name", resolved at compile
	name string
	num  float64
	a, b *metaNode
}

func (n *metaNode) eval(v []float64) float64 {
	switch n.op {
	case "name":
		return v[n.id]
	case "num":
		return n.num
	case "!":
		return b2f(n.a.eval(v) == 0)
	case "neg":
		return -n.a.eval(v)
	case "||":
		return b2f(n.a.eval(v) != 0 || n.b.eval(v) != 0)
	case "&&":
		return b2f(n.a.eval(v) != 0 && n.b.eval(v) != 0)
	}
	x, y := n.a.eval(v), n.b.eval(v)
	switch n.op {
	case "+":
		return x + y
	case "-":
		return x - y
	case "*":
		return x * y
	case "/":
		if y == 0 {
			return 0
		}
		return x / y
	case "==":
		return b2f(x == y)
	case "!=":
		return b2f(x != y)
	case "<":
		return b2f(x < y)
	case "<=":
		return b2f(x <= y)
	case ">":
		return b2f(x > y)
	case ">=":
		return b2f(x >= y)
	}
	return 0
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// names calls fn for every rule name the expression uses.
func (n *metaNode) names(fn func(*metaNode)) {
	if n == nil {
		return
	}
	if n.op == "name" {
		fn(n)
	}
	n.a.names(fn)
	n.b.names(fn)
}

type metaParser struct {
	toks  []string
	pos   int
	depth int
}

func parseMeta(s string) (*metaNode, error) {
	toks, err := metaTokens(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%w: empty meta expression", ErrSyntax)
	}
	p := &metaParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q in meta expression", ErrSyntax, p.toks[p.pos])
	}
	return n, nil
}

func metaTokens(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case isDigit(c) || c == '.':
			j := i + 1
			for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			if i+1 < len(s) {
				two := s[i : i+2]
				switch two {
				case "&&", "||", "==", "!=", "<=", ">=":
					toks = append(toks, two)
					i += 2
					continue
				}
			}
			switch c {
			case '!', '(', ')', '+', '-', '*', '/', '<', '>':
				toks = append(toks, string(c))
				i++
			default:
				return nil, fmt.Errorf("%w: unexpected %q in meta expression", ErrSyntax, string(c))
			}
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *metaParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *metaParser) binary(next func() (*metaNode, error), ops ...string) (*metaNode, error) {
	a, err := next()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		found := false
		for _, op := range ops {
			if t == op {
				found = true
			}
		}
		if !found {
			return a, nil
		}
		p.pos++
		b, err := next()
		if err != nil {
			return nil, err
		}
		a = &metaNode{op: t, a: a, b: b}
	}
}

func (p *metaParser) or() (*metaNode, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxMetaDepth {
		return nil, fmt.Errorf("%w: meta expression nested deeper than %d", ErrLimit, maxMetaDepth)
	}
	return p.binary(p.and, "||")
}

func (p *metaParser) and() (*metaNode, error) { return p.binary(p.cmp, "&&") }

func (p *metaParser) cmp() (*metaNode, error) {
	return p.binary(p.sum, "==", "!=", "<", "<=", ">", ">=")
}

func (p *metaParser) sum() (*metaNode, error) { return p.binary(p.product, "+", "-") }

func (p *metaParser) product() (*metaNode, error) { return p.binary(p.unary, "*", "/") }

func (p *metaParser) unary() (*metaNode, error) {
	t := p.peek()
	p.pos++
	switch {
	case t == "":
		return nil, fmt.Errorf("%w: meta expression ends early", ErrSyntax)
	case t == "!" || t == "-":
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxMetaDepth {
			return nil, fmt.Errorf("%w: meta expression nested deeper than %d", ErrLimit, maxMetaDepth)
		}
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		op := t
		if t == "-" {
			op = "neg"
		}
		return &metaNode{op: op, a: a}, nil
	case t == "(":
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("%w: missing ) in meta expression", ErrSyntax)
		}
		p.pos++
		return n, nil
	case isIdentStart(t[0]):
		return &metaNode{op: "name", name: t}, nil
	case isDigit(t[0]) || t[0] == '.':
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: bad number %q in meta expression", ErrSyntax, t)
		}
		return &metaNode{op: "num", num: f}, nil
	}
	return nil, fmt.Errorf("%w: unexpected %q in meta expression", ErrSyntax, t)
}
