package guest

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// ServiceStart registers and starts a service (or only registers it when
// spec.Stopped).
func (c *Client) ServiceStart(ctx context.Context, spec *guestproto.ServiceSpec) (*guestproto.ServiceInfo, error) {
	return c.serviceCall(ctx, guestproto.OpServiceStart, &guestproto.ServiceRequest{Name: spec.Name, Spec: spec})
}

// ServiceList returns every service, sorted by name.
func (c *Client) ServiceList(ctx context.Context) ([]guestproto.ServiceInfo, error) {
	r, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpServiceList})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return r.Services, nil
}

// ServiceShow returns one service.
func (c *Client) ServiceShow(ctx context.Context, name string) (*guestproto.ServiceInfo, error) {
	return c.serviceCall(ctx, guestproto.OpServiceShow, &guestproto.ServiceRequest{Name: name})
}

// ServiceStop stops a service: signal (default TERM), then SIGKILL after
// timeout (0: the agent's default).
func (c *Client) ServiceStop(ctx context.Context, name, signal string, timeout time.Duration) (*guestproto.ServiceInfo, error) {
	return c.serviceCall(ctx, guestproto.OpServiceStop, &guestproto.ServiceRequest{Name: name, Signal: signal, TimeoutMS: timeout.Milliseconds()})
}

// ServiceRestart stops a service if it runs and starts it again.
func (c *Client) ServiceRestart(ctx context.Context, name string) (*guestproto.ServiceInfo, error) {
	return c.serviceCall(ctx, guestproto.OpServiceRestart, &guestproto.ServiceRequest{Name: name})
}

// ServiceRemove stops a service and forgets it.
func (c *Client) ServiceRemove(ctx context.Context, name string) (*guestproto.ServiceInfo, error) {
	return c.serviceCall(ctx, guestproto.OpServiceRemove, &guestproto.ServiceRequest{Name: name})
}

// ServiceWait waits up to timeout for a service to be ready or to end.
func (c *Client) ServiceWait(ctx context.Context, name string, timeout time.Duration) (*guestproto.ServiceWaitResult, error) {
	ms := timeout.Milliseconds()
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	r, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpServiceWait, Service: &guestproto.ServiceRequest{Name: name, TimeoutMS: ms}})
	if err != nil {
		return nil, fmt.Errorf("wait for service %s: %w", name, err)
	}
	if r.ServiceWait == nil {
		return nil, fmt.Errorf("wait for service %s: agent sent no result: %w", name, errdefs.ErrInternal)
	}
	return r.ServiceWait, nil
}

// ServiceLogs copies a service's kept output (the last tail lines; 0: all)
// to w and, with follow, what follows until the service ends for good or
// ctx ends (then it returns nil).
func (c *Client) ServiceLogs(ctx context.Context, name string, tail int, follow bool, w io.Writer) (*guestproto.ServiceInfo, error) {
	conn, err := c.Open(ctx, &guestproto.Request{Op: guestproto.OpServiceLogs, Service: &guestproto.ServiceRequest{Name: name, Tail: tail, Follow: follow}})
	if err != nil {
		return nil, fmt.Errorf("logs of service %s: %w", name, err)
	}
	defer conn.Close()
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			if follow && ctx.Err() != nil {
				return nil, nil
			}
			return nil, lostStreamErr(ctx, "logs of service "+name, err)
		}
		switch t {
		case guestproto.FrameStdout, guestproto.FrameStderr:
			if _, err := w.Write(p); err != nil {
				return nil, fmt.Errorf("logs of service %s: write: %w", name, err)
			}
		case guestproto.FrameJSON:
			r, err := DecodeResponse(p)
			if err != nil {
				return nil, fmt.Errorf("logs of service %s: %w", name, err)
			}
			return r.Service, nil
		}
	}
}

func (c *Client) serviceCall(ctx context.Context, op guestproto.Op, req *guestproto.ServiceRequest) (*guestproto.ServiceInfo, error) {
	r, err := c.Call(ctx, &guestproto.Request{Op: op, Service: req})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, req.Name, err)
	}
	if r.Service == nil {
		return nil, fmt.Errorf("%s %s: agent sent no service: %w", op, req.Name, errdefs.ErrInternal)
	}
	return r.Service, nil
}

// PortConnect opens a connection to 127.0.0.1:port inside the guest. The
// returned connection carries the guest connection's bytes; CloseWrite
// half-closes it.
func (c *Client) PortConnect(ctx context.Context, port int) (net.Conn, error) {
	conn, err := c.Open(ctx, &guestproto.Request{Op: guestproto.OpPortConnect, Port: &guestproto.PortRequest{Port: port}})
	if err != nil {
		return nil, fmt.Errorf("connect to guest port %d: %w", port, err)
	}
	t, p, err := conn.ReadFrame()
	if err != nil {
		conn.Close()
		return nil, lostStreamErr(ctx, fmt.Sprintf("connect to guest port %d", port), err)
	}
	if t != guestproto.FrameJSON {
		conn.Close()
		return nil, fmt.Errorf("connect to guest port %d: agent sent a %v frame first: %w", port, t, errdefs.ErrInternal)
	}
	if _, err := DecodeResponse(p); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to guest port %d: %w", port, err)
	}
	// From here on the stream is raw; the context no longer closes it.
	if conn.stop != nil {
		conn.stop()
		conn.stop = nil
	}
	return conn.c, nil
}
