// Package dfa answers "does this regex match anywhere in s" with a lazily
// built deterministic automaton, giving exactly the answer of Go's
// regexp.MatchString for the same pattern (syntax.Perl flags) on every
// input, invalid UTF-8 included.
//
// Go's regexp has no DFA: its backtracker and NFA pay for every thread at
// every position, so a rule engine that runs hundreds of unanchored
// regexes over each 2 KB paragraph spends most of its time there. A DFA
// pays one table look-up per rune, whatever the pattern.
//
// # Design
//
// The pattern is parsed and compiled as regexp does it (syntax.Parse with
// syntax.Perl, Simplify, syntax.Compile), and the automaton runs over that
// program, so the semantics cannot drift from Go's.
//
// Runes are grouped into classes: the boundaries of every rune
// instruction's ranges (a case-folded literal adds its unicode.SimpleFold
// orbit), '\n' and the edges of the ASCII word characters (for \b, \B
// and (?m)^ $) cut the rune space into intervals on which every
// instruction behaves the same; intervals with the same signature (which
// instructions match them, and whether they are a word character, a
// newline or other) share a class. A byte table serves runes below 256,
// a binary search over the boundaries the others.
//
// A state is the set of program counters reached after the previous rune
// and not yet closed, with the kind of that rune (start of text, newline,
// word, other). The transition on class c computes the empty-width flags
// from the previous kind and c's kind, closes the set together with the
// program's start (an unanchored search starts a thread at every
// position), reports a match as soon as InstMatch is in the closure, and
// otherwise steps every rune instruction that matches c. At the end of
// the text the set is closed with the end-of-text flags. A state with no
// threads of a program anchored at the start (\A) is dead: the search
// stops there. While no thread runs, a case-sensitive literal prefix is
// found with strings.Index instead of stepping; lacking one, the bytes
// that can start a thread (after any kind of rune) are found by a table
// scan, when they are rare enough in ordinary text to be worth it (the
// \b_{0,3}v[_\W]?i... drug-name patterns: 3-5 times faster).
//
// States and transitions are built on demand and cached. The transitions
// are one table of 32-bit cells, a row per state and a cell per class,
// each holding the next state's row offset and a tag (not built yet,
// match, dead end, literal jump), so a step is one load. The table is
// read without locks through an atomic pointer; a missing transition is
// built under the DFA's mutex, with a map from state key to state so that
// each state exists once, and a new state publishes a new table (sharing
// the cells, or a copy when they must grow); a reader whose table is
// older than a state it reached reloads it. A DFA is safe for concurrent
// use.
//
// # Many patterns at once
//
// A Multi runs several patterns (at most 64) as one automaton and says
// which of them match: a rule engine whose body rules have no literal
// to filter on then walks each line once, not once per rule. Its
// program is the union of the members' programs (pcs shifted apart, each
// instruction knowing its pattern); a state is the threads of the
// members not matched yet, the kind of the previous rune, and the set of
// members matched so far. A transition closes the threads with the start
// of every member not matched, adds the members whose InstMatch the
// closure reaches to the set, and steps only the threads of members
// still open: a member that has matched costs nothing more, and the
// state with every member matched (or only members anchored at the
// text's start left, and no thread) is dead, which ends the pass. The
// answer is the set of the state the text ends in, closed with the
// end-of-text flags. Keeping the set in the state makes states depend on
// history, but matches are rare in ordinary text and each set reached
// adds only the states seen after it; the alternative (an OR of match
// sets kept beside the transitions) keeps every matched member's threads
// alive to the end of the line. A caller may give members already
// answered (done): the pass starts from the state whose set holds them.
//
// The idle-state scan carries over: the bytes that can start a thread
// of any member are found as for one pattern (a literal prefix is not
// used); a union has many starting bytes, so the scan is on only when
// all of them are rare.
//
// # Failure semantics
//
// Memory is bounded twice: each DFA may hold at most MaxCells cells (4
// bytes each; a state also costs its threads and a fixed overhead), and
// all DFAs of the process together at most SetProcessCellLimit's total
// (cells of collected DFAs are given back); a table that grows is
// reallocated at twice its size, so it holds at most twice its cells. A
// DFA that would exceed either cap stops growing for good and answers
// every later call with Go's regexp for the same pattern (New's, or one
// compiled then); the answer never changes, only its speed. Compile refuses (ErrTooLarge)
// programs of more than maxInsts instructions, and returns the parser's
// error for invalid patterns; callers then keep Go's regexp. New takes a
// compiled regexp and parses its pattern only at the first match, so a
// set of regexes of which most never run costs nearly nothing to load; a
// pattern Compile would refuse is then answered by that regexp.
//
// A Multi is bounded the same way, by its own cap (MaxMultiCells by
// default, SetMaxCells) and the same process-wide total; one that would
// pass either stops growing for good and answers every later call with
// its members' DFAs, one by one, so again only the speed changes. A
// Multi whose member has no DFA (a pattern Compile refuses) or whose
// union program has more than maxInsts instructions never builds an
// automaton and answers with its members from the start.
//
// A state's transitions are built once and never freed while the DFA
// lives: memory grows with the variety of text seen, up to the caps, and
// not with its volume.
package dfa
