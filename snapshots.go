package hearth

import (
	"context"

	"github.com/hearthvm/hearth/api"
)

// Snapshot is a named, immutable copy of a workspace's disk (and, of kind
// memory, of its running VM).
type Snapshot = api.Snapshot

// SnapshotList is a workspace's snapshots and the space they take.
type SnapshotList = api.SnapshotList

// SnapshotCreate takes a disk snapshot called name of the workspace,
// running or stopped; a running guest's commands keep running.
func (w *Workspace) SnapshotCreate(ctx context.Context, name string) (*Snapshot, error) {
	return invoke[Snapshot](ctx, w.c, "snapshot_create", &api.SnapshotCreateRequest{Workspace: w.ref, Name: name}, Streams{})
}

// SnapshotCreateMemory takes a memory snapshot called name of the running
// workspace (QEMU): its disk, memory and device state at one instant. A
// reset to it or a fork of it resumes the processes that ran.
func (w *Workspace) SnapshotCreateMemory(ctx context.Context, name string) (*Snapshot, error) {
	return invoke[Snapshot](ctx, w.c, "snapshot_create", &api.SnapshotCreateRequest{Workspace: w.ref, Name: name, Memory: true}, Streams{})
}

// SnapshotList returns the workspace's snapshots, oldest first.
func (w *Workspace) SnapshotList(ctx context.Context) (*SnapshotList, error) {
	r := w.req()
	return invoke[SnapshotList](ctx, w.c, "snapshot_list", &r, Streams{})
}

// SnapshotShow returns one snapshot.
func (w *Workspace) SnapshotShow(ctx context.Context, name string) (*Snapshot, error) {
	return invoke[Snapshot](ctx, w.c, "snapshot_show", &api.SnapshotRequest{Workspace: w.ref, Name: name}, Streams{})
}

// SnapshotRemove removes a snapshot (not the baseline).
func (w *Workspace) SnapshotRemove(ctx context.Context, name string) (*Snapshot, error) {
	return invoke[Snapshot](ctx, w.c, "snapshot_remove", &api.SnapshotRequest{Workspace: w.ref, Name: name}, Streams{})
}

// ResetOptions configure Reset.
type ResetOptions struct {
	// To is the snapshot to go back to ("baseline" when empty).
	To string
	// Force resets even while commands or shells run: they end.
	Force bool
}

// Reset puts the workspace's whole disk back to a snapshot; a running
// workspace reboots on it.
func (w *Workspace) Reset(ctx context.Context, o ResetOptions) (*WorkspaceInfo, error) {
	return w.keep(invoke[WorkspaceInfo](ctx, w.c, "workspace_reset", &api.ResetRequest{Workspace: w.ref, To: o.To, Force: o.Force}, Streams{}))
}

// ForkOptions configure Fork.
type ForkOptions struct {
	// Name of the new workspace; with Count > 1 the forks are Name-1 …
	// Name-N.
	Name string
	// From is the snapshot to fork; empty: the disk as it is now.
	From  string
	Count int
	// Rebaseline gives each fork its own diff baseline instead of the
	// parent's.
	Rebaseline bool
}

// Fork makes new workspaces from this one's snapshot (or its disk now)
// and boots them.
func (w *Workspace) Fork(ctx context.Context, o ForkOptions) ([]*Workspace, error) {
	res, err := invoke[api.ForkResult](ctx, w.c, "workspace_fork", &api.ForkRequest{Workspace: w.ref, Name: o.Name, From: o.From, Count: o.Count, Rebaseline: o.Rebaseline}, Streams{})
	if err != nil {
		return nil, err
	}
	out := make([]*Workspace, len(res.Workspaces))
	for i, info := range res.Workspaces {
		out[i] = &Workspace{c: w.c, ref: info.ID, Info: info}
	}
	return out, nil
}
