package dfa

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Kinds of the rune before a position, for the empty-width flags.
const (
	kStart   = iota // no rune: the start of the text
	kNewline        // '\n'
	kWord           // [0-9A-Za-z_]
	kOther
	kEnd // after the last rune: only as the kind of the next rune
)

// flags returns the empty-width assertions that hold between a rune of
// kind prev and one of kind next, as syntax.EmptyOpContext does.
func flags(prev, next uint8) syntax.EmptyOp {
	var f syntax.EmptyOp
	switch prev {
	case kStart:
		f |= syntax.EmptyBeginText | syntax.EmptyBeginLine
	case kNewline:
		f |= syntax.EmptyBeginLine
	}
	switch next {
	case kEnd:
		f |= syntax.EmptyEndText | syntax.EmptyEndLine
	case kNewline:
		f |= syntax.EmptyEndLine
	}
	if (prev == kWord) != (next == kWord) {
		f |= syntax.EmptyWordBoundary
	} else {
		f |= syntax.EmptyNoWordBoundary
	}
	return f
}

func runeKind(r rune) uint8 {
	switch {
	case r == '\n':
		return kNewline
	case syntax.IsWordChar(r):
		return kWord
	}
	return kOther
}

// state is a set of program counters reached after the previous rune, not
// yet closed, and that rune's kind; fixed once made, but for end.
type state struct {
	pcs  []uint32
	kind uint8
	tag  uint32        // what a transition to the state says: tNormal, tDead or tSkip
	end  atomic.Uint32 // 0 unknown, 1 no match at the end of text, 2 a match

	// Of a Multi's machine only (multi.go): the patterns matched so far,
	// those matched at the end of the text (valid once end is not 0),
	// and, by the kind of the rune before, the cell values of the states
	// with no threads and the same set.
	set    uint64
	endSet atomic.Uint64
	idle   [kEnd]atomic.Uint32
}

// The transitions of all states are one table of cells, a row of nclass
// cells per state, so that a step is one load: a cell holds the offset of
// the next state's row, shifted left by 3, and a tag in the low bits. An
// odd tag asks run to stop and look.
const (
	tNormal  = 0 // a state with threads
	tUnbuilt = 1 // not built yet
	tMatch   = 3 // the closure before the rune held InstMatch
	tDead    = 5 // no threads, and the program cannot start after the text's start
	tSkip    = 7 // no threads, and a match can only start at m.skip or an m.acc byte
)

// table is what readers see: the cells and the states made so far. The
// builder publishes a new table for each new state; an old one stays
// valid (its cells are shared with, or a copy of, the new one's), only
// missing states and transitions, which send a reader to the builder.
type table struct {
	cells  []atomic.Uint32
	states []*state // by row: cells[k*nclass:] is the row of states[k]
}

type machine struct {
	prog *syntax.Prog

	// Rune classes.
	bit       []int32 // pc → index of the rune instruction in the class bit sets, or -1
	stride    int     // uint64 words per class bit set
	bounds    []rune  // interval starts, ascending; bounds[0] == 0
	ivClass   []int32 // interval → class
	byteClass [256]uint32
	classBits []uint64 // class c's rune instructions that match it: [c*stride : (c+1)*stride]
	classKind []uint8
	nclass    int

	anchored   bool   // no thread can start after the text's start
	skip       string // while no thread runs, the next match starts at this literal
	skipLatin1 string // the same literal as Latin-1 bytes, or ""
	hasEmpty   bool   // the program has empty-width assertions: states know the rune before
	acc        [2]accel
	emptyV     [kEnd]atomic.Uint32 // kind → cell value of the state with no threads, or 0

	start   uint32 // the cell value of the start state (its tag: tSkip or not)
	startOK bool   // false when even the start state passed a cap
	tab     atomic.Pointer[table]

	multi *multiProg // the patterns of a Multi's machine, or nil (multi.go)

	mu       sync.Mutex
	index    map[string]uint32 // state key → cell value
	maxCells int
	cells    *atomic.Int64 // this machine's cells, given back when its DFA is collected
	full     *atomic.Bool

	// Scratch of the builder, under mu.
	mark  []uint32
	gen   uint32
	stack []uint32
	runes []uint32
	key   []byte
}

func newMachine(prog *syntax.Prog, maxCells int, full *atomic.Bool) *machine {
	return newMachineOf(prog, nil, maxCells, full)
}

// newMachineOf makes the machine of prog, the union program of the
// patterns of mp when that is not nil.
func newMachineOf(prog *syntax.Prog, mp *multiProg, maxCells int, full *atomic.Bool) *machine {
	m := &machine{
		prog:     prog,
		multi:    mp,
		index:    map[string]uint32{},
		maxCells: maxCells,
		cells:    new(atomic.Int64),
		full:     full,
		mark:     make([]uint32, len(prog.Inst)),
	}
	m.classes()
	if mp != nil {
		mp.anchored = m.anchoredSet()
	}
	_, matched := m.closure(nil, ^syntax.EmptyOp(0)&^syntax.EmptyBeginText)
	m.anchored = len(m.runes) == 0 && !matched
	if p, _ := prog.Prefix(); p != "" && m.multi == nil {
		m.skip = p
		b := make([]byte, 0, len(p))
		for _, r := range p {
			if r >= 256 {
				b = nil
				break
			}
			b = append(b, byte(r))
		}
		m.skipLatin1 = string(b)
	}
	if !m.anchored && m.skip == "" {
		m.accelerate()
	}
	m.tab.Store(&table{})
	m.mu.Lock()
	m.start, m.startOK = m.lookup(nil, kStart, 0)
	m.mu.Unlock()
	if !m.startOK {
		full.Store(true)
	}
	return m
}

// classes cuts the rune space into intervals on which every rune
// instruction answers the same, and groups intervals of equal signature.
func (m *machine) classes() {
	prog := m.prog
	var b []rune
	add := func(lo, hi rune) { b = append(b, lo, hi+1) }
	m.bit = make([]int32, len(prog.Inst))
	nbits := 0
	m.hasEmpty = false
	for pc := range prog.Inst {
		in := &prog.Inst[pc]
		m.bit[pc] = -1
		switch in.Op {
		case syntax.InstRune:
			if len(in.Rune) == 1 {
				r := in.Rune[0]
				add(r, r)
				if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
					for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
						add(f, f)
					}
				}
			}
			for i := 0; i+1 < len(in.Rune); i += 2 {
				add(in.Rune[i], in.Rune[i+1])
			}
		case syntax.InstRune1:
			add(in.Rune[0], in.Rune[0])
		case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		case syntax.InstEmptyWidth:
			m.hasEmpty = true
			continue
		default:
			continue
		}
		m.bit[pc] = int32(nbits)
		nbits++
	}
	add('\n', '\n')
	add('0', '9')
	add('A', 'Z')
	add('_', '_')
	add('a', 'z')
	add(0, 0)
	slices.Sort(b)
	b = slices.Compact(b)
	for len(b) > 0 && b[len(b)-1] > unicode.MaxRune {
		b = b[:len(b)-1]
	}
	m.bounds = b
	m.stride = (nbits + 63) / 64
	sig := make([]uint64, len(b)*m.stride)
	mark := func(iv int, bit int32) { sig[iv*m.stride+int(bit/64)] |= 1 << (bit % 64) }
	markRange := func(lo, hi rune, bit int32) {
		for iv := m.interval(lo); iv < len(b) && b[iv] <= hi; iv++ {
			mark(iv, bit)
		}
	}
	for pc := range prog.Inst {
		in := &prog.Inst[pc]
		bit := m.bit[pc]
		if bit < 0 {
			continue
		}
		switch in.Op {
		case syntax.InstRune:
			if len(in.Rune) == 1 {
				r := in.Rune[0]
				markRange(r, r, bit)
				if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
					for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
						markRange(f, f, bit)
					}
				}
			}
			for i := 0; i+1 < len(in.Rune); i += 2 {
				markRange(in.Rune[i], in.Rune[i+1], bit)
			}
		case syntax.InstRune1:
			markRange(in.Rune[0], in.Rune[0], bit)
		case syntax.InstRuneAny:
			markRange(0, unicode.MaxRune, bit)
		case syntax.InstRuneAnyNotNL:
			markRange(0, '\n'-1, bit)
			markRange('\n'+1, unicode.MaxRune, bit)
		}
	}
	m.ivClass = make([]int32, len(b))
	ids := map[string]int32{}
	key := make([]byte, 0, 8*m.stride+1)
	for iv := range b {
		k := uint8(kOther)
		if m.hasEmpty {
			k = runeKind(b[iv])
		}
		key = key[:0]
		for _, w := range sig[iv*m.stride : (iv+1)*m.stride] {
			key = binary.LittleEndian.AppendUint64(key, w)
		}
		key = append(key, k)
		id, ok := ids[string(key)]
		if !ok {
			id = int32(len(ids))
			ids[string(key)] = id
			m.classBits = append(m.classBits, sig[iv*m.stride:(iv+1)*m.stride]...)
			m.classKind = append(m.classKind, k)
		}
		m.ivClass[iv] = id
	}
	m.nclass = len(ids)
	for r := range 256 {
		m.byteClass[r] = uint32(m.ivClass[m.interval(rune(r))])
	}
}

// interval returns the index of the interval holding r.
func (m *machine) interval(r rune) int {
	lo, hi := 0, len(m.bounds)
	for lo+1 < hi {
		mid := int(uint(lo+hi) >> 1)
		if m.bounds[mid] <= r {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

func (m *machine) classOf(r rune) uint32 {
	if r < 256 {
		return m.byteClass[r]
	}
	return uint32(m.ivClass[m.interval(r)])
}

// closure follows the empty transitions from pcs and the program's start
// under flags f. It leaves the rune instructions reached in m.runes and
// reports whether InstMatch is reached (then m.runes is incomplete).
func (m *machine) closure(pcs []uint32, f syntax.EmptyOp) (runes []uint32, matched bool) {
	m.gen++
	if m.gen == 0 {
		clear(m.mark)
		m.gen = 1
	}
	m.runes = m.runes[:0]
	st := append(m.stack[:0], uint32(m.prog.Start))
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
			return m.runes, true
		case syntax.InstFail:
		default:
			m.runes = append(m.runes, pc)
		}
	}
	return m.runes, false
}

// build makes the transition of the state at row offset off on class c
// and returns its cell value; ok is false when the machine is full.
func (m *machine) build(off, c uint32) (v uint32, ok bool) {
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
	runes, matched := m.closure(s.pcs, flags(s.kind, k))
	if matched {
		t.cells[off+c].Store(tMatch)
		return tMatch, true
	}
	bits := m.classBits[int(c)*m.stride : (int(c)+1)*m.stride]
	var next []uint32
	for _, pc := range runes {
		b := m.bit[pc]
		if bits[b/64]&(1<<(b%64)) != 0 {
			next = append(next, m.prog.Inst[pc].Out)
		}
	}
	slices.Sort(next)
	next = slices.Compact(next)
	if v, ok = m.lookup(next, k, 0); ok {
		// Into the newest table: lookup may have made one.
		m.tab.Load().cells[off+c].Store(v)
	}
	return v, ok
}

// lookup returns the cell value of the state of pcs, kind and (for a
// Multi) set, making it if need be; ok is false when that would pass a
// cap. m.mu is held.
func (m *machine) lookup(pcs []uint32, kind uint8, set uint64) (v uint32, ok bool) {
	key := append(m.key[:0], kind)
	if m.multi != nil {
		key = binary.LittleEndian.AppendUint64(key, set)
	}
	for _, pc := range pcs {
		key = binary.LittleEndian.AppendUint32(key, pc)
	}
	m.key = key
	if v, ok := m.index[string(key)]; ok {
		return v, true
	}
	cost := int64(m.nclass + len(pcs) + 16)
	if m.cells.Load()+cost > int64(m.maxCells) {
		m.full.Store(true)
		return 0, false
	}
	if processCells.Add(cost) > processLimit.Load() {
		processCells.Add(-cost)
		m.full.Store(true)
		return 0, false
	}
	m.cells.Add(cost)
	s := &state{pcs: pcs, kind: kind, tag: tNormal, set: set}
	switch {
	case len(pcs) > 0:
	case m.multi != nil && (set|m.multi.anchored) == m.multi.all:
		s.tag = tDead // every pattern matched, or can no longer start
	case m.anchored:
		s.tag = tDead // the start state too: run never reads its tag as dead
	case m.skip != "" || m.acc[0].on || m.acc[1].on:
		s.tag = tSkip
	}
	old := m.tab.Load()
	off := len(old.cells)
	cells := old.cells
	if cap(cells)-len(cells) < m.nclass {
		// A new array: readers of the old table keep the old one.
		cells = make([]atomic.Uint32, len(old.cells), 2*len(old.cells)+m.nclass)
		for i := range old.cells {
			cells[i].Store(old.cells[i].Load())
		}
	}
	// Past every published table's length: no reader sees these cells yet.
	cells = cells[:off+m.nclass]
	for i := off; i < len(cells); i++ {
		cells[i].Store(tUnbuilt)
	}
	m.tab.Store(&table{cells: cells, states: append(old.states, s)})
	v = uint32(off)<<3 | s.tag
	m.index[string(key)] = v
	return v, true
}

// endMatch reports whether the text, having led to the state whose row is
// at off, ends in a match.
func (m *machine) endMatch(off uint32) bool {
	s := m.tab.Load().states[off/uint32(m.nclass)]
	if v := s.end.Load(); v != 0 {
		return v == 2
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, matched := m.closure(s.pcs, flags(s.kind, kEnd))
	v := uint32(1)
	if matched {
		v = 2
	}
	s.end.Store(v)
	return matched
}

// run reports whether s (read as Latin-1 when latin1) holds a match; ok
// is false when the machine filled up on the way and cannot tell.
func (m *machine) run(s string, latin1 bool) (hit, ok bool) {
	v := m.start
	if !m.startOK {
		return false, false
	}
	skip := m.skip
	if latin1 {
		if skip != "" && m.skipLatin1 == "" {
			return false, true // the literal holds a rune no byte stands for
		}
		skip = m.skipLatin1
	}
	i := 0
	if v&7 == tSkip && skip != "" {
		if i = strings.Index(s, skip); i < 0 {
			return false, true
		}
	}
	mode := 0
	if latin1 {
		mode = 1
	}
	cells := m.tab.Load().cells
	off := v >> 3
	for i < len(s) {
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
			// A state made after this table was read.
			cells = m.tab.Load().cells
		}
		v = cells[x].Load()
		if v&1 != 0 {
			if v == tUnbuilt {
				if v, ok = m.build(off, c); !ok {
					return false, false
				}
				cells = m.tab.Load().cells
			}
			switch v & 7 {
			case tMatch:
				return true, true
			case tDead:
				return false, true
			case tSkip:
				if skip != "" {
					j := strings.Index(s[i:], skip)
					if j < 0 {
						return false, true
					}
					i += j
					break
				}
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
				if v = m.emptyV[k].Load(); v == 0 {
					if v, ok = m.emptyState(k); !ok {
						return false, false
					}
					cells = m.tab.Load().cells
				}
				i = j
			}
		}
		off = v >> 3
	}
	return m.endMatch(off), true
}

// accel lets run skip, while no thread runs, the bytes that cannot start
// one: esc holds those that can (in UTF-8 mode every byte from 0x80 when
// any rune above ASCII can).
type accel struct {
	on  bool
	esc [256]bool
}

// maxAccelShare is the largest share of ordinary text a run may stop at
// and still scan for its bytes rather than step the automaton.
const maxAccelShare = 0.1

// accelerate fills m.acc: which classes move a state with no threads
// (after a newline, a word or another rune) to one with threads or a
// match.
func (m *machine) accelerate() {
	type ctx struct{ prev, next uint8 }
	memo := map[ctx][]uint32{}
	matched := map[ctx]bool{}
	esc := make([]bool, m.nclass)
	for c := range m.nclass {
		bits := m.classBits[c*m.stride : (c+1)*m.stride]
		for _, k := range []uint8{kNewline, kWord, kOther} {
			x := ctx{k, m.classKind[c]}
			runes, ok := memo[x]
			if !ok {
				var hit bool
				runes, hit = m.closure(nil, flags(x.prev, x.next))
				runes = slices.Clone(runes)
				memo[x], matched[x] = runes, hit
			}
			if matched[x] {
				esc[c] = true
			}
			for _, pc := range runes {
				if b := m.bit[pc]; bits[b/64]&(1<<(b%64)) != 0 {
					esc[c] = true
				}
			}
		}
	}
	high := false // some rune above ASCII can start a thread
	for iv := range m.bounds {
		if (iv+1 == len(m.bounds) || m.bounds[iv+1] > utf8.RuneSelf) && esc[m.ivClass[iv]] {
			high = true
		}
	}
	for b := range 256 {
		m.acc[1].esc[b] = esc[m.byteClass[b]]
		m.acc[0].esc[b] = m.acc[1].esc[b]
		if b >= utf8.RuneSelf {
			m.acc[0].esc[b] = high
		}
	}
	for i := range m.acc {
		m.acc[i].on = textShare(&m.acc[i].esc) <= maxAccelShare
	}
}

// textShare estimates the share of ordinary (mostly English, mostly
// lower-case) text that the bytes of set make up.
func textShare(set *[256]bool) float64 {
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	freq := [26]float64{12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1}
	share := 0.0
	for b := range 256 {
		if !set[b] {
			continue
		}
		switch {
		case b >= 'a' && b <= 'z':
			share += freq[strings.IndexByte(letters, byte(b))] / 100 * 0.75
		case b >= 'A' && b <= 'Z':
			share += freq[strings.IndexByte(letters, byte(b-'A'+'a'))] / 100 * 0.04
		case b == ' ':
			share += 0.15
		case b == '\n' || b == '.' || b == ',':
			share += 0.015
		default:
			share += 0.001
		}
	}
	return share
}

// emptyState returns the cell value of the state with no threads after a
// rune of kind k.
func (m *machine) emptyState(k uint8) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.lookup(nil, k, 0)
	if ok {
		m.emptyV[k].Store(v)
	}
	return v, ok
}
