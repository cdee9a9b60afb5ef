package serialmux

// Re-handshake after a restore.
//
// A VM restored from a memory snapshot wakes up in the middle of the
// multiplexing session it had when it was saved: its agent still holds
// that session's streams (a detached command's, say), and it may even be
// part-way through a frame. The new host process starts from nothing, so
// it must not speak yamux into the old session (its stream ids would
// collide). Instead it resyncs:
//
//	host  -> guest   ResyncMarker: 0xEE "RST" + 8-byte nonce (12 bytes)
//	guest -> host    0xEE "ACK" + the same nonce
//
// then both start a fresh session. The guest reads the pipe through a
// frame-aware reader (GuestReader): between yamux frames, where a yamux
// header's first byte (its version) is always 0, a first byte of 0xEE is
// the marker, so no payload byte can be mistaken for it. The host, which
// may still receive the old session's frames, discards everything up to
// the acknowledgement carrying its own nonce.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/yamux"
)

// resync markers: a byte no yamux header starts with, a tag, a nonce.
const (
	markerByte = 0xEE
	markerSize = yamuxHeaderSize
)

var (
	tagReset = [3]byte{'R', 'S', 'T'}
	tagAck   = [3]byte{'A', 'C', 'K'}
)

func marker(tag [3]byte, nonce [8]byte) []byte {
	b := make([]byte, 0, markerSize)
	b = append(b, markerByte)
	b = append(b, tag[:]...)
	return append(b, nonce[:]...)
}

// ErrResync ends a guest session whose host asked for a new one.
type ErrResync struct{ Nonce [8]byte }

func (e *ErrResync) Error() string { return "serialmux: the host started a new session (resync)" }

// GuestReader reads the guest's end of the pipe one yamux frame at a time
// and turns a resync marker found between frames into an *ErrResync. It
// never reads past the frame it is in, so the session that follows a
// resync starts exactly after the marker.
type GuestReader struct {
	r    io.Reader
	hdr  [yamuxHeaderSize]byte
	pend []byte // header bytes not yet handed out
	left int64  // payload bytes of the current frame not yet handed out
	// OnResync, if set, runs when a marker is read, before the session
	// sees the error (the agent counts sessions with it).
	OnResync func()
	mu       sync.Mutex
	resync   *[8]byte // the nonce of a marker not yet acknowledged
}

// NewGuestReader wraps the guest's end of the pipe.
func NewGuestReader(r io.Reader) *GuestReader { return &GuestReader{r: r} }

// TakeResync returns the nonce of a resync marker read since the last
// call, if any: the session it ended must be acknowledged with Ack.
func (g *GuestReader) TakeResync() ([8]byte, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resync == nil {
		return [8]byte{}, false
	}
	n := *g.resync
	g.resync = nil
	return n, true
}

func (g *GuestReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(g.pend) == 0 && g.left == 0 {
		if _, err := io.ReadFull(g.r, g.hdr[:]); err != nil {
			return 0, err
		}
		if g.hdr[0] == markerByte && [3]byte(g.hdr[1:4]) == tagReset {
			nonce := [8]byte(g.hdr[4:12])
			g.mu.Lock()
			g.resync = &nonce
			g.mu.Unlock()
			if g.OnResync != nil {
				g.OnResync()
			}
			return 0, &ErrResync{Nonce: nonce}
		}
		g.pend = g.hdr[:]
		if g.hdr[1] == 0 { // a data frame carries its payload
			g.left = int64(binary.BigEndian.Uint32(g.hdr[8:12]))
		}
	}
	if len(g.pend) > 0 {
		n := copy(p, g.pend)
		g.pend = g.pend[n:]
		return n, nil
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.r.Read(p)
	g.left -= int64(n)
	if err == io.EOF && g.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// guestConn is the guest's pipe with reads through a GuestReader.
type guestConn struct {
	io.Reader
	w io.Writer
}

func (c guestConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c guestConn) Close() error                { return nil }

// NewGuestSession starts a guest session reading through gr and writing
// to w. After a resync the caller acknowledges (Ack) and starts the next
// session on the same reader.
func NewGuestSession(gr *GuestReader, w io.Writer) (*Guest, error) {
	s, err := yamux.Server(&coalescer{ReadWriteCloser: guestConn{Reader: gr, w: w}}, config())
	if err != nil {
		return nil, fmt.Errorf("serialmux: start session: %w", err)
	}
	return &Guest{sess: s}, nil
}

// Ack answers a resync marker; the caller writes it only once the old
// session's writer has stopped (its session is closed).
func Ack(w io.Writer, nonce [8]byte) error {
	_, err := w.Write(marker(tagAck, nonce))
	return err
}

// pipeReader is a host pipe whose first bytes were read ahead by the
// resync's scanner.
type pipeReader struct {
	io.ReadWriteCloser
	r io.Reader
}

func (p pipeReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// NewHostResync starts a host session on a pipe whose guest already had
// one (a VM restored from a memory snapshot): it sends a resync marker,
// discards what the old session still sends until the guest acknowledges
// it, and then starts a fresh session. ctx bounds the wait.
func NewHostResync(ctx context.Context, pipe io.ReadWriteCloser) (*Host, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	if _, err := pipe.Write(marker(tagReset, nonce)); err != nil {
		return nil, fmt.Errorf("serialmux: send resync: %w", err)
	}
	want := marker(tagAck, nonce)
	br := bufio.NewReaderSize(pipe, 64<<10)
	done := make(chan error, 1)
	go func() {
		var win []byte
		for {
			b, err := br.ReadByte()
			if err != nil {
				done <- err
				return
			}
			win = append(win, b)
			if len(win) > markerSize {
				win = win[1:]
			}
			if len(win) == markerSize && string(win) == string(want) {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("serialmux: wait for the guest's resync answer: %w", err)
		}
	case <-ctx.Done():
		pipe.Close() // ends the scanner
		return nil, fmt.Errorf("serialmux: the guest did not answer the resync: %w", context.Cause(ctx))
	}
	s, err := yamux.Client(&coalescer{ReadWriteCloser: pipeReader{ReadWriteCloser: pipe, r: br}}, config())
	if err != nil {
		return nil, fmt.Errorf("serialmux: start session: %w", err)
	}
	return &Host{sess: s}, nil
}

// IsResync reports whether err ended a session because the host resynced.
func IsResync(err error) bool {
	var e *ErrResync
	return errors.As(err, &e)
}
