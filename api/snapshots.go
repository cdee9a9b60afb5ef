package api

import "time"

// Snapshot kinds.
const (
	// SnapshotDisk holds the workspace's writable disk: restoring it boots.
	SnapshotDisk = "disk"
	// SnapshotMemory also holds the VM's memory and device state:
	// restoring it resumes the processes that ran.
	SnapshotMemory = "memory"
)

// BaselineSnapshot names the snapshot every workspace gets right after its
// create and seed; reset's default target.
const BaselineSnapshot = "baseline"

// Snapshot is a named, immutable copy of a workspace's state.
type Snapshot struct {
	Name string `json:"name"`
	// Workspace is the id of the workspace it belongs to.
	Workspace string    `json:"workspace"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	// SizeBytes is the host disk space the snapshot takes (allocated
	// blocks: a sparse copy costs what the disk holds, not its size).
	SizeBytes int64 `json:"size_bytes"`
	// Parent is where the workspace's disk came from when the snapshot was
	// taken (see Workspace.Parent).
	Parent string `json:"parent,omitempty"`
	// Running says it was taken of a running guest, its file system frozen
	// for the copy.
	Running bool `json:"running"`
	// Method is how the disk was copied: "reflink" or "sparse".
	Method string `json:"method"`
	// DurationMS is how long taking it took (FrozenMS of it with the guest
	// file system frozen).
	DurationMS int64 `json:"duration_ms"`
	FrozenMS   int64 `json:"frozen_ms,omitempty"`
	// Restore is what restoring it needs.
	Restore SnapshotRestore `json:"restore"`
}

// SnapshotRestore is what a snapshot needs to be restored.
type SnapshotRestore struct {
	Backend       string `json:"backend"`
	Image         string `json:"image"`
	KernelVersion string `json:"kernel_version,omitempty"`
	DiskSizeBytes int64  `json:"disk_size_bytes"`
	// For memory snapshots: the VM must match exactly.
	VMMVersion string `json:"vmm_version,omitempty"`
	Accel      string `json:"accel,omitempty"`
	CPUModel   string `json:"cpu_model,omitempty"`
	CPUs       int    `json:"cpus,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
	// NIC says the VM had a network device (a network mode other than
	// none): a memory snapshot resumes only with the same devices.
	NIC bool `json:"nic,omitempty"`
}

// SnapshotList is the result of `snapshot_list`.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
	// TotalBytes is the host disk space all of them take.
	TotalBytes int64 `json:"total_bytes"`
}

// SnapshotCreateRequest is the request of `snapshot_create`.
type SnapshotCreateRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Name is 1-63 characters a-z, 0-9, '.', '_' or '-'; "baseline" is
	// taken.
	Name string `json:"name" cli:"arg"`
	// Memory also saves the running VM's memory and device state: a reset
	// to it or a fork of it resumes the processes that ran (QEMU).
	Memory bool `json:"memory,omitempty"`
}

// SnapshotRequest names one snapshot of a workspace.
type SnapshotRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	Name      string `json:"name" path:"true" cli:"arg"`
}

// ResetRequest is the request of `workspace_reset`.
type ResetRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// To is the snapshot to go back to.
	To string `json:"to,omitempty" default:"baseline"`
	// Force resets even while commands or shells run (they end).
	Force bool `json:"force,omitempty"`
}

// ForkRequest is the request of `workspace_fork`.
type ForkRequest struct {
	Workspace string `json:"workspace" path:"true" cli:"arg"`
	// Name of the new workspace; with count > 1 the forks are NAME-1 …
	// NAME-N.
	Name string `json:"name"`
	// From is the parent's snapshot to fork; empty: its disk as it is now
	// (a consistent copy taken at once, the parent keeps running).
	From  string `json:"from_snapshot,omitempty" cli:"from"`
	Count int    `json:"count,omitempty" default:"1" max:"16"`
	// Rebaseline records the fork's own diff baseline (and reset baseline)
	// when it boots, instead of keeping its parent's.
	Rebaseline bool `json:"rebaseline,omitempty"`
}

// ForkResult is the result of `workspace_fork`.
type ForkResult struct {
	Workspaces []Workspace `json:"workspaces"`
}
