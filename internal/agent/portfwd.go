package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Published ports: the host's supervisor accepts a TCP connection and opens
// a port_connect stream; the agent dials 127.0.0.1:PORT inside the guest and
// then copies raw bytes both ways. The connection is made by the agent (PID
// 1), so a service bound only to the guest's loopback is reachable and the
// guest needs no network interface.

// portDialTimeout bounds the agent's dial inside the guest. It is long
// enough to ride out SYN retransmissions (1 s, 2 s, 4 s, 8 s) when a busy
// server's accept queue is full; the host's own deadline may end it sooner.
const portDialTimeout = 25 * time.Second

// portCopyBuf is the copy buffer per direction.
const portCopyBuf = 256 << 10

func init() {
	register(guestproto.OpPortConnect, handlePortConnect)
}

func handlePortConnect(ctx context.Context, s *Server, st *Stream, req *guestproto.Request) (*guestproto.Response, error) {
	if req.Port == nil || req.Port.Port < 1 || req.Port.Port > 65535 {
		return nil, errorf(guestproto.CodeInvalid, "port_connect: want a guest port from 1 to 65535")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(req.Port.Port))
	d := net.Dialer{Timeout: portDialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		// A server listening on the IPv6 loopback only.
		if c6, err6 := d.DialContext(ctx, "tcp", net.JoinHostPort("::1", strconv.Itoa(req.Port.Port))); err6 == nil {
			c, err = c6, nil
		}
	}
	if err != nil {
		return nil, errorf(guestproto.CodePrecondition, "nothing accepts connections on %s in the guest: %v", addr, unwrapDialErr(err))
	}
	defer c.Close()
	if err := st.WriteJSON(&guestproto.Response{}); err != nil {
		return nil, err
	}
	st.responded = true
	proxyStream(st.Conn(), c)
	return nil, nil
}

func unwrapDialErr(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// proxyStream copies both ways between the host stream and a guest
// connection until both directions have ended, half-closing each side
// at its peer's EOF.
func proxyStream(stream, conn net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(conn, stream)
	}()
	copyHalf(stream, conn)
	wg.Wait()
}

// copyHalf copies src to dst, then half-closes dst's sending side (or
// closes it when it cannot half-close). A failed write stops reading src.
func copyHalf(dst, src net.Conn) {
	buf := make([]byte, portCopyBuf)
	_, err := io.CopyBuffer(dst, onlyReader{src}, buf)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
	if err != nil {
		src.Close()
	}
}

// onlyReader hides a reader's WriterTo/ReaderFrom so CopyBuffer uses our
// buffer size.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
