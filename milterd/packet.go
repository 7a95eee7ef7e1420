package milterd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultMaxPacket bounds one milter packet (command byte and payload).
// Postfix sends body chunks of at most 65535 bytes and one header field per
// packet; its header_size_limit is 102400 bytes by default, so 256 KiB
// leaves room for a long header without letting a peer make the milter
// allocate gigabytes.
const DefaultMaxPacket = 256 << 10

// maxBodyChunk is the largest body chunk the milter protocol allows
// (MILTER_CHUNK_SIZE).
const maxBodyChunk = 65535

// ErrProtocol is matched (errors.Is) by every error about what the MTA
// sent: a packet too long, truncated or out of order, a command the
// milter does not know. The session ends; the MTA applies its
// milter_default_action.
var ErrProtocol = errors.New("milterd: protocol error")

// PacketError describes a packet the milter refused.
type PacketError struct {
	Command byte   // the command code, 0 when the length was refused
	Length  uint32 // the length the peer announced
	Max     int    // the limit in force
	Reason  string
	Err     error // the read error, e.g. io.ErrUnexpectedEOF for a truncated packet
}

func (e *PacketError) Error() string {
	s := "milterd: " + e.Reason
	if e.Command != 0 {
		s += fmt.Sprintf(" (command %q)", e.Command)
	}
	if e.Length != 0 || e.Max != 0 {
		s += fmt.Sprintf(" (length %d, max %d)", e.Length, e.Max)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every PacketError match ErrProtocol.
func (e *PacketError) Is(target error) bool { return target == ErrProtocol }

func (e *PacketError) Unwrap() error { return e.Err }

// packetReader reads milter packets (a 4-byte big-endian length, then the
// command byte and its payload) with a deadline on every read and the
// length checked before anything is allocated. The returned payload is
// valid until the next read: the buffer is reused.
type packetReader struct {
	conn    net.Conn
	br      *bufio.Reader
	timeout time.Duration
	max     int
	buf     []byte
}

func newPacketReader(conn net.Conn, timeout time.Duration, max int) *packetReader {
	return &packetReader{conn: conn, br: bufio.NewReaderSize(conn, 4096), timeout: timeout, max: max}
}

// read returns the next packet. io.EOF means the peer closed the
// connection between packets; anything else ends the session too.
func (r *packetReader) read() (code byte, data []byte, err error) {
	if r.timeout > 0 {
		if err := r.conn.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return 0, nil, err
		}
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, &PacketError{Reason: "truncated packet length", Err: err}
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return 0, nil, &PacketError{Reason: "zero-length packet", Max: r.max}
	}
	if uint64(n) > uint64(r.max) {
		return 0, nil, &PacketError{Reason: "packet too long", Length: n, Max: r.max}
	}
	if cap(r.buf) < int(n) {
		// Grow by doubling up to the limit so a stream of slightly
		// longer packets does not reallocate each time.
		r.buf = make([]byte, min(max(int(n), 2*cap(r.buf), 512), r.max))
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, &PacketError{Reason: "truncated packet", Length: n, Max: r.max, Err: err}
	}
	return b[0], b[1:], nil
}

// packetWriter writes packets with a deadline on each.
type packetWriter struct {
	conn    net.Conn
	bw      *bufio.Writer
	timeout time.Duration
}

func newPacketWriter(conn net.Conn, timeout time.Duration) *packetWriter {
	return &packetWriter{conn: conn, bw: bufio.NewWriterSize(conn, 4096), timeout: timeout}
}

// write buffers one packet; flush sends what was buffered. A response
// made of several packets (modifications, then the final action) goes
// out in one flush.
func (w *packetWriter) write(code byte, data []byte) error {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)+1))
	hdr[4] = code
	if _, err := w.bw.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.bw.Write(data)
	return err
}

func (w *packetWriter) flush() error {
	if w.timeout > 0 {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}
