// Package serialmux carries many host<->guest streams over one byte pipe (a
// virtio-serial port) and offers them on the host as a Unix socket that
// speaks Firecracker's hybrid-vsock handshake: a client writes
// "CONNECT <port>\n", reads "OK <n>\n", then has a raw stream to the guest
// agent listening on that port. Host code therefore dials QEMU and
// Firecracker guests the same way.
//
// Streams are yamux streams, which gives each one its own flow-control
// window: a slow reader stalls only its own stream.
package serialmux

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false // a paused or slow (TCG) guest must not be declared dead
	c.ConnectionWriteTimeout = 5 * time.Minute
	// No open timeout: yamux closes the whole session (every stream, for
	// good) when one stream's open is not acknowledged in time, and a guest
	// starved of CPU (20 guests running 100 commands each under software
	// emulation on two cores) can take minutes to acknowledge. Callers
	// bound their own waits with contexts and deadlines.
	c.StreamOpenTimeout = 0
	c.MaxStreamWindowSize = 1 << 20
	c.LogOutput = io.Discard
	return c
}

// coalescer joins each yamux frame header with the body that follows it
// into one write to the pipe. yamux's send loop, the pipe's only writer,
// writes a 12-byte header and then the body separately; on a virtio-serial
// port each write is a round trip through the VMM, so halving them matters.
type coalescer struct {
	io.ReadWriteCloser
	hdr []byte
	buf []byte
}

const yamuxHeaderSize = 12

func (c *coalescer) Write(p []byte) (int, error) {
	if c.hdr == nil && len(p) == yamuxHeaderSize && p[1] == 0 /* data */ && binary.BigEndian.Uint32(p[8:12]) > 0 {
		c.hdr = append(c.buf[:0], p...)
		return len(p), nil
	}
	if c.hdr == nil {
		return c.ReadWriteCloser.Write(p)
	}
	b := append(c.hdr, p...)
	c.hdr = nil
	n, err := c.ReadWriteCloser.Write(b)
	if cap(b) <= 1<<20 {
		c.buf = b[:0]
	}
	n -= yamuxHeaderSize
	if n < 0 {
		n = 0
	}
	return n, err
}

// Host owns the host end of the pipe.
type Host struct {
	sess *yamux.Session
}

// NewHost starts a multiplexing session over pipe, the host end.
func NewHost(pipe io.ReadWriteCloser) (*Host, error) {
	s, err := yamux.Client(&coalescer{ReadWriteCloser: pipe}, config())
	if err != nil {
		return nil, fmt.Errorf("serialmux: start session: %w", err)
	}
	return &Host{sess: s}, nil
}

// Done is closed when the session ends (the pipe broke or was closed).
func (h *Host) Done() <-chan struct{} { return h.sess.CloseChan() }

// Close ends the session and every stream.
func (h *Host) Close() error { return h.sess.Close() }

// Open opens a stream to the guest's port.
func (h *Host) Open(port uint32) (net.Conn, error) {
	st, err := h.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("serialmux: open stream: %w", err)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], port)
	if _, err := st.Write(b[:]); err != nil {
		st.Close()
		return nil, fmt.Errorf("serialmux: open stream: %w", err)
	}
	return st, nil
}

// Serve accepts hybrid-vsock clients on ln until ctx ends or the session
// does. Each client's "CONNECT <port>" becomes a stream.
func (h *Host) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		select {
		case <-ctx.Done():
		case <-h.Done():
		}
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case <-h.Done():
				return errors.New("serialmux: guest session ended")
			default:
			}
			return err
		}
		go h.handle(c)
	}
}

func (h *Host) handle(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 64)
	port, err := ReadConnect(br)
	if err != nil {
		fmt.Fprintf(c, "ERR %v\n", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	st, err := h.Open(port)
	if err != nil {
		return
	}
	defer st.Close()
	if _, err := fmt.Fprintf(c, "OK %d\n", port); err != nil {
		return
	}
	Proxy(c, st, br)
}

// ReadConnect parses a "CONNECT <port>\n" line.
func ReadConnect(br *bufio.Reader) (uint32, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read CONNECT line: %w", err)
	}
	if len(line) > 32 {
		return 0, errors.New("CONNECT line too long")
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "CONNECT" {
		return 0, fmt.Errorf("want \"CONNECT <port>\", got %q", strings.TrimSpace(line))
	}
	p, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", f[1])
	}
	return uint32(p), nil
}

// Proxy copies both ways between a client and a stream until both
// directions end. Bytes already buffered in br are sent first.
func Proxy(client net.Conn, st net.Conn, br *bufio.Reader) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			st.Write(b)
		}
		io.Copy(st, client)
		st.Close() // yamux Close is a half-close: we can still read
	}()
	io.Copy(client, st)
	if cw, ok := client.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		client.Close()
	}
	wg.Wait()
}

// Guest is the guest end of the pipe.
type Guest struct {
	sess *yamux.Session
}

// NewGuest starts a session over pipe, the guest end.
func NewGuest(pipe io.ReadWriteCloser) (*Guest, error) {
	s, err := yamux.Server(&coalescer{ReadWriteCloser: pipe}, config())
	if err != nil {
		return nil, fmt.Errorf("serialmux: start session: %w", err)
	}
	return &Guest{sess: s}, nil
}

// Accept returns the next stream and the port the host asked for.
func (g *Guest) Accept() (uint32, net.Conn, error) {
	st, err := g.sess.AcceptStream()
	if err != nil {
		return 0, nil, err
	}
	var b [4]byte
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(st, b[:]); err != nil {
		st.Close()
		return 0, nil, fmt.Errorf("serialmux: read port: %w", err)
	}
	st.SetReadDeadline(time.Time{})
	return binary.BigEndian.Uint32(b[:]), st, nil
}

// Close ends the session.
func (g *Guest) Close() error { return g.sess.Close() }

// Done is closed when the session ends.
func (g *Guest) Done() <-chan struct{} { return g.sess.CloseChan() }

// Dial connects to a hybrid-vsock Unix socket (Firecracker's, or a Host's
// Serve) and performs the CONNECT handshake for port. It retries until ctx
// ends while the guest is not yet listening, since a connection refused by
// an agent still booting is expected.
func Dial(ctx context.Context, path string, port uint32) (net.Conn, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		c, err := dialOnce(ctx, path, port)
		if err == nil {
			return c, nil
		}
		lastErr = err
		delay := time.Duration(min(10*(attempt+1), 100)) * time.Millisecond
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to guest port %d via %s: %w (last error: %v)", port, path, context.Cause(ctx), lastErr)
		case <-time.After(delay):
		}
	}
}

// handshakeTimeout bounds the wait for the guest's answer to CONNECT.
const handshakeTimeout = 60 * time.Second

// DialOnce is Dial without retries.
func DialOnce(ctx context.Context, path string, port uint32) (net.Conn, error) {
	return dialOnce(ctx, path, port)
}

func dialOnce(ctx context.Context, path string, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	// The answer comes from the guest: a guest busy with many streams
	// under software emulation took more than 5 s (the bound this had)
	// to answer some of 100 concurrent connects. A dead supervisor is
	// seen at once (the dial fails); the caller's context bounds the
	// rest.
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, err
	}
	// Read the answer byte by byte so no stream data is consumed.
	var line []byte
	var b [1]byte
	for len(line) < 64 {
		if _, err := c.Read(b[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if !strings.HasPrefix(string(line), "OK ") {
		c.Close()
		return nil, fmt.Errorf("handshake: guest answered %q", string(line))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
