package guest

import (
	"context"
	"fmt"
	"time"

	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guestproto"
)

// Frozen is the guest's data disk held frozen by the agent (see
// guestproto.OpFreeze). Thaw ends it; so does closing the stream, the
// caller's context ending, or the process dying (the stream closes and the
// agent thaws), and the agent's own timeout.
type Frozen struct {
	conn *Conn
}

// Freeze syncs and freezes the guest's data disk and returns once it is
// frozen. The agent thaws on its own after timeout.
func (c *Client) Freeze(ctx context.Context, timeout time.Duration) (*Frozen, error) {
	conn, err := c.Open(ctx, &guestproto.Request{Op: guestproto.OpFreeze, Freeze: &guestproto.FreezeRequest{TimeoutMS: timeout.Milliseconds()}})
	if err != nil {
		return nil, err
	}
	for {
		t, p, err := conn.ReadFrame()
		if err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("freeze: %w", context.Cause(ctx))
			}
			return nil, fmt.Errorf("freeze: %w: %w", err, errdefs.ErrUnavailable)
		}
		switch t {
		case guestproto.FrameData:
			return &Frozen{conn: conn}, nil
		case guestproto.FrameJSON:
			conn.Close()
			if _, err := DecodeResponse(p); err != nil {
				return nil, fmt.Errorf("freeze the guest file system: %w", err)
			}
			return nil, fmt.Errorf("freeze: the agent ended without freezing: %w", errdefs.ErrInternal)
		}
	}
}

// Thaw asks the agent to thaw and returns its account. It fails when the
// agent had already thawed on its own (a copy made meanwhile may be
// inconsistent) or cannot say. It waits at most 30 s for the answer.
func (f *Frozen) Thaw() (*guestproto.FreezeResult, error) {
	defer f.conn.Close()
	f.conn.c.SetDeadline(time.Now().Add(30 * time.Second))
	// A failed write is not the end: an agent that thawed on its own has
	// sent its answer already.
	werr := f.conn.WriteFrame(guestproto.FrameDataEOF, nil)
	for {
		t, p, err := f.conn.ReadFrame()
		if err != nil {
			if werr != nil {
				err = werr
			}
			return nil, fmt.Errorf("thaw: no answer from the agent: %w: %w", err, errdefs.ErrUnavailable)
		}
		if t != guestproto.FrameJSON {
			continue
		}
		r, err := DecodeResponse(p)
		if err != nil {
			return nil, fmt.Errorf("thaw: %w", err)
		}
		if r.Freeze == nil {
			return nil, fmt.Errorf("thaw: the agent sent no freeze result: %w", errdefs.ErrInternal)
		}
		if r.Freeze.AutoThawed {
			return r.Freeze, fmt.Errorf("the guest thawed its file system on its own after %d ms, before the copy ended: the copy may be inconsistent: %w", r.Freeze.FrozenMS, errdefs.ErrTimeout)
		}
		return r.Freeze, nil
	}
}

// Close drops the stream without a thaw request: the agent thaws when it
// sees the stream close.
func (f *Frozen) Close() { f.conn.Close() }
