package hearth

import (
	"context"
	"strconv"
	"time"

	"github.com/hearthvm/hearth/api"
)

// PruneLogsOptions select what PruneLogs removes: finished commands'
// output, oldest first.
type PruneLogsOptions struct {
	// KeepLast keeps the output of the last N commands.
	KeepLast int
	// OlderThan prunes only commands started longer ago than this.
	OlderThan time.Duration
	// MaxBytes stops once the whole log takes at most this many bytes (0:
	// prune every command selected).
	MaxBytes int64
}

// PruneLogsResult says what PruneLogs removed.
type PruneLogsResult = api.LogsPruneResult

// PruneLogs removes the kept output of the workspace's finished commands,
// oldest first; their entries stay in the log, marked pruned. Running
// commands are never pruned.
func (w *Workspace) PruneLogs(ctx context.Context, o PruneLogsOptions) (*PruneLogsResult, error) {
	req := api.LogsPruneRequest{Workspace: w.ref, KeepLast: o.KeepLast, OlderThanMS: millis(o.OlderThan)}
	if o.MaxBytes > 0 {
		req.MaxBytes = strconv.FormatInt(o.MaxBytes, 10)
	}
	return invoke[PruneLogsResult](ctx, w.c, "workspace_logs_prune", &req, Streams{})
}
