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

// ShellOpen starts a PTY shell session in the guest.
func (c *Client) ShellOpen(ctx context.Context, req *guestproto.ShellRequest) (*guestproto.ShellInfo, error) {
	if req == nil {
		req = &guestproto.ShellRequest{}
	}
	return c.shellCall(ctx, guestproto.OpShellOpen, req)
}

// ShellWrite sends exact bytes to a session's terminal.
func (c *Client) ShellWrite(ctx context.Context, id string, data []byte) (*guestproto.ShellInfo, error) {
	return c.shellCall(ctx, guestproto.OpShellWrite, &guestproto.ShellRequest{ID: id, Data: data})
}

// ShellRead returns a session's output from cursor on (nil: where the
// previous read ended). With wait > 0 it returns as soon as output exists
// after the cursor, the shell exits, or wait has passed.
func (c *Client) ShellRead(ctx context.Context, id string, cursor *int64, wait time.Duration) (*guestproto.ShellReadResult, error) {
	req := &guestproto.ShellRequest{ID: id, Cursor: cursor, WaitMS: wait.Milliseconds()}
	if wait > 0 && req.WaitMS == 0 {
		req.WaitMS = 1
	}
	r, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpShellRead, Shell: req})
	if err != nil {
		return nil, fmt.Errorf("read shell %s: %w", id, err)
	}
	if r.ShellRead == nil {
		return nil, fmt.Errorf("read shell %s: agent sent no result: %w", id, errdefs.ErrInternal)
	}
	return r.ShellRead, nil
}

// ShellResize sets a session's terminal size.
func (c *Client) ShellResize(ctx context.Context, id string, cols, rows int) (*guestproto.ShellInfo, error) {
	return c.shellCall(ctx, guestproto.OpShellResize, &guestproto.ShellRequest{ID: id, Cols: cols, Rows: rows})
}

// ShellSignal sends a signal (INT, TERM, KILL, HUP, QUIT, TSTP, CONT,
// USR1, USR2) to the foreground process group of a session's terminal.
func (c *Client) ShellSignal(ctx context.Context, id, signal string) (*guestproto.ShellInfo, error) {
	return c.shellCall(ctx, guestproto.OpShellSignal, &guestproto.ShellRequest{ID: id, Signal: signal})
}

// ShellClose ends a session (SIGHUP, then SIGKILL) and frees it.
func (c *Client) ShellClose(ctx context.Context, id string) (*guestproto.ShellInfo, error) {
	return c.shellCall(ctx, guestproto.OpShellClose, &guestproto.ShellRequest{ID: id})
}

// ShellList returns all sessions, oldest first.
func (c *Client) ShellList(ctx context.Context) ([]guestproto.ShellInfo, error) {
	r, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpShellList})
	if err != nil {
		return nil, fmt.Errorf("list shells: %w", err)
	}
	return r.Shells, nil
}

func (c *Client) shellCall(ctx context.Context, op guestproto.Op, req *guestproto.ShellRequest) (*guestproto.ShellInfo, error) {
	r, err := c.Call(ctx, &guestproto.Request{Op: op, Shell: req})
	if err != nil {
		if req.ID != "" {
			return nil, fmt.Errorf("%s %s: %w", op, req.ID, err)
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if r.Shell == nil {
		return nil, fmt.Errorf("%s: agent sent no shell: %w", op, errdefs.ErrInternal)
	}
	return r.Shell, nil
}

// ShellAttach connects a terminal to a session: the session's kept output
// and everything after it is copied to stdout, stdin is sent to the shell,
// and each value from resize ({cols, rows}) resizes the terminal. It
// returns nil when the shell exits or when stdin ends (a detach: the shell
// keeps running). When ctx ends the stream is closed, which also detaches,
// and ShellAttach returns ctx's cause.
func (c *Client) ShellAttach(ctx context.Context, id string, stdin io.Reader, stdout io.Writer, resize <-chan [2]int) error {
	conn, err := c.Open(ctx, &guestproto.Request{Op: guestproto.OpShellAttach, Shell: &guestproto.ShellRequest{ID: id}})
	if err != nil {
		return fmt.Errorf("attach shell %s: %w", id, err)
	}
	defer conn.Close()
	done := make(chan struct{})
	defer close(done)
	if resize != nil {
		go func() {
			for {
				select {
				case <-done:
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					if conn.WriteJSON(&guestproto.Control{Cols: sz[0], Rows: sz[1]}) != nil {
						return
					}
				}
			}
		}()
	}
	if stdin != nil {
		go func() {
			buf := make([]byte, guestproto.ChunkSize)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && conn.WriteFrame(guestproto.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					conn.WriteFrame(guestproto.FrameStdinEOF, nil) // detach
					return
				}
			}
		}()
	}
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			return lostStreamErr(ctx, "attach shell "+id, err)
		}
		switch t {
		case guestproto.FrameStdout, guestproto.FrameStderr:
			if _, err := stdout.Write(p); err != nil {
				return fmt.Errorf("attach shell %s: write output: %w", id, err)
			}
		case guestproto.FrameJSON:
			if _, err := DecodeResponse(p); err != nil {
				return fmt.Errorf("attach shell %s: %w", id, err)
			}
			return nil
		}
	}
}

// lostStreamErr describes a failed read on an operation's stream: ctx's cause
// when ctx ended, otherwise a lost connection.
func lostStreamErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: connection to the guest agent lost: %w: %w", what, err, errdefs.ErrUnavailable)
}
