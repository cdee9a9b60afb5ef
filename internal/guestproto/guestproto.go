// Package guestproto is the wire protocol between the host and the guest agent.
//
// Both sides import this package; no message type or operation name exists on
// only one side. A host opens one stream per operation (a vsock connection on
// Firecracker, a multiplexed stream on QEMU's serial port; see package
// serialmux) and speaks frames on it:
//
//	+------+----------------+-----------------+
//	| type | length (u32 BE)| payload         |
//	+------+----------------+-----------------+
//
// The first frame from the host is a FrameJSON carrying a Request. The agent
// answers with zero or more data frames (stdout, stderr, tar data, shell
// output) and ends the operation with one FrameJSON carrying a Response.
// The host may send FrameStdin/FrameStdinEOF/FrameData/FrameDataEOF while the
// operation runs, and FrameJSON Control messages (signal, cancel).
//
// Flow control is the transport's: a stream only carries what its reader
// takes, so a slow host reader back-pressures the guest process instead of
// growing a buffer.
package guestproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ProtocolVersion is bumped whenever a message changes incompatibly. The host
// refuses an agent whose version differs.
const ProtocolVersion = 1

// AgentPort is the vsock port (and serialmux port) the agent listens on.
const AgentPort uint32 = 1024

// SerialPortName is the name of the virtio-serial port carrying the
// multiplexed stream when the VMM offers no vsock (QEMU without vhost-vsock).
const SerialPortName = "org.hearth.agent"

// MaxPayload bounds a single frame's payload. Data streams are cut into
// frames of at most ChunkSize bytes; JSON messages may be larger (a manifest)
// up to MaxPayload.
const (
	MaxPayload = 16 << 20
	ChunkSize  = 32 << 10
)

// FrameType tells what a frame's payload is.
type FrameType byte

// Frame types.
const (
	FrameJSON     FrameType = 1 // a Request, Response or Control message
	FrameStdout   FrameType = 2 // process stdout bytes, guest -> host
	FrameStderr   FrameType = 3 // process stderr bytes, guest -> host
	FrameStdin    FrameType = 4 // process stdin bytes, host -> guest
	FrameStdinEOF FrameType = 5 // host closes the process's stdin
	FrameData     FrameType = 6 // bulk data (tar streams, file bytes), either direction
	FrameDataEOF  FrameType = 7 // end of bulk data
)

func (t FrameType) String() string {
	switch t {
	case FrameJSON:
		return "json"
	case FrameStdout:
		return "stdout"
	case FrameStderr:
		return "stderr"
	case FrameStdin:
		return "stdin"
	case FrameStdinEOF:
		return "stdin-eof"
	case FrameData:
		return "data"
	case FrameDataEOF:
		return "data-eof"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// ErrFrameTooLarge is returned when a peer announces a payload over MaxPayload.
var ErrFrameTooLarge = errors.New("guestproto: frame payload too large")

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 5+ChunkSize); return &b }}

// WriteFrame writes one frame in a single Write, so a frame never costs
// the transport more than one message (under software emulation every
// message to the VM is expensive). It is not safe for concurrent use on
// one writer; callers serialise writes.
func WriteFrame(w io.Writer, t FrameType, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrFrameTooLarge
	}
	bp := framePool.Get().(*[]byte)
	b := append((*bp)[:0], byte(t), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[1:5], uint32(len(payload)))
	b = append(b, payload...)
	_, err := w.Write(b)
	if cap(b) <= 1<<20 {
		*bp = b[:0]
		framePool.Put(bp)
	}
	return err
}

// WriteJSON marshals v and writes it as a FrameJSON.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("guestproto: marshal %T: %w", v, err)
	}
	return WriteFrame(w, FrameJSON, b)
}

// ReadFrame reads one frame. buf is reused when large enough; the returned
// payload aliases it and is valid until the next call.
func ReadFrame(r io.Reader, buf []byte) (FrameType, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxPayload {
		return 0, nil, ErrFrameTooLarge
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(hdr[0]), buf, nil
}
