package filter

// Limits bound what one message may cost to parse. The zero value of each
// field means its default; a negative value means no limit, which is only
// safe for input you trust.
//
// Limits are enforced while parsing and decoding, never after: a message
// nested 10,000 deep stops at MaxDepth having read only what it had to.
type Limits struct {
	// MaxMessageBytes bounds the raw message. Default 64 MiB.
	MaxMessageBytes int64
	// MaxHeaderBytes bounds the header of each part, the top-level header
	// included. Default 256 KiB.
	MaxHeaderBytes int64
	// MaxDepth bounds MIME nesting (multipart and message/rfc822). Default 32.
	MaxDepth int
	// MaxParts bounds the number of parts. Default 2,000.
	MaxParts int
	// MaxDecodedBytes bounds the decoded bytes of each part (one read of
	// it). Default 256 MiB. Base64 and quoted-printable only shrink, so the
	// decoded parts of a message together are no larger than the message;
	// this bound matters when MaxMessageBytes is raised above it.
	MaxDecodedBytes int64
}

// Default limits.
const (
	DefaultMaxMessageBytes = 64 << 20
	DefaultMaxHeaderBytes  = 256 << 10
	DefaultMaxDepth        = 32
	DefaultMaxParts        = 2000
	DefaultMaxDecodedBytes = 256 << 20
)

const unlimited = int64(1<<63 - 1)

func pick(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return unlimited
	}
	return v
}

// withDefaults returns l with zero fields set to their defaults and
// negative ones to "no limit".
func (l Limits) withDefaults() Limits {
	return Limits{
		MaxMessageBytes: pick(l.MaxMessageBytes, DefaultMaxMessageBytes),
		MaxHeaderBytes:  pick(l.MaxHeaderBytes, DefaultMaxHeaderBytes),
		MaxDepth:        int(min(pick(int64(l.MaxDepth), DefaultMaxDepth), 1<<31-1)),
		MaxParts:        int(min(pick(int64(l.MaxParts), DefaultMaxParts), 1<<31-1)),
		MaxDecodedBytes: pick(l.MaxDecodedBytes, DefaultMaxDecodedBytes),
	}
}
