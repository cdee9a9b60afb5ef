// Package workspace is hearth's engine: persistent workspaces (a microVM
// plus its own writable disk) and throwaway runs, kept in the state
// directory with no daemon. Every operation works from the files under
// $HEARTH_HOME/workspaces/<id>/; a per-VM supervisor process (package
// supervisor) owns each running VMM.
//
// A workspace directory holds:
//
//	workspace.json   the record (atomic writes)
//	lock             flock held by lifecycle operations (see locks.go)
//	calls.lock       flock held shared by calls, exclusively by lifecycle
//	holders/         who holds the locks, for conflict messages
//	base.ext4        hard link to the image's read-only root file system
//	vmlinux          hard link to the image's kernel
//	disk.ext4        the writable disk: root fs changes (overlay) and /workspace
//	baseline/        the immutable create-time baseline of /workspace
//	snapshots/       named disk snapshots, "baseline" among them (snapshots.go)
//	logs/            the command log and each command's output
//	run/             sockets, console log and status of the running VM
package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/home"
	"github.com/hearthvm/hearth/internal/vmm"
)

// Manager manages the workspaces under one state directory. The zero value
// is not usable; use New.
type Manager struct {
	root string
	exe  string
	log  *slog.Logger
	// Backends builds VMM backends; see package backend.
	backends    BackendFunc
	bootTimeout time.Duration
	// Command log limits (0: cmdlog's defaults) and the check whether a
	// command's runner lives (nil: cmdlog.ProcessAlive).
	outputCap, logQuota int64
	alive               cmdlog.AliveFunc
	lockWait            time.Duration
	busyWait            time.Duration
}

// BackendFunc returns the backend to use for name ("auto", "qemu",
// "firecracker"); killWithParent ties the VMM's life to this process.
type BackendFunc func(ctx context.Context, name string, killWithParent bool) (vmm.Backend, error)

// Options configure a Manager.
type Options struct {
	// Home is the state directory ($HEARTH_HOME).
	Home string
	// Exe is the hearth binary that runs supervisors (`hearth _supervise`);
	// the running executable when empty.
	Exe string
	// Backends builds backends.
	Backends BackendFunc
	// BootTimeout bounds how long a guest may take to answer after its VMM
	// starts (default vmm.DefaultBootTimeout).
	BootTimeout time.Duration
	// CommandOutputCap is the most bytes of each stream (stdout, stderr) of
	// one command kept in a workspace's command log on the host (default
	// cmdlog.DefaultOutputCap, 64 MiB; at most half the log quota). Output
	// past it is counted, not kept; the command's entry says how much was
	// dropped.
	CommandOutputCap int64
	// CommandLogQuota bounds each workspace's command log on the host
	// (default cmdlog.DefaultQuota, 1 GiB): past it, the outputs of the
	// oldest finished commands are pruned.
	CommandLogQuota int64
	// LockWait bounds how long an operation waits for a lifecycle
	// operation (create, start, stop, delete) that holds the workspace
	// before failing with a conflict naming it (default DefaultLockWait).
	LockWait time.Duration
	// BusyWait bounds how long a lifecycle operation waits for calls in
	// flight (exec, sync, export, diff, shell) before it refuses, or, when
	// forced, ends them (default DefaultBusyWait).
	BusyWait time.Duration
	Log      *slog.Logger
}

// New returns a Manager.
func New(opts Options) (*Manager, error) {
	if opts.Home == "" {
		opts.Home = home.Dir()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Exe = exe
	}
	if opts.Backends == nil {
		return nil, errors.New("workspace: no backend factory")
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = vmm.DefaultBootTimeout
	}
	if opts.CommandOutputCap < 0 || opts.CommandLogQuota < 0 {
		return nil, fmt.Errorf("command output cap and log quota must not be negative: %w", errdefs.ErrInvalidArgument)
	}
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if opts.BusyWait <= 0 {
		opts.BusyWait = DefaultBusyWait
	}
	return &Manager{root: opts.Home, exe: opts.Exe, log: opts.Log, backends: opts.Backends, bootTimeout: opts.BootTimeout,
		outputCap: opts.CommandOutputCap, logQuota: opts.CommandLogQuota, lockWait: opts.LockWait, busyWait: opts.BusyWait}, nil
}

// Home returns the state directory.
func (m *Manager) Home() string { return m.root }

// record is workspace.json.
type record struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Image         string    `json:"image"`
	Backend       string    `json:"backend"`
	CreatedAt     time.Time `json:"created_at"`
	CPUs          int       `json:"cpus"`
	MemoryMiB     int       `json:"memory_mib"`
	DiskSizeBytes int64     `json:"disk_size_bytes"`
	Seed          string    `json:"seed,omitempty"`
	KernelVersion string    `json:"kernel_version,omitempty"`
	// Ready is false until create finished (seeded, baseline recorded).
	Ready bool `json:"ready"`
	// Disks are the attached named data disks (see disks.go).
	Disks []wsDisk `json:"disks,omitempty"`
	// Parent is where the disk last came from (see api.Workspace.Parent).
	Parent string `json:"parent,omitempty"`
	// Secrets are the secrets it exposes (names and modes; values stay in
	// the host store) and SecretEnvAll whether every exec gets the env ones.
	Secrets      []api.WorkspaceSecret `json:"secrets,omitempty"`
	SecretEnvAll bool                  `json:"secret_env_all,omitempty"`
	// NetLink is how the guest's NIC reaches the network stack: "" (QEMU's
	// stream socket; Firecracker always has a TAP) or "tap" (a TAP in the
	// VMM's own namespace: HEARTH_NET_LINK=tap at create). It is fixed at
	// create, and forks inherit it, because a memory snapshot resumes only
	// with the NIC it was saved with.
	NetLink string `json:"net_link,omitempty"`
}

func (m *Manager) wsRoot() string              { return home.Workspaces(m.root) }
func (m *Manager) dir(id string) string        { return filepath.Join(m.wsRoot(), id) }
func (m *Manager) runDir(id string) string     { return filepath.Join(m.dir(id), "run") }
func (m *Manager) logDir(id string) string     { return filepath.Join(m.dir(id), "logs") }
func (m *Manager) recordPath(id string) string { return filepath.Join(m.dir(id), "workspace.json") }

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	idRE   = regexp.MustCompile(`^ws-[0-9a-f]{8}$`)
)

// ValidateName checks a workspace name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("workspace name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit: %w", name, errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(name, "ws-") {
		return fmt.Errorf("workspace name %q: names starting with \"ws-\" are reserved for workspace ids: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func newID() string {
	var b [4]byte
	rand.Read(b[:])
	return "ws-" + hex.EncodeToString(b[:])
}

func (m *Manager) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(m.recordPath(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("workspace %q: %w", id, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("workspace %s: corrupt %s: %w", id, m.recordPath(id), err)
	}
	return &r, nil
}

func (m *Manager) writeRecord(r *record) error {
	return atomicfile.WriteJSON(m.recordPath(r.ID), r, 0o600)
}

// records lists every workspace record, sorted by creation time.
func (m *Manager) records() ([]*record, error) {
	ents, err := os.ReadDir(m.wsRoot())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue
		}
		r, err := m.readRecord(e.Name())
		if err != nil {
			continue // a create in progress or a half-deleted directory
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// resolve finds a workspace by id or unique name.
func (m *Manager) resolve(ref string) (*record, error) {
	if ref == "" {
		return nil, fmt.Errorf("no workspace given: pass a workspace id or name (workspace_list lists them): %w", errdefs.ErrInvalidArgument)
	}
	if idRE.MatchString(ref) {
		if r, err := m.readRecord(ref); err == nil {
			return r, nil
		}
	}
	rs, err := m.records()
	if err != nil {
		return nil, err
	}
	var match []*record
	for _, r := range rs {
		if r.Name == ref || r.ID == ref {
			match = append(match, r)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("no workspace named %q (workspace_list lists them): %w", ref, errdefs.ErrNotFound)
	case 1:
		return match[0], nil
	}
	ids := make([]string, len(match))
	for i, r := range match {
		ids[i] = r.ID
	}
	return nil, fmt.Errorf("workspace name %q is ambiguous (%s): use the id: %w", ref, strings.Join(ids, ", "), errdefs.ErrConflict)
}

// lock takes an exclusive flock on path (a short-held lock: the global
// create lock, the command log's), waiting at most DefaultLockWait or
// until ctx ends.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flockWait(ctx, f, syscall.LOCK_EX, DefaultLockWait); err != nil {
		f.Close()
		if errors.Is(err, errBusy) {
			return nil, fmt.Errorf("another hearth process holds %s: %w", path, errdefs.ErrConflict)
		}
		return nil, waitErr(err, "waiting for "+path)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// info builds the public view of a record, reconciled with the VM's state.
func (m *Manager) info(r *record) *api.Workspace {
	w := &api.Workspace{
		ID: r.ID, Name: r.Name, Image: r.Image, Backend: r.Backend, CreatedAt: r.CreatedAt,
		CPUs: r.CPUs, MemoryMiB: r.MemoryMiB, DiskSizeBytes: r.DiskSizeBytes, Seed: r.Seed,
		ConsoleLog: filepath.Join(m.runDir(r.ID), "console.log"), Parent: r.Parent,
		Disks: attachments(r), Secrets: r.Secrets, SecretEnvAll: r.SecretEnvAll,
	}
	w.Snapshots, w.SnapshotBytes = m.snapshotUsage(r.ID)
	vs := m.vmState(r.ID)
	w.State, w.LastExit, w.Error = vs.state, vs.lastExit, vs.err
	if vs.state != api.StateRunning {
		if sm := m.suspended(r.ID); sm != nil {
			t := sm.SuspendedAt
			w.Suspended, w.SuspendedAt = true, &t
		} else if sv := m.unadoptedSuspend(r.ID); sv != nil {
			// Its caller died after the save: the next start resumes it.
			w.Suspended, w.SuspendedAt = true, &sv.At
		}
	}
	if vs.state == api.StateRunning {
		w.PID, w.SupervisorPID, w.Accel = vs.status.VMMPID, vs.status.SupervisorPID, vs.status.Details["accel"]
		if vs.status.Backend != "" {
			w.Backend = vs.status.Backend
		}
		t := vs.status.StartedAt
		w.StartedAt = &t
	}
	if !r.Ready {
		if c := m.creating(r.ID); c != "" {
			w.State, w.Error = api.StateStopped, "being created: "+c
			if vs.state == api.StateRunning {
				w.State = api.StateRunning
			}
		} else {
			w.State = api.StateError
			w.Error = "create did not finish (interrupted): delete this workspace (with force), or create it again with the same name, which replaces it"
		}
	}
	return w
}
