package rbl

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultScore is the score of a listing in a list given by ParseList
// without one.
const DefaultScore = 3

// ParseList parses a list as a command line gives it (-dnsbl, -uribl):
// a preset name ("zen", "dbl", "spamcop", "barracuda", "surbl", "uribl",
// "dnswl"), or ZONE[=SCORE] for a list of that kind where any answer in
// 127.0.0.0/8 lists with SCORE (default DefaultScore; negative for an
// allowlist) and the refused codes stay unknown. An IP list is asked about
// the client address, a domain list about the links of the body.
func ParseList(kind Kind, spec string) (List, error) {
	spec = strings.TrimSpace(spec)
	if p, ok := Presets()[strings.ToLower(spec)]; ok {
		l := p()
		if l.Kind != kind {
			return List{}, fmt.Errorf("%w: preset %s is a %s list, not a %s list", ErrConfig, spec, l.Kind, kind)
		}
		return l, nil
	}
	zone, scoreS, hasScore := strings.Cut(spec, "=")
	score := float64(DefaultScore)
	if hasScore {
		s, err := strconv.ParseFloat(scoreS, 64)
		if err != nil {
			return List{}, fmt.Errorf("%w: score in %q", ErrConfig, spec)
		}
		score = s
	}
	l := List{Zone: zone, Kind: kind, Score: score}
	if err := l.prepare(); err != nil {
		return List{}, err
	}
	return List{Name: l.Name, Zone: l.Zone, Kind: kind, Score: score}, nil
}
