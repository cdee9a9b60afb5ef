package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// ExecIO connects a guest process to host readers and writers.
type ExecIO struct {
	// Stdin, when set, is streamed to the process's stdin; its EOF closes
	// the process's stdin. When nil the process reads /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output as it arrives; nil
	// discards it. They are written from one goroutine, never concurrently,
	// so both may be the same writer.
	Stdout, Stderr io.Writer
}

// Exec runs a process in the guest and returns its result. Output is
// written to stdio as it arrives, so memory stays bounded for any output
// size. A non-zero exit is a result, not an error. Cancelling ctx kills the
// process (its whole group) and returns ctx's error; a lost connection is an
// error wrapping errdefs.ErrUnavailable.
func (c *Client) Exec(ctx context.Context, req *guestproto.ExecRequest, stdio ExecIO) (*guestproto.ExecResult, error) {
	p, err := c.Start(ctx, req, stdio)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

// Process is a guest process started by Start.
type Process struct {
	conn *Conn
	ctx  context.Context
	done chan struct{}

	res *guestproto.ExecResult
	err error
}

// Start starts a process in the guest. Its output is copied to stdio in the
// background until it exits; call Wait for the result.
func (c *Client) Start(ctx context.Context, req *guestproto.ExecRequest, stdio ExecIO) (*Process, error) {
	if req == nil {
		return nil, fmt.Errorf("exec: no request: %w", errdefs.ErrInvalidArgument)
	}
	r := *req
	r.Stdin = stdio.Stdin != nil
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", describe(&r), err)
	}
	p := &Process{conn: &Conn{c: nc}, ctx: ctx, done: make(chan struct{})}
	// On cancellation ask the agent to kill the group, then drop the
	// stream (which makes the agent kill it too, should the message not
	// get through).
	p.conn.stop = context.AfterFunc(ctx, func() {
		nc.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
		p.conn.WriteJSON(&guestproto.Control{Signal: "KILL"})
		nc.Close()
	})
	if err := p.conn.WriteJSON(&guestproto.Request{Op: guestproto.OpExec, Exec: &r}); err != nil {
		p.conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exec %s: %w", describe(&r), context.Cause(ctx))
		}
		return nil, fmt.Errorf("exec %s: send request: %w: %w", describe(&r), err, errdefs.ErrUnavailable)
	}
	if stdio.Stdin != nil {
		go p.pumpStdin(stdio.Stdin)
	}
	go p.readLoop(describe(&r), orDiscard(stdio.Stdout), orDiscard(stdio.Stderr))
	return p, nil
}

// Signal delivers a signal ("INT", "TERM", "KILL", "HUP", ...) to the
// process's group.
func (p *Process) Signal(name string) error {
	select {
	case <-p.done:
		return fmt.Errorf("signal %s: process already exited: %w", name, errdefs.ErrFailedPrecondition)
	default:
	}
	if err := p.conn.WriteJSON(&guestproto.Control{Signal: name}); err != nil {
		return fmt.Errorf("signal %s: %w: %w", name, err, errdefs.ErrUnavailable)
	}
	return nil
}

// Wait waits for the process to exit and its output to be copied, and
// returns its result.
func (p *Process) Wait() (*guestproto.ExecResult, error) {
	<-p.done
	return p.res, p.err
}

// Done is closed when the process has exited (or the stream failed).
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) readLoop(what string, stdout, stderr io.Writer) {
	defer close(p.done)
	defer p.conn.Close()
	var werr error
	write := func(w io.Writer, b []byte, name string) {
		if werr != nil {
			return
		}
		if _, err := w.Write(b); err != nil {
			werr = fmt.Errorf("write %s: %w", name, err)
			// Nobody takes the output any more: stop the process.
			p.conn.WriteJSON(&guestproto.Control{Signal: "KILL"})
		}
	}
	for {
		t, b, err := p.conn.ReadFrame()
		if err != nil {
			if p.ctx.Err() != nil {
				p.err = fmt.Errorf("exec %s: %w", what, context.Cause(p.ctx))
			} else {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				p.err = fmt.Errorf("exec %s: connection to the guest agent lost: %w: %w", what, err, errdefs.ErrUnavailable)
			}
			return
		}
		switch t {
		case guestproto.FrameStdout:
			write(stdout, b, "stdout")
		case guestproto.FrameStderr:
			write(stderr, b, "stderr")
		case guestproto.FrameJSON:
			resp, err := DecodeResponse(b)
			switch {
			case err != nil:
				p.err = fmt.Errorf("exec %s: %w", what, err)
			case resp.Exec == nil:
				p.err = fmt.Errorf("exec %s: agent sent no exec result: %w", what, errdefs.ErrInternal)
			default:
				p.res = resp.Exec
				if werr != nil {
					p.err = fmt.Errorf("exec %s: %w", what, werr)
				}
			}
			return
		}
	}
}

// pumpStdin streams r as stdin frames, then stdin EOF. It ends early when
// the process is done.
func (p *Process) pumpStdin(r io.Reader) {
	buf := make([]byte, guestproto.ChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := p.conn.WriteFrame(guestproto.FrameStdin, buf[:n]); werr != nil {
				return
			}
		}
		select {
		case <-p.done:
			return
		default:
		}
		if err != nil {
			// A read error other than EOF also ends the process's input.
			p.conn.WriteFrame(guestproto.FrameStdinEOF, nil)
			return
		}
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// describe names a request in errors: its argv[0] or its shell command.
func describe(r *guestproto.ExecRequest) string {
	s := r.Shell
	if len(r.Argv) > 0 {
		s = r.Argv[0]
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q", s)
}
