package rules

import "math/bits"

// Meta rules are most of a SpamAssassin set (over a thousand) and almost
// all of them depend only on rules that did not hit. Evaluate therefore
// does not walk every expression tree for every message:
//
//   - Each expression is compiled to a flat postfix program (metaProg)
//     that a loop runs over a small float stack, with jumps for the
//     short-circuit of && and ||. It computes exactly what metaNode.eval
//     computes, operation for operation.
//   - At compile time every meta rule is evaluated once with no rule
//     hitting (its baseline). A message starts from the baselines; only
//     the meta rules that use a rule whose value differs from its
//     baseline are evaluated again, in dependency order, and a meta whose
//     new value differs marks the metas that use it in turn. Whatever is
//     not marked keeps its baseline, which is what evaluating it would
//     give, since all its inputs have their baseline values.
//
// Set.prefilter false (Config.NoPrefilter) evaluates every meta rule, so
// that TestShortcutsKeepHits checks this shortcut as well.

type metaOpcode uint8

const (
	mopName metaOpcode = iota // push v[arg]
	mopNum                    // push nums[arg]
	mopNot
	mopNeg
	mopAdd
	mopSub
	mopMul
	mopDiv
	mopEq
	mopNe
	mopLt
	mopLe
	mopGt
	mopGe
	mopAnd  // top == 0: top = 0, jump to arg; else pop
	mopOr   // top != 0: top = 1, jump to arg; else pop
	mopBool // top = top != 0
)

type metaOp struct {
	code metaOpcode
	arg  int32
}

// metaProg is a compiled meta expression.
type metaProg struct {
	ops   []metaOp
	nums  []float64
	depth int // the most values on the stack
}

var metaBinary = map[string]metaOpcode{
	"+": mopAdd, "-": mopSub, "*": mopMul, "/": mopDiv,
	"==": mopEq, "!=": mopNe, "<": mopLt, "<=": mopLe, ">": mopGt, ">=": mopGe,
}

// compileMeta turns a tree whose names are resolved into a program.
func compileMeta(n *metaNode) *metaProg {
	p := &metaProg{}
	p.emit(n, 0)
	return p
}

// emit appends n's code, which runs with sp values already on the stack.
func (p *metaProg) emit(n *metaNode, sp int) {
	p.depth = max(p.depth, sp+1)
	switch n.op {
	case "name":
		p.ops = append(p.ops, metaOp{mopName, int32(n.id)})
	case "num":
		p.ops = append(p.ops, metaOp{mopNum, int32(len(p.nums))})
		p.nums = append(p.nums, n.num)
	case "!", "neg":
		p.emit(n.a, sp)
		code := mopNot
		if n.op == "neg" {
			code = mopNeg
		}
		p.ops = append(p.ops, metaOp{code: code})
	case "&&", "||":
		p.emit(n.a, sp)
		code := mopAnd
		if n.op == "||" {
			code = mopOr
		}
		j := len(p.ops)
		p.ops = append(p.ops, metaOp{code: code})
		p.emit(n.b, sp)
		p.ops = append(p.ops, metaOp{code: mopBool})
		p.ops[j].arg = int32(len(p.ops))
	default:
		p.emit(n.a, sp)
		p.emit(n.b, sp+1)
		code, ok := metaBinary[n.op]
		if !ok {
			// metaNode.eval gives 0 for an operator it does not know;
			// the parser makes none.
			p.ops = append(p.ops, metaOp{code: mopMul}, metaOp{mopNum, int32(len(p.nums))}, metaOp{code: mopMul})
			p.nums = append(p.nums, 0)
			return
		}
		p.ops = append(p.ops, metaOp{code: code})
	}
}

// eval runs the program over the rule values v with stack, which holds at
// least p.depth values.
func (p *metaProg) eval(v, stack []float64) float64 {
	st := stack[:p.depth]
	sp := -1
	ops := p.ops
	for pc := 0; pc < len(ops); pc++ {
		op := ops[pc]
		switch op.code {
		case mopName:
			sp++
			st[sp] = v[op.arg]
		case mopNum:
			sp++
			st[sp] = p.nums[op.arg]
		case mopNot:
			st[sp] = b2f(st[sp] == 0)
		case mopNeg:
			st[sp] = -st[sp]
		case mopAnd:
			if st[sp] == 0 {
				pc = int(op.arg) - 1
				continue
			}
			sp--
		case mopOr:
			if st[sp] != 0 {
				st[sp] = 1
				pc = int(op.arg) - 1
				continue
			}
			sp--
		case mopBool:
			st[sp] = b2f(st[sp] != 0)
		default:
			x, y := st[sp-1], st[sp]
			sp--
			st[sp] = metaArith(op.code, x, y)
		}
	}
	return st[0]
}

func metaArith(code metaOpcode, x, y float64) float64 {
	switch code {
	case mopAdd:
		return x + y
	case mopSub:
		return x - y
	case mopMul:
		return x * y
	case mopDiv:
		if y == 0 {
			return 0
		}
		return x / y
	case mopEq:
		return b2f(x == y)
	case mopNe:
		return b2f(x != y)
	case mopLt:
		return b2f(x < y)
	case mopLe:
		return b2f(x <= y)
	case mopGt:
		return b2f(x > y)
	case mopGe:
		return b2f(x >= y)
	}
	return 0
}

// metaPlan is what the shortcut needs, built once per Set.
type metaPlan struct {
	progs  []*metaProg // by position in Set.metas
	base   []float64   // rule id → its value when nothing hits
	users  [][]int32   // rule id → the positions in Set.metas of the metas using it
	inputs []int32     // the ids of the rules, other than metas, that metas use
	depth  int         // the deepest program's stack
}

// planMetas compiles the meta rules of s (ordered by orderMetas) and
// computes their baselines.
func (s *Set) planMetas() {
	mp := &s.metaPlan
	mp.progs = make([]*metaProg, len(s.metas))
	mp.base = make([]float64, len(s.rules))
	mp.users = make([][]int32, len(s.rules))
	for i, c := range s.metas {
		p := compileMeta(c.meta)
		mp.progs[i] = p
		mp.depth = max(mp.depth, p.depth)
		if c.unused {
			continue // never marked, it keeps its baseline
		}
		c.meta.names(func(n *metaNode) {
			u := mp.users[n.id]
			if len(u) == 0 || u[len(u)-1] != int32(i) {
				mp.users[n.id] = append(u, int32(i))
			}
		})
	}
	for id, u := range mp.users {
		if len(u) > 0 && s.rules[id].meta == nil {
			mp.inputs = append(mp.inputs, int32(id))
		}
	}
	stack := make([]float64, mp.depth)
	for i, c := range s.metas {
		mp.base[c.id] = b2f(mp.progs[i].eval(mp.base, stack) != 0)
	}
}

// evalMetas sets the values of the meta rules in sc.values, where every
// other rule has its value and every meta rule its baseline.
func (s *Set) evalMetas(sc *scratch) {
	mp := &s.metaPlan
	if len(s.metas) == 0 {
		return
	}
	if cap(sc.stack) < mp.depth {
		sc.stack = make([]float64, mp.depth)
	}
	n := (len(s.metas) + 63) / 64
	if cap(sc.dirty) < n {
		sc.dirty = make([]uint64, n)
	}
	dirty := sc.dirty[:n]
	clear(dirty)
	vals := sc.values
	mark := func(id int) {
		for _, u := range mp.users[id] {
			dirty[u>>6] |= 1 << (u & 63)
		}
	}
	if !s.prefilter {
		for i := range s.metas {
			dirty[i>>6] |= 1 << (i & 63)
		}
	} else {
		// At this point only the other rules can differ from their
		// baselines, and only those some meta uses matter.
		for _, id := range mp.inputs {
			if vals[id] != 0 {
				mark(int(id))
			}
		}
	}
	for w := range dirty {
		for dirty[w] != 0 {
			b := bits.TrailingZeros64(dirty[w])
			dirty[w] &^= 1 << b
			i := w<<6 | b
			c := s.metas[i]
			x := b2f(mp.progs[i].eval(vals, sc.stack) != 0) // a hit is 1, as for other rules
			c.stats.Evaluations.Add(1)
			if x != vals[c.id] {
				vals[c.id] = x
				mark(c.id)
			}
		}
	}
}
