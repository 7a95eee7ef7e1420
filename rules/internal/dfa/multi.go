package dfa

import (
	"fmt"
	"regexp/syntax"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxMulti is the most patterns one Multi holds: its answers are the
// bits of a uint64.
const MaxMulti = 64

// MaxMultiCells is the default cap on one Multi's cells: the union of
// several patterns has more states than any of them.
const MaxMultiCells = 4 * MaxCells

// Multi answers, for several patterns at once, which of them match
// somewhere in a text: one pass of one automaton over the union of their
// programs, where each pattern's DFA would make a pass of its own. Its
// answers are exactly its members' (and so Go's regexp's). Its zero value
// is not usable; get one from NewMulti. It is safe for concurrent use.
type Multi struct {
	members  []*DFA
	maxCells int

	once sync.Once
	m    *machine // nil until built

	full atomic.Bool // stopped growing: the members answer

	mu     sync.Mutex
	starts atomic.Pointer[map[uint64]uint32] // done set → start state's cell value (copied on write)
}

// NewMulti returns the Multi of members, at most MaxMulti of them; bit i
// of its answers stands for members[i]. The union automaton is built at
// the first match, lazily like a DFA's.
func NewMulti(members []*DFA) *Multi {
	if len(members) > MaxMulti {
		panic(fmt.Sprintf("dfa: %d patterns in one Multi", len(members)))
	}
	return &Multi{members: members, maxCells: MaxMultiCells}
}

// Len returns the number of members.
func (g *Multi) Len() int { return len(g.members) }

// SetMaxCells changes the Multi's cap on cells; it must be called before
// the first match.
func (g *Multi) SetMaxCells(n int) { g.maxCells = n }

// Full reports whether the Multi has stopped growing and its members
// answer one by one.
func (g *Multi) Full() bool { return g.full.Load() }

// Match returns done together with the members not in done that match
// s: bit i set when members[i].MatchString(s). Members in done are not
// tracked, so that a caller that knows some answers already (a member
// that matched an earlier line) pays nothing more for them; when every
// member is done the pass stops.
func (g *Multi) Match(s string, done uint64) uint64 { return g.match(s, done, false) }

// MatchLatin1 is Match for s read as Latin-1: the members' MatchLatin1.
func (g *Multi) MatchLatin1(s string, done uint64) uint64 { return g.match(s, done, true) }

func (g *Multi) match(s string, done uint64, latin1 bool) uint64 {
	all := uint64(1)<<len(g.members) - 1
	if len(g.members) == MaxMulti {
		all = ^uint64(0)
	}
	done &= all
	if done == all {
		return done
	}
	if !g.full.Load() {
		if m := g.machine(); m != nil {
			if v, ok := g.start(m, done); ok {
				if set, ok := m.runMulti(v, s, latin1); ok {
					return set
				}
			}
		}
	}
	for i, d := range g.members {
		if done&(1<<i) != 0 {
			continue
		}
		if latin1 && d.MatchLatin1(s) || !latin1 && d.MatchString(s) {
			done |= 1 << i
		}
	}
	return done
}

// start returns the cell value of the start state for the members in
// done already answered; ok is false when the machine is full.
func (g *Multi) start(m *machine, done uint64) (uint32, bool) {
	if done == 0 {
		return m.start, m.startOK
	}
	if p := g.starts.Load(); p != nil {
		if v, ok := (*p)[done]; ok {
			return v, true
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m.mu.Lock()
	v, ok := m.lookup(nil, kStart, done)
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	next := map[uint64]uint32{done: v}
	if p := g.starts.Load(); p != nil {
		for k, x := range *p {
			next[k] = x
		}
	}
	g.starts.Store(&next)
	return v, true
}

// machine returns the union automaton, built at the first call; nil (and
// the Multi full) when a member's pattern has no DFA or the union is too
// large.
func (g *Multi) machine() *machine {
	g.once.Do(func() {
		progs := make([]*syntax.Prog, len(g.members))
		for i, d := range g.members {
			p := d.prog
			if p == nil {
				var err error
				if p, err = compileProg(d.pattern); err != nil {
					g.full.Store(true)
					return
				}
			}
			progs[i] = p
		}
		prog, mp := unionProg(progs)
		if len(prog.Inst) > maxInsts {
			g.full.Store(true)
			return
		}
		g.m = newMachineOf(prog, mp, g.maxCells, &g.full)
		runtime.AddCleanup(g, release, g.m.cells)
	})
	return g.m
}

// multiProg describes the patterns of a union program.
type multiProg struct {
	starts   []uint32 // pattern → its start pc
	patOf    []uint8  // pc → the pattern it belongs to
	all      uint64   // the set of every pattern
	anchored uint64   // the patterns that cannot start after the text's start
}

// unionProg returns one program holding every instruction of progs, each
// program's pcs shifted past the previous ones, and its start an
// alternation of theirs (for the rune classes and the scan for starting
// bytes, which follow the program's start).
func unionProg(progs []*syntax.Prog) (*syntax.Prog, *multiProg) {
	u := &syntax.Prog{}
	mp := &multiProg{}
	for k, p := range progs {
		base := uint32(len(u.Inst))
		mp.starts = append(mp.starts, base+uint32(p.Start))
		mp.all |= 1 << k
		for _, in := range p.Inst {
			switch in.Op {
			case syntax.InstMatch, syntax.InstFail:
			default:
				in.Out += base
			}
			if in.Op == syntax.InstAlt || in.Op == syntax.InstAltMatch {
				in.Arg += base
			}
			u.Inst = append(u.Inst, in)
			mp.patOf = append(mp.patOf, uint8(k))
		}
	}
	// The start: Alt(start0, Alt(start1, ...)).
	u.Start = int(mp.starts[len(mp.starts)-1])
	for k := len(mp.starts) - 2; k >= 0; k-- {
		u.Inst = append(u.Inst, syntax.Inst{Op: syntax.InstAlt, Out: mp.starts[k], Arg: uint32(u.Start)})
		mp.patOf = append(mp.patOf, uint8(k))
		u.Start = len(u.Inst) - 1
	}
	return u, mp
}

// anchoredSet returns the patterns whose threads cannot start after the
// text's start.
func (m *machine) anchoredSet() uint64 {
	var set uint64
	f := ^syntax.EmptyOp(0) &^ syntax.EmptyBeginText
	for k := range m.multi.starts {
		runes, matched := m.closureMulti(nil, m.multi.all&^(1<<k), f)
		if len(runes) == 0 && matched == 0 {
			set |= 1 << k
		}
	}
	return set
}

// closureMulti follows the empty transitions from pcs and the starts of
// the patterns not in done under flags f. It leaves the rune
// instructions reached in m.runes (threads of patterns that match among
// them) and returns the patterns not in done whose InstMatch is reached.
func (m *machine) closureMulti(pcs []uint32, done uint64, f syntax.EmptyOp) (runes []uint32, matched uint64) {
	m.gen++
	if m.gen == 0 {
		clear(m.mark)
		m.gen = 1
	}
	m.runes = m.runes[:0]
	st := m.stack[:0]
	for k, pc := range m.multi.starts {
		if done&(1<<k) == 0 {
			st = append(st, pc)
		}
	}
	st = append(st, pcs...)
	defer func() { m.stack = st[:0] }()
	for len(st) > 0 {
		pc := st[len(st)-1]
		st = st[:len(st)-1]
		if m.mark[pc] == m.gen {
			continue
		}
		m.mark[pc] = m.gen
		in := &m.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			st = append(st, in.Arg, in.Out)
		case syntax.InstCapture, syntax.InstNop:
			st = append(st, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^f == 0 {
				st = append(st, in.Out)
			}
		case syntax.InstMatch:
			matched |= 1 << m.multi.patOf[pc]
		case syntax.InstFail:
		default:
			m.runes = append(m.runes, pc)
		}
	}
	return m.runes, matched
}

// buildMulti makes the transition of the state at row offset off on
// class c and returns its cell value; ok is false when the machine is
// full. The next state holds the threads that stepped on c of the
// patterns not matched yet, and the set of those matched.
func (m *machine) buildMulti(off, c uint32) (v uint32, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tab.Load()
	if v := t.cells[off+c].Load(); v != tUnbuilt {
		return v, true
	}
	if m.full.Load() {
		return 0, false
	}
	s := t.states[off/uint32(m.nclass)]
	k := m.classKind[c]
	runes, matched := m.closureMulti(s.pcs, s.set, flags(s.kind, k))
	set := s.set | matched
	bits := m.classBits[int(c)*m.stride : (int(c)+1)*m.stride]
	var next []uint32
	for _, pc := range runes {
		b := m.bit[pc]
		if set&(1<<m.multi.patOf[pc]) == 0 && bits[b/64]&(1<<(b%64)) != 0 {
			next = append(next, m.prog.Inst[pc].Out)
		}
	}
	slices.Sort(next)
	next = slices.Compact(next)
	if v, ok = m.lookup(next, k, set); ok {
		m.tab.Load().cells[off+c].Store(v)
	}
	return v, ok
}

// endSet returns the patterns matched by a text that led to the state
// whose row is at off: those matched before, and those whose match ends
// at the text's end.
func (m *machine) endSet(off uint32) uint64 {
	s := m.tab.Load().states[off/uint32(m.nclass)]
	if s.end.Load() != 0 {
		return s.endSet.Load()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, matched := m.closureMulti(s.pcs, s.set, flags(s.kind, kEnd))
	s.endSet.Store(s.set | matched)
	s.end.Store(1)
	return s.set | matched
}

// idleState returns the cell value of the state with no threads, the
// set of the state at row offset off and kind k.
func (m *machine) idleState(off uint32, k uint8) (uint32, bool) {
	s := m.tab.Load().states[off/uint32(m.nclass)]
	if v := s.idle[k].Load(); v != 0 {
		return v, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.lookup(nil, k, s.set)
	if ok {
		s.idle[k].Store(v)
	}
	return v, ok
}

// runMulti returns the set of patterns that match s (read as Latin-1 when
// latin1), starting from the state of cell value v; ok is false when
// the machine filled up on the way and cannot tell.
func (m *machine) runMulti(v uint32, s string, latin1 bool) (set uint64, ok bool) {
	mode := 0
	if latin1 {
		mode = 1
	}
	cells := m.tab.Load().cells
	off := v >> 3
	for i := 0; i < len(s); {
		var c uint32
		if b := s[i]; b < utf8.RuneSelf || latin1 {
			c = m.byteClass[b]
			i++
		} else {
			r, w := utf8.DecodeRuneInString(s[i:])
			c = m.classOf(r)
			i += w
		}
		x := off + c
		if x >= uint32(len(cells)) {
			cells = m.tab.Load().cells
		}
		v = cells[x].Load()
		if v&1 != 0 {
			if v == tUnbuilt {
				if v, ok = m.buildMulti(off, c); !ok {
					return 0, false
				}
				cells = m.tab.Load().cells
			}
			switch v & 7 {
			case tDead:
				return m.tab.Load().states[(v>>3)/uint32(m.nclass)].set, true
			case tSkip:
				acc := &m.acc[mode]
				if !acc.on {
					break
				}
				j := skipTo(&acc.esc, s, i)
				if j == i {
					break
				}
				k := uint8(kOther)
				if m.hasEmpty {
					k = runeKind(rune(s[j-1]))
				}
				if v, ok = m.idleState(v>>3, k); !ok {
					return 0, false
				}
				cells = m.tab.Load().cells
				i = j
			}
		}
		off = v >> 3
	}
	return m.endSet(off), true
}

// skipTo returns the index of the first byte of s from i that esc holds,
// or len(s).
func skipTo(esc *[256]bool, s string, i int) int {
	t := s[i:]
	for len(t) >= 4 && !esc[t[0]] && !esc[t[1]] && !esc[t[2]] && !esc[t[3]] {
		t = t[4:] // most bytes of text: four tests per branch back
	}
	j := len(s) - len(t)
	for j < len(s) && !esc[s[j]] {
		j++
	}
	return j
}
