// Package guest is the host side of the guest agent protocol: it dials a
// VM's hybrid-vsock socket, checks the agent's version, and makes typed
// calls. It works the same for every backend (see package vmm).
package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/serialmux"
)

// Client calls the agent of one VM. Its zero value is not usable; set Socket.
type Client struct {
	// Socket is the VM's hybrid-vsock Unix socket (vmm.Machine.AgentSocket).
	Socket string
	// Port is the agent's port; guestproto.AgentPort when zero.
	Port uint32
	// Dial replaces the dialer (tests); it must return a stream to the agent.
	Dial func(ctx context.Context) (net.Conn, error)
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx)
	}
	port := c.Port
	if port == 0 {
		port = guestproto.AgentPort
	}
	conn, err := serialmux.DialOnce(ctx, c.Socket, port)
	if err != nil {
		return nil, fmt.Errorf("connect to guest agent: %w: %w", err, errdefs.ErrUnavailable)
	}
	return conn, nil
}

// Conn is one operation's stream.
type Conn struct {
	c    net.Conn
	wmu  sync.Mutex
	rbuf []byte
	stop func() bool
}

// Open dials the agent and sends req. The stream is closed if ctx ends
// before the caller closes it.
func (c *Client) Open(ctx context.Context, req *guestproto.Request) (*Conn, error) {
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	conn := &Conn{c: nc}
	conn.stop = context.AfterFunc(ctx, func() { nc.Close() })
	if err := conn.WriteJSON(req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send %s request: %w", req.Op, err)
	}
	return conn, nil
}

// WriteFrame sends a frame; safe for concurrent use.
func (c *Conn) WriteFrame(t guestproto.FrameType, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return guestproto.WriteFrame(c.c, t, p)
}

// WriteJSON sends v as a FrameJSON; safe for concurrent use.
func (c *Conn) WriteJSON(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return guestproto.WriteJSON(c.c, v)
}

// ReadFrame reads the next frame; the payload is valid until the next call.
func (c *Conn) ReadFrame() (guestproto.FrameType, []byte, error) {
	t, p, err := guestproto.ReadFrame(c.c, c.rbuf)
	if err == nil && cap(p) > cap(c.rbuf) && cap(p) <= 1<<20 {
		c.rbuf = p[:0]
	}
	return t, p, err
}

// CloseWrite half-closes the stream when the transport allows it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close ends the stream.
func (c *Conn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.c.Close()
}

// DecodeResponse parses a final FrameJSON and turns a guest error into a Go
// error of the matching errdefs kind.
func DecodeResponse(p []byte) (*guestproto.Response, error) {
	var r guestproto.Response
	if err := json.Unmarshal(p, &r); err != nil {
		return nil, fmt.Errorf("bad response from agent: %w", err)
	}
	if r.Error != nil {
		return &r, ProtoError(r.Error)
	}
	return &r, nil
}

// ProtoError maps a guest error to an errdefs kind.
func ProtoError(e *guestproto.Error) error {
	kind := errdefs.ErrInternal
	switch e.Code {
	case guestproto.CodeInvalid:
		kind = errdefs.ErrInvalidArgument
	case guestproto.CodeNotFound:
		kind = errdefs.ErrNotFound
	case guestproto.CodeExists:
		kind = errdefs.ErrAlreadyExists
	case guestproto.CodeLimit:
		kind = errdefs.ErrResourceExhausted
	case guestproto.CodePrecondition:
		kind = errdefs.ErrFailedPrecondition
	case guestproto.CodeUnsupported:
		kind = errdefs.ErrNotImplemented
	}
	return fmt.Errorf("%s: %w", e.Message, kind)
}

// Call performs an operation that streams no data: it sends req and
// returns the final response.
func (c *Client) Call(ctx context.Context, req *guestproto.Request) (*guestproto.Response, error) {
	conn, err := c.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", req.Op, context.Cause(ctx))
			}
			return nil, fmt.Errorf("%s: read response: %w: %w", req.Op, err, errdefs.ErrUnavailable)
		}
		if t == guestproto.FrameJSON {
			return DecodeResponse(p)
		}
	}
}

// Hello performs the version handshake and refuses an agent that speaks
// another protocol version.
func (c *Client) Hello(ctx context.Context) (*guestproto.Hello, error) {
	r, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpHello})
	if err != nil {
		return nil, err
	}
	if r.Hello == nil {
		return nil, errors.New("agent sent an empty hello")
	}
	if r.Hello.ProtocolVersion != guestproto.ProtocolVersion {
		return nil, fmt.Errorf("guest agent speaks protocol %d, this hearth speaks %d: restart the VM so it gets the matching agent: %w",
			r.Hello.ProtocolVersion, guestproto.ProtocolVersion, errdefs.ErrFailedPrecondition)
	}
	return r.Hello, nil
}

// WaitReady retries Hello until it succeeds, ctx ends, or exited is closed
// (the VMM died). Each attempt is bounded so a half-open connection cannot
// stall it.
func (c *Client) WaitReady(ctx context.Context, exited <-chan struct{}) (*guestproto.Hello, error) {
	var last error
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := c.Hello(actx)
		cancel()
		if err == nil {
			return h, nil
		}
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			return nil, err
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("guest agent did not answer: %w (last error: %v)", context.Cause(ctx), last)
		case <-exited:
			return nil, fmt.Errorf("VMM exited before the guest agent answered")
		case <-time.After(time.Duration(min(5*(attempt+1), 50)) * time.Millisecond):
		}
	}
}
