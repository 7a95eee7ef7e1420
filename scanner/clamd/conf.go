package clamd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Limits are the clamd.conf settings that bound what clamd scans whole, in
// bytes; 0 means no limit.
type Limits struct {
	StreamMaxLength int64 // INSTREAM: clamd stops reading beyond it
	MaxFileSize     int64 // a larger file (or archive member) is not scanned
	MaxScanSize     int64 // data scanned per input, archive contents included
	// AlertExceedsMax: clamd reports Heuristics.Limits.Exceeded instead of
	// OK when it stops at a limit.
	AlertExceedsMax bool
}

// DefaultLimits are ClamAV's defaults (clamd.conf(5), ClamAV 1.x).
func DefaultLimits() Limits {
	return Limits{StreamMaxLength: 100 << 20, MaxFileSize: 100 << 20, MaxScanSize: 400 << 20}
}

// Max is the largest input scanned whole: the smallest limit set, 0 when
// none is.
func (l Limits) Max() int64 {
	var m int64
	for _, v := range []int64{l.StreamMaxLength, l.MaxFileSize, l.MaxScanSize} {
		if v > 0 && (m == 0 || v < m) {
			m = v
		}
	}
	return m
}

// ErrConf: clamd.conf could not be understood.
var ErrConf = errors.New("clamd: bad clamd.conf")

// maxConf bounds the configuration file read.
const maxConf = 1 << 20

// ReadLimits reads the size limits from a clamd.conf; keys it does not set
// keep DefaultLimits. A value it cannot parse is an error wrapping ErrConf,
// never a silent default.
func ReadLimits(path string) (Limits, error) {
	f, err := os.Open(path)
	if err != nil {
		return Limits{}, fmt.Errorf("clamd: %w", err)
	}
	defer f.Close()
	return parseLimits(io.LimitReader(f, maxConf), path)
}

func parseLimits(r io.Reader, name string) (Limits, error) {
	lim := DefaultLimits()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, val = line[:i], line[i+1:]
		}
		val = strings.Trim(strings.TrimSpace(val), `"`)
		var dst *int64
		switch strings.ToLower(key) {
		case "streammaxlength":
			dst = &lim.StreamMaxLength
		case "maxfilesize":
			dst = &lim.MaxFileSize
		case "maxscansize":
			dst = &lim.MaxScanSize
		case "alertexceedsmax":
			b, ok := parseBool(val)
			if !ok {
				return Limits{}, fmt.Errorf("%w: %s:%d: AlertExceedsMax %q", ErrConf, name, n, val)
			}
			lim.AlertExceedsMax = b
			continue
		default:
			continue
		}
		v, err := ParseSize(val)
		if err != nil {
			return Limits{}, fmt.Errorf("%w: %s:%d: %s: %w", ErrConf, name, n, key, err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return Limits{}, fmt.Errorf("%w: %s: %w", ErrConf, name, err)
	}
	return lim, nil
}

// ParseSize parses a clamd.conf SIZE: bytes, or with a K/k or M/m suffix
// (G/g too, which newer ClamAV accepts).
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, s = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q", s)
	}
	return v * mult, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "yes", "true", "1", "on":
		return true, true
	case "no", "false", "0", "off":
		return false, true
	}
	return false, false
}
