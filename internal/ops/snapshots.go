package ops

import (
	"context"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/workspace"
)

func init() { All = append(All, snapshotOps...) }

// snapshotOps are named snapshots, reset and fork.
var snapshotOps = []Op{
	{
		Name: "snapshot_create", Summary: "Take a named snapshot of a workspace (its disk, and with memory its running processes)",
		Guide: "Copies the workspace's whole writable disk (/workspace and every change to the root file system) as it is now, running or stopped. " +
			"A running guest's file system is frozen for the copy only: commands keep running. The copy costs what the disk holds, not its size. " +
			"With memory=true (a running workspace, QEMU backend) the VM is paused for a moment and its memory and device state are saved with the disk: " +
			"a reset to it or a fork of it resumes the processes, shells and services that ran instead of booting. " +
			"Go back to it with workspace_reset, or make new workspaces from it with workspace_fork.",
		CLI: "workspace snapshot create", Go: "Workspace.SnapshotCreate", Python: "Workspace.snapshot_create", Method: "POST", Path: "/v1/workspaces/{workspace}/snapshots",
		Request: api.SnapshotCreateRequest{}, Result: api.Snapshot{},
		ArgsDoc: map[string]string{
			"name":   "The snapshot's name (1-63 characters a-z, 0-9, '.', '_' or '-'), unique in its workspace; \"baseline\" is taken.",
			"memory": "Also save the running VM's memory and device state (QEMU): restoring it resumes the running processes. It restores only on the same QEMU version, accelerator, CPU model, CPUs and memory size.",
		},
		local: bind(func(ctx context.Context, m *m, r api.SnapshotCreateRequest, _ IO) (*api.Snapshot, error) {
			return m.SnapshotCreateWith(ctx, r.Workspace, r.Name, workspace.SnapshotOptions{Memory: r.Memory})
		}),
	},
	{
		Name: "snapshot_list", Summary: "List a workspace's snapshots",
		Guide: "Returns the workspace's snapshots, oldest first, with their size on the host; \"baseline\" is the state right after create.",
		CLI:   "workspace snapshot list", Go: "Workspace.SnapshotList", Python: "Workspace.snapshot_list", Method: "GET", Path: "/v1/workspaces/{workspace}/snapshots",
		Request: api.WorkspaceRequest{}, Result: api.SnapshotList{}, ReadOnly: true, Idempotent: true,
		local: bind(func(ctx context.Context, m *m, r api.WorkspaceRequest, _ IO) (*api.SnapshotList, error) {
			return m.SnapshotList(ctx, r.Workspace)
		}),
	},
	{
		Name: "snapshot_show", Summary: "Show one snapshot",
		Guide: "Returns a snapshot's metadata: when it was taken, its size, its kind and what restoring it needs.",
		CLI:   "workspace snapshot show", Go: "Workspace.SnapshotShow", Python: "Workspace.snapshot_show", Method: "GET", Path: "/v1/workspaces/{workspace}/snapshots/{name}",
		Request: api.SnapshotRequest{}, Result: api.Snapshot{}, ReadOnly: true, Idempotent: true,
		ArgsDoc: map[string]string{"name": "The snapshot's name (see snapshot_list)."},
		local: bind(func(ctx context.Context, m *m, r api.SnapshotRequest, _ IO) (*api.Snapshot, error) {
			return m.SnapshotShow(ctx, r.Workspace, r.Name)
		}),
	},
	{
		Name: "snapshot_remove", Summary: "Remove a snapshot",
		Guide: "Frees the snapshot's space on the host. The baseline snapshot stays as long as its workspace.",
		CLI:   "workspace snapshot rm", Go: "Workspace.SnapshotRemove", Python: "Workspace.snapshot_remove", Method: "DELETE", Path: "/v1/workspaces/{workspace}/snapshots/{name}",
		Request: api.SnapshotRequest{}, Result: api.Snapshot{}, Destructive: true,
		ArgsDoc: map[string]string{"name": "The snapshot's name (see snapshot_list)."},
		local: bind(func(ctx context.Context, m *m, r api.SnapshotRequest, _ IO) (*api.Snapshot, error) {
			return m.SnapshotRemove(ctx, r.Workspace, r.Name)
		}),
	},
	{
		Name: "workspace_reset", Summary: "Put a workspace's disk back to a snapshot",
		Guide: "Replaces the whole writable disk with the snapshot's (to, default \"baseline\": the state right after create). A running workspace reboots on it; a stopped one stays stopped. " +
			"A memory snapshot instead resumes the processes it saved, whether the workspace was running or stopped, with the clock set, the random pool reseeded and the agent channel re-established. " +
			"It refuses while commands, shells or services run unless force=true, which ends them; services defined now start again. The command log is kept, with an entry for the reset; workspace_diff still compares against the create-time baseline.",
		CLI: "workspace reset", Go: "Workspace.Reset", Python: "Workspace.reset", Method: "POST", Path: "/v1/workspaces/{workspace}/reset",
		Request: api.ResetRequest{}, Result: api.Workspace{}, Destructive: true, Idempotent: true,
		ArgsDoc: map[string]string{
			"to":    "The snapshot to go back to: \"baseline\" (the state right after create) or a name from snapshot_list.",
			"force": "Reset even while commands, shells or services run: they end (services start again).",
		},
		local: bind(func(ctx context.Context, m *m, r api.ResetRequest, _ IO) (*api.Workspace, error) {
			return m.Reset(ctx, r.Workspace, workspace.ResetOptions{To: r.To, Force: r.Force})
		}),
	},
	{
		Name: "workspace_fork", Summary: "Make new workspaces from a workspace's snapshot",
		Guide: "Creates count new workspaces (name, or name-1 … name-N) from the snapshot from, or from the workspace's disk as it is now, and boots them. " +
			"Each has its own id, disk, hostname and machine-id. A fork of a memory snapshot resumes its processes, then gets a new machine-id and hostname and a reseeded random pool. workspace_diff in a fork compares against its parent's baseline unless rebaseline=true.",
		CLI: "workspace fork", Go: "Workspace.Fork", Python: "Workspace.fork", Method: "POST", Path: "/v1/workspaces/{workspace}/fork",
		Request: api.ForkRequest{}, Result: api.ForkResult{},
		ArgsDoc: map[string]string{
			"name":          "Name of the new workspace; with count > 1 the forks are name-1 … name-N. Must be unique.",
			"from_snapshot": "The snapshot of this workspace to fork (see snapshot_list); empty: its disk as it is now.",
			"count":         "How many forks to make.",
			"rebaseline":    "Record each fork's own diff baseline (and reset baseline) when it boots, instead of keeping its parent's.",
		},
		local: bind(func(ctx context.Context, m *m, r api.ForkRequest, _ IO) (*api.ForkResult, error) {
			l, err := m.Fork(ctx, r.Workspace, workspace.ForkOptions{Name: r.Name, From: r.From, Count: r.Count, Rebaseline: r.Rebaseline})
			return &api.ForkResult{Workspaces: nonNil(l)}, err
		}),
	},
}
