package guest

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/hearthvm/hearth/internal/guestproto"
)

// Restored fixes a guest just restored from a memory snapshot (see
// guestproto.OpRestored): the clock is stepped to the host's, the random
// pool reseeded with host entropy, and with id set (a fork, or any
// restore: the agent changes nothing when the disk already belongs to id)
// the machine-id and hostname made the workspace's.
func (c *Client) Restored(ctx context.Context, id, hostname string) (*guestproto.RestoredResult, error) {
	ent := make([]byte, 64)
	if _, err := rand.Read(ent); err != nil {
		return nil, fmt.Errorf("host entropy: %w", err)
	}
	resp, err := c.Call(ctx, &guestproto.Request{Op: guestproto.OpRestored, Restored: &guestproto.RestoredRequest{
		UnixNanos: time.Now().UnixNano(), Entropy: ent, ID: id, Hostname: hostname,
	}})
	if err != nil {
		return nil, fmt.Errorf("fix the restored guest (clock, randomness, identity): %w", err)
	}
	if resp.Restored == nil {
		return &guestproto.RestoredResult{}, nil
	}
	return resp.Restored, nil
}
