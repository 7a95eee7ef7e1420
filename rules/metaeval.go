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
//   - A helper rule (one whose hits are not symbols, read only by meta
//     rules: crule.lazy) that the prefilter lets through is not tested
//     then but left pending. Evaluating a meta rule tests a pending input
//     when the program reaches it, and what && and || skip is never
//     tested: SpamAssassin's metas are mostly conjunctions of helpers, one
//     of which rarely holds, so a third of the tests of a small message
//     are never run. A helper meta rule is not evaluated at its turn
//     either: it stays dirty, its users are marked since they may change,
//     and an emitted meta rule that reaches it evaluates it. Emitted
//     rules are always tested, so symbols and score are what testing
//     everything gives; only the statistics of helpers count fewer tests.
//
// Set.prefilter false (Config.NoPrefilter) tests every rule and evaluates
// every meta rule, so that TestShortcutsKeepHits checks these shortcuts as
// well.

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
	return p.run(v, stack, nil)
}

// run is eval where, with r not nil, a name whose value is not settled
// (scratch.state) is settled by r over the stack beyond p.depth when the
// program reaches it.
func (p *metaProg) run(v, stack []float64, r *metaRun) float64 {
	st, rest := stack[:p.depth], stack[p.depth:]
	sp := -1
	ops := p.ops
	for pc := 0; pc < len(ops); pc++ {
		op := ops[pc]
		switch op.code {
		case mopName:
			if r != nil && r.sc.state[op.arg] != settled {
				r.settle(op.arg, rest)
			}
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
	pos    []int32     // rule id → its position in Set.metas, or -1
	ids    []int32     // position in Set.metas → rule id (Set.metas[i].id, flat for the sweep's marks)
	// stack is the most stack a meta rule's evaluation takes with the
	// evaluations of dirty meta inputs it starts: its own program's depth
	// plus the most any meta input takes.
	stack int
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
	mp.pos = make([]int32, len(s.rules))
	for id := range mp.pos {
		mp.pos[id] = -1
	}
	need := make([]int, len(s.metas))
	mp.ids = make([]int32, len(s.metas))
	for i, c := range s.metas {
		mp.pos[c.id] = int32(i)
		mp.ids[i] = int32(c.id)
		inner := 0
		c.meta.names(func(n *metaNode) {
			if j := mp.pos[n.id]; j >= 0 {
				inner = max(inner, need[j])
			}
		})
		need[i] = mp.progs[i].depth + inner
		mp.stack = max(mp.stack, need[i])
	}
	stack := make([]float64, mp.stack)
	for i, c := range s.metas {
		mp.base[c.id] = b2f(mp.progs[i].eval(mp.base, stack) != 0)
	}
}

// What a rule's value is, while the meta rules are evaluated (scratch.state).
const (
	settled   uint8 = iota // its value is final
	pending                // a lazy rule the prefilter let through, not yet tested
	dirtyMeta              // a meta rule whose inputs may differ from their baselines, not yet evaluated
)

// evalMetas sets the values of the emitted meta rules in sc.values, where
// every other rule has its value or is pending and every meta rule has
// its baseline. test tests the rule of an id and records its value.
func (s *Set) evalMetas(sc *scratch, test func(id int)) {
	mp := &s.metaPlan
	if len(s.metas) == 0 {
		return
	}
	if len(sc.stack) < mp.stack {
		sc.stack = make([]float64, mp.stack)
	}
	n := (len(s.metas) + 63) / 64
	if cap(sc.dirty) < n {
		sc.dirty = make([]uint64, n)
	}
	dirty := sc.dirty[:n]
	clear(dirty)
	vals, state := sc.values, sc.state
	mark := func(id int) {
		for _, u := range mp.users[id] {
			if dirty[u>>6]&(1<<(u&63)) == 0 {
				dirty[u>>6] |= 1 << (u & 63)
				state[mp.ids[u]] = dirtyMeta
			}
		}
	}
	if !s.prefilter {
		for i, c := range s.metas {
			dirty[i>>6] |= 1 << (i & 63)
			state[c.id] = dirtyMeta
		}
	} else {
		// At this point only the other rules can differ from their
		// baselines, and only those some meta uses matter.
		for _, id := range mp.inputs {
			if vals[id] != 0 || state[id] == pending {
				mark(int(id))
			}
		}
	}
	r := metaRun{s: s, sc: sc, test: test}
	for w := range dirty {
		for dirty[w] != 0 {
			b := bits.TrailingZeros64(dirty[w])
			dirty[w] &^= 1 << b
			i := w<<6 | b
			id := int(mp.ids[i])
			// Metas come in dependency order: nothing has asked for this
			// one yet.
			if s.prefilter && !s.metas[i].emit {
				mark(id) // left dirty: its users may change
				continue
			}
			r.eval(i, sc.stack)
			if vals[id] != mp.base[id] {
				mark(id)
			}
		}
	}
}

// metaRun evaluates meta rules for evalMetas.
type metaRun struct {
	s    *Set
	sc   *scratch
	test func(id int)
}

// eval evaluates the meta rule at position i of Set.metas into its value
// and settles it. It tests a pending input, and evaluates a dirty meta
// input, when the program reaches it. stack holds at least metaPlan.stack
// values.
func (r *metaRun) eval(i int, stack []float64) {
	mp := &r.s.metaPlan
	id := mp.ids[i]
	r.sc.values[id] = b2f(mp.progs[i].run(r.sc.values, stack, r) != 0) // a hit is 1, as for other rules
	r.sc.state[id] = settled
	r.s.metas[i].stats.Evaluations.Add(1)
}

// settle gives the rule id its final value: it tests a pending rule, or
// evaluates a dirty meta rule over stack.
func (r *metaRun) settle(id int32, stack []float64) {
	switch r.sc.state[id] {
	case pending:
		r.sc.state[id] = settled
		r.test(int(id))
	case dirtyMeta:
		r.eval(int(r.s.metaPlan.pos[id]), stack)
	}
}
