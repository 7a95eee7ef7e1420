package rules

import "strings"

// addrList is addrBoth with a fast path: the address lists most mail
// carries parse without net/mail, whose parser allocates a dozen objects
// for "Name <a@b.example>" (and an error value for each form it tries
// first). A third of the allocations of evaluating a small message were
// net/mail's.
func addrList(s string) (addrs, names []string) {
	if a, n, ok := plainAddrs(s); ok {
		return a, n
	}
	return addrBoth(s)
}

// plainAddrs parses the address lists that need no decoding: elements
// "a@b.example", "<a@b.example>", "Display Name <a@b.example>" and
// "\"Quoted, Name\" <a@b.example>", in printable ASCII, separated by
// commas. The strings it returns are substrings of s, equal to what
// net/mail returns for the same list. ok is false for anything else
// (comments, groups, encoded words, quoted pairs, empty elements,
// non-ASCII, words apart by more than one space), which addrBoth parses.
func plainAddrs(s string) (addrs, names []string, ok bool) {
	var small [4][2]string
	list := small[:0]
	for i := 0; ; {
		i = skipWSP(s, i)
		addr, name, j, ok := plainAddr(s, i)
		if !ok {
			return nil, nil, false
		}
		list = append(list, [2]string{addr, name})
		i = skipWSP(s, j)
		if i == len(s) {
			break
		}
		if s[i] != ',' {
			return nil, nil, false
		}
		i++
	}
	n := len(list)
	both := make([]string, 2*n)
	for k, p := range list {
		both[k], both[n+k] = p[0], p[1]
	}
	return both[:n:n], both[n:], true
}

// plainAddr parses one element of a plain list at s[i:], returning the
// address, the display name and where the element ends.
func plainAddr(s string, i int) (addr, name string, end int, ok bool) {
	switch {
	case i == len(s):
		return "", "", 0, false
	case s[i] == '<':
	case s[i] == '"':
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if c := s[j]; c == '\\' || (c < ' ' && c != '\t') || c > '~' {
				return "", "", 0, false
			}
			j++
		}
		if j == len(s) || j == i+1 {
			return "", "", 0, false
		}
		name, i = s[i+1:j], skipWSP(s, j+1)
	default:
		j := atomEnd(s, i)
		if j < len(s) && s[j] == '@' {
			// A bare addr-spec, which net/mail tries first.
			if end, ok = addrSpecEnd(s, i); !ok {
				return "", "", 0, false
			}
			return s[i:end], "", end, true
		}
		// A phrase of atoms one space apart, then the angle address.
		for {
			if j == i || strings.Contains(s[i:j], "=?") {
				return "", "", 0, false
			}
			if j+1 < len(s) && s[j] == ' ' && isAtext(s[j+1]) {
				j = atomEnd(s, j+1)
				continue
			}
			break
		}
		name, i = s[i:j], skipWSP(s, j)
	}
	if i == len(s) || s[i] != '<' {
		return "", "", 0, false
	}
	end, ok = addrSpecEnd(s, i+1)
	if !ok || end == len(s) || s[end] != '>' {
		return "", "", 0, false
	}
	return s[i+1 : end], name, end + 1, true
}

// addrSpecEnd returns the end of the addr-spec at s[i:]: a local part
// and a domain that are dot-atoms (no leading, trailing or double dot),
// joined by '@' with no space.
func addrSpecEnd(s string, i int) (int, bool) {
	at := atomEnd(s, i)
	if !strictAtom(s[i:at]) || at == len(s) || s[at] != '@' {
		return 0, false
	}
	end := atomEnd(s, at+1)
	return end, strictAtom(s[at+1 : end])
}

// atomEnd returns the end of the run of atext and dots at s[i:].
func atomEnd(s string, i int) int {
	for i < len(s) && isAtext(s[i]) {
		i++
	}
	return i
}

// isAtext reports whether c is printable ASCII and no RFC 5322 special
// other than '.', as net/mail's isAtext with dots allowed.
func isAtext(c byte) bool {
	if c <= ' ' || c > '~' {
		return false
	}
	return !strings.ContainsRune(`()<>[]:;@\,"`, rune(c))
}

func strictAtom(a string) bool {
	return a != "" && a[0] != '.' && a[len(a)-1] != '.' && !strings.Contains(a, "..")
}

func skipWSP(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}
