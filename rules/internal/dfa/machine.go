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
// yet closed, and that rune's kind. All but next and end are fixed once
// the state is published.
type state struct {
	next []atomic.Pointer[state] // by class; unbuilt: not built yet
	end  atomic.Uint32           // 0 unknown, 1 no match at the end of text, 2 a match
	pcs  []uint32
	kind uint8
	// special says what run must do on reaching the state, as bits: a
	// match, a dead end (no threads, and the program cannot start after
	// the text's start) or a jump (no threads, and every match starts
	// with a literal).
	special uint8
}

const (
	sMatch = 1 << iota
	sDead
	sSkip
	sBuild
)

// matchState is the target of a transition whose closure holds InstMatch;
// unbuilt that of a transition not built yet.
var (
	matchState = &state{special: sMatch}
	unbuilt    = &state{special: sBuild}
)

type machine struct {
	prog *syntax.Prog

	// Rune classes.
	bit       []int32 // pc → index of the rune instruction in the class bit sets, or -1
	stride    int     // uint64 words per class bit set
	bounds    []rune  // interval starts, ascending; bounds[0] == 0
	ivClass   []int32 // interval → class
	byteClass [256]int32
	classBits []uint64 // class c's rune instructions that match it: [c*stride : (c+1)*stride]
	classKind []uint8
	nclass    int

	anchored   bool   // no thread can start after the text's start
	skip       string // while no thread runs, the next match starts at this literal
	skipLatin1 string // the same literal as Latin-1 bytes, or ""

	start *state

	mu       sync.Mutex
	states   map[string]*state
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
	m := &machine{
		prog:     prog,
		states:   map[string]*state{},
		maxCells: maxCells,
		cells:    new(atomic.Int64),
		full:     full,
		mark:     make([]uint32, len(prog.Inst)),
	}
	m.classes()
	_, matched := m.closure(nil, ^syntax.EmptyOp(0)&^syntax.EmptyBeginText)
	m.anchored = len(m.runes) == 0 && !matched
	if p, _ := prog.Prefix(); p != "" {
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
	m.mu.Lock()
	m.start = m.lookup(nil, kStart)
	m.mu.Unlock()
	if m.start == nil {
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
	hasEmpty := false
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
			hasEmpty = true
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
		if hasEmpty {
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
		m.byteClass[r] = m.ivClass[m.interval(rune(r))]
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

func (m *machine) classOf(r rune) int32 {
	if r < 256 {
		return m.byteClass[r]
	}
	return m.ivClass[m.interval(r)]
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

// build makes the transition of s on class c, or returns nil when the
// machine is full.
func (m *machine) build(s *state, c int32) *state {
	m.mu.Lock()
	defer m.mu.Unlock()
	if nx := s.next[c].Load(); nx != unbuilt {
		return nx
	}
	if m.full.Load() {
		return nil
	}
	k := m.classKind[c]
	runes, matched := m.closure(s.pcs, flags(s.kind, k))
	if matched {
		s.next[c].Store(matchState)
		return matchState
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
	nx := m.lookup(next, k)
	if nx != nil {
		s.next[c].Store(nx)
	}
	return nx
}

// lookup returns the state of pcs and kind, making it if need be; nil
// when that would pass a cap. m.mu is held.
func (m *machine) lookup(pcs []uint32, kind uint8) *state {
	key := append(m.key[:0], kind)
	for _, pc := range pcs {
		key = binary.LittleEndian.AppendUint32(key, pc)
	}
	m.key = key
	if s, ok := m.states[string(key)]; ok {
		return s
	}
	cost := int64(m.nclass + len(pcs)/2 + 8)
	if m.cells.Load()+cost > int64(m.maxCells) {
		m.full.Store(true)
		return nil
	}
	if processCells.Add(cost) > processLimit.Load() {
		processCells.Add(-cost)
		m.full.Store(true)
		return nil
	}
	m.cells.Add(cost)
	s := &state{
		next: make([]atomic.Pointer[state], m.nclass),
		pcs:  pcs,
		kind: kind,
	}
	for i := range s.next {
		s.next[i].Store(unbuilt)
	}
	switch {
	case len(pcs) > 0:
	case m.anchored:
		s.special = sDead
	case m.skip != "":
		s.special = sSkip
	}
	m.states[string(key)] = s
	return s
}

// endMatch reports whether the text, having led to s, ends in a match.
func (m *machine) endMatch(s *state) bool {
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
	st := m.start
	if st == nil {
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
	if st.special&sSkip != 0 && skip != "" {
		if i = strings.Index(s, skip); i < 0 {
			return false, true
		}
	}
	for i < len(s) {
		var c int32
		if b := s[i]; b < utf8.RuneSelf || latin1 {
			c = m.byteClass[b]
			i++
		} else {
			r, w := utf8.DecodeRuneInString(s[i:])
			c = m.classOf(r)
			i += w
		}
		nx := st.next[c].Load()
		if nx.special != 0 {
			if nx == unbuilt {
				if nx = m.build(st, c); nx == nil {
					return false, false
				}
			}
			switch {
			case nx.special&sMatch != 0:
				return true, true
			case nx.special&sDead != 0:
				return false, true
			case nx.special&sSkip != 0 && skip != "":
				j := strings.Index(s[i:], skip)
				if j < 0 {
					return false, true
				}
				i += j
			}
		}
		st = nx
	}
	return m.endMatch(st), true
}
