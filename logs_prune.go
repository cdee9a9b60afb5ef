package hearth

import (
	"context"
	"fmt"

	"github.com/hearthvm/hearth/internal/workspace"
)

// PruneLogsOptions select what PruneLogs removes: finished commands'
// output, oldest first (KeepLast, OlderThan, MaxBytes).
type PruneLogsOptions = workspace.PruneLogsOptions

// PruneLogsResult says what PruneLogs removed.
type PruneLogsResult = workspace.PruneLogsResult

// PruneLogs removes the kept output of the workspace's finished commands,
// oldest first; their entries stay in the log, marked pruned. Running
// commands are never pruned.
//
// Not yet part of the operation table: a remote Client answers
// ErrNotImplemented until it is wired there.
func (w *Workspace) PruneLogs(ctx context.Context, o PruneLogsOptions) (*PruneLogsResult, error) {
	p, ok := w.c.m.(interface {
		PruneLogs(ctx context.Context, ref string, o PruneLogsOptions) (*PruneLogsResult, error)
	})
	if !ok {
		return nil, fmt.Errorf("pruning a command log through `hearth serve` is not available yet: run `hearth workspace logs --prune` on the server's host: %w", ErrNotImplemented)
	}
	return p.PruneLogs(ctx, w.ref, o)
}
