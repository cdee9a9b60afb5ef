package workspace

import (
	"context"
	"fmt"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/errdefs"
)

// CommandWait waits up to timeout for a logged command to finish and
// returns its result (status "running" if it is still running).
func (m *Manager) CommandWait(ctx context.Context, ref, id string, timeout time.Duration) (*api.ExecResult, error) {
	return nil, fmt.Errorf("command wait: %w", errdefs.ErrNotImplemented)
}

// CommandRead returns a slice of a command's stdout or stderr from offset,
// at most limit bytes (default 64 KiB).
func (m *Manager) CommandRead(ctx context.Context, ref, id, stream string, offset int64, limit int) (*api.CommandOutput, error) {
	return nil, fmt.Errorf("command read: %w", errdefs.ErrNotImplemented)
}

// CommandKill signals a running command's process group (default KILL).
func (m *Manager) CommandKill(ctx context.Context, ref, id, signal string) (*api.ExecResult, error) {
	return nil, fmt.Errorf("command kill: %w", errdefs.ErrNotImplemented)
}
