// Package ac is a multi-pattern matcher (Aho-Corasick) that answers one
// question cheaply: which of a fixed set of byte strings occur in a text.
//
// Matching folds ASCII case: patterns are stored lower-cased and the text
// is read through a byte-class table that maps 'A' and 'a' to the same
// class, so the text is never copied. Non-ASCII bytes match exactly.
//
// The automaton is a dense DFA over byte classes (only the bytes that occur
// in some pattern get a class of their own), so a scan costs one table
// load per text byte whatever the number of patterns; a pattern's
// occurrence is reported once per scan. The states are numbered breadth
// first, so that the shallow ones a scan of ordinary text stays among
// share cache lines, and the scan's loop (walk) reads the table without
// bounds checks, four bytes a round. MatchString searches a small set
// of patterns with rare bytes by those bytes instead (anchor.go), many
// bytes at a time.
package ac

import (
	"sync"
	"unsafe"
)

// Matcher is a compiled pattern set. It is safe for concurrent use.
type Matcher struct {
	classes  [256]uint8
	nclass   int
	delta    []int32 // state*nclass+class → next state*nclass; high bit: state has output
	own      [][]int32
	dictLink []int32 // next state on the suffix chain that has output, or -1
	npat     int
	pool     sync.Pool
	anchors  []anchorGroup // for a small set, how MatchString searches it instead (anchor.go)
}

const outFlag = int32(-1) << 31
const stateMask = ^outFlag

// MaxStates bounds the automaton so that a huge rule set cannot take all
// memory: New fails beyond it.
const MaxStates = 1 << 22

// ErrTooLarge is returned by New when the patterns need more than MaxStates.
type ErrTooLarge struct{ States int }

func (e *ErrTooLarge) Error() string {
	return "ac: pattern set needs too many states"
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// New compiles patterns; the empty pattern is ignored. Pattern ids are the
// indexes into patterns.
func New(patterns []string) (*Matcher, error) {
	m := &Matcher{npat: len(patterns)}
	// Byte classes: class 0 for bytes in no pattern.
	var used [256]bool
	total := 1
	for _, p := range patterns {
		total += len(p)
		for i := 0; i < len(p); i++ {
			used[lower(p[i])] = true
		}
	}
	if total > MaxStates {
		return nil, &ErrTooLarge{States: total}
	}
	n := 1
	for b := 0; b < 256; b++ {
		if used[b] {
			m.classes[b] = uint8(n)
			n++
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		m.classes[b] = m.classes[b+'a'-'A']
	}
	m.nclass = n // at most 231: upper-case letters never get a class of their own

	// Trie with sparse children while building.
	type node struct {
		next map[uint8]int32
	}
	nodes := []node{{}}
	own := [][]int32{nil}
	for id, p := range patterns {
		if p == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.classes[p[i]]
			if nodes[s].next == nil {
				nodes[s].next = map[uint8]int32{}
			}
			t, ok := nodes[s].next[c]
			if !ok {
				t = int32(len(nodes))
				nodes = append(nodes, node{})
				own = append(own, nil)
				nodes[s].next[c] = t
			}
			s = t
		}
		own[s] = append(own[s], int32(id))
	}
	ns := len(nodes)
	nc := m.nclass
	delta := make([]int32, ns*nc)
	fail := make([]int32, ns)
	dict := make([]int32, ns)
	for i := range dict {
		dict[i] = -1
	}
	// Breadth-first: every state's failure state is final before its
	// children are processed.
	queue := make([]int32, 0, ns)
	for c := 0; c < nc; c++ {
		if t, ok := nodes[0].next[uint8(c)]; ok {
			delta[c] = t
			fail[t] = 0
			queue = append(queue, t)
		}
	}
	for qi := 0; qi < len(queue); qi++ {
		s := queue[qi]
		f := fail[s]
		if len(own[f]) > 0 {
			dict[s] = f
		} else {
			dict[s] = dict[f]
		}
		for c := 0; c < nc; c++ {
			if t, ok := nodes[s].next[uint8(c)]; ok {
				delta[int(s)*nc+c] = t
				fail[t] = delta[int(f)*nc+c] & stateMask
				queue = append(queue, t)
			} else {
				delta[int(s)*nc+c] = delta[int(f)*nc+c] & stateMask
			}
		}
	}
	// Number the states breadth first (the order of queue), so that the
	// shallow states, where a scan of ordinary text spends most of its
	// time, have neighbouring rows; store each next state as its row's
	// offset, so that a scan adds the byte's class without a
	// multiplication on the path from one byte to the next
	// (MaxStates*231 fits below the flag bit); and flag transitions into
	// states that report something.
	id := make([]int32, ns) // trie node → state
	for k, s := range queue {
		id[s] = int32(k + 1)
	}
	rows := make([]int32, ns*nc)
	ownBFS := make([][]int32, ns)
	dictBFS := make([]int32, ns)
	for old := range ns {
		s := int(id[old])
		ownBFS[s] = own[old]
		dictBFS[s] = -1
		if dict[old] >= 0 {
			dictBFS[s] = id[dict[old]]
		}
		for c := range nc {
			t := delta[old*nc+c]
			r := id[t] * int32(nc)
			if len(own[t]) > 0 || dict[t] >= 0 {
				r |= outFlag
			}
			rows[s*nc+c] = r
		}
	}
	delta, own, dict = rows, ownBFS, dictBFS
	m.delta, m.own, m.dictLink = delta, own, dict
	m.anchors = planAnchors(patterns)
	m.pool.New = func() any { return &scratch{seen: make([]uint64, (ns+63)/64)} }
	return m, nil
}

type scratch struct{ seen []uint64 }

// Patterns returns the number of patterns the matcher was built from.
func (m *Matcher) Patterns() int { return m.npat }

// States returns the number of automaton states.
func (m *Matcher) States() int { return len(m.own) }

// Match calls found once for each pattern id that occurs in text.
func (m *Matcher) Match(text []byte, found func(id int)) {
	m.match(unsafe.String(unsafe.SliceData(text), len(text)), found)
}

// MatchString is Match over a string, without copying it.
func (m *Matcher) MatchString(text string, found func(id int)) {
	if m.anchors != nil {
		m.matchAnchors(text, found)
		return
	}
	m.match(text, found)
}

// match is Match by the automaton.
func (m *Matcher) match(text string, found func(id int)) {
	if len(m.own) <= 1 {
		return
	}
	sc := m.pool.Get().(*scratch)
	clear(sc.seen)
	nc := int32(m.nclass)
	s := int32(0)
	for i := 0; ; i++ {
		if i, s = m.walk(text, i, s); i >= len(text) {
			break
		}
		s &= stateMask
		m.report(s/nc, sc.seen, found)
	}
	m.pool.Put(sc)
}

// walk runs the automaton over text from offset i in state s (a row
// offset) until a transition into a state that reports something: it
// returns the offset of the byte that took it and the flagged next state,
// or len(text) and the state the text ends in.
//
// It is the one loop a scan spends its time in, so it reads the table
// without bounds checks: every entry, unflagged, is the offset of a row
// of nclass entries, and a byte's class is below nclass, so the sum is an
// index into delta.
func (m *Matcher) walk(text string, i int, s int32) (int, int32) {
	delta := unsafe.Pointer(unsafe.SliceData(m.delta))
	cls := &m.classes
	p := unsafe.Pointer(unsafe.StringData(text))
	// r is s as a machine word: unflagged, it is an index to add to.
	r := uint(uint32(s))
	next := func(r uint, k int) uint {
		b := *(*byte)(unsafe.Add(p, k))
		return uint(*(*uint32)(unsafe.Add(delta, (r+uint(cls[b]))*4)))
	}
	const flag = 1 << 31
	// Four bytes a round: the loop's own test once for four steps.
	for ; i+4 <= len(text); i += 4 {
		if r = next(r, i); r&flag != 0 {
			return i, int32(r)
		}
		if r = next(r, i+1); r&flag != 0 {
			return i + 1, int32(r)
		}
		if r = next(r, i+2); r&flag != 0 {
			return i + 2, int32(r)
		}
		if r = next(r, i+3); r&flag != 0 {
			return i + 3, int32(r)
		}
	}
	for ; i < len(text); i++ {
		if r = next(r, i); r&flag != 0 {
			return i, int32(r)
		}
	}
	return len(text), int32(r)
}

// report walks the output chain of state s, stopping at the first state
// already reported in this scan (its chain was reported with it).
func (m *Matcher) report(s int32, seen []uint64, found func(int)) {
	for t := s; t >= 0; t = m.dictLink[t] {
		w, bit := t/64, uint64(1)<<(t%64)
		if seen[w]&bit != 0 {
			return
		}
		seen[w] |= bit
		for _, id := range m.own[t] {
			found(int(id))
		}
	}
}

// Each calls found for every occurrence of every pattern in text, with the
// offset just past it, in order of that offset. Unlike Match it reports a
// pattern again each time it occurs, so a caller can tell where.
func (m *Matcher) Each(text string, found func(id, end int)) {
	if len(m.own) <= 1 {
		return
	}
	nc := int32(m.nclass)
	s := int32(0)
	for i := 0; ; i++ {
		if i, s = m.walk(text, i, s); i >= len(text) {
			break
		}
		s &= stateMask
		for t := s / nc; t >= 0; t = m.dictLink[t] {
			for _, id := range m.own[t] {
				found(int(id), i+1)
			}
		}
	}
}
