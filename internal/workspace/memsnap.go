package workspace

// Memory snapshots, suspend and resume (QEMU).
//
// A memory snapshot's directory holds, besides disk.ext4 and
// snapshot.json, the VM's device state (state) and its RAM (memory.ram,
// sparse). A running QEMU guest keeps its RAM in DIR/run/memory.ram, a
// shared memory-backend-file: the supervisor pauses the guest, has QEMU
// write its device state (tens of KB), copies the RAM file and the
// writable disk at that same instant, and resumes it (package
// supervisor, save.go). Restoring starts a new QEMU on a copy of the RAM
// file with the saved device state, resyncs the agent channel and fixes
// the guest (clock, random pool, identity) before anyone uses it.
//
// A suspend (stop with Suspend) is the same save into DIR/suspend/, after
// which the VM ends; the next start resumes it and removes DIR/suspend.
//
// Nothing but the disk and the guest's RAM is saved, so a memory snapshot
// refuses what it cannot restore faithfully: named data disks (their
// contents change without the guest knowing), and env secrets (running
// processes hold their values in memory). File secrets live on a tmpfs in
// guest RAM: they are wiped and unmounted for the save and sent again
// afterwards, so no secret value is in a snapshot.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/secrets"
	"github.com/hearthvm/hearth/internal/sparse"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
	"golang.org/x/sys/unix"
)

// memoryFile is where workspace id's guest RAM is: on the host's
// shared-memory tmpfs when a boot put it there, else beside the VM's
// sockets (see placeMemoryFile).
func (m *Manager) memoryFile(id string) string {
	if p := m.shmMemoryFile(id); fileExists(p) {
		return p
	}
	return filepath.Join(m.runDir(id), "memory.ram")
}

// newMemoryFile chooses where a boot keeps a guest RAM of size bytes: on
// /dev/shm, so the guest's memory never turns into disk writes and disk
// space under $HEARTH_HOME (it is RAM either way), when that tmpfs has
// room for it with 256 MiB to spare; else beside the VM's sockets (a full
// tmpfs would kill the VMM the moment the guest touched a page past it).
// Any earlier file of id is removed.
func (m *Manager) newMemoryFile(id string, size int64) string {
	shm, run := m.shmMemoryFile(id), filepath.Join(m.runDir(id), "memory.ram")
	os.Remove(shm)
	os.Remove(run)
	var st unix.Statfs_t
	if unix.Access(shmDir, unix.W_OK) == nil && unix.Statfs(shmDir, &st) == nil && int64(st.Bavail)*int64(st.Bsize) >= size+256<<20 {
		return shm
	}
	return run
}

func (m *Manager) shmMemoryFile(id string) string {
	sum := sha256.Sum256([]byte(m.root))
	return filepath.Join(shmDir, fmt.Sprintf("hearth-%x-%s.ram", sum[:4], id))
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// shmDir is the host's shared-memory file system.
const shmDir = "/dev/shm"

// moveFile renames src to dst, or copies it (sparsely) and removes src
// when they are on different file systems (/dev/shm and the state
// directory).
func moveFile(ctx context.Context, src, dst string, mode os.FileMode) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, unix.EXDEV) {
		return err
	}
	if _, err := sparse.CopyFile(ctx, src, dst, sparse.Options{Mode: mode}); err != nil {
		return err
	}
	return os.Remove(src)
}

// suspendDir holds a suspended workspace's saved memory.
func (m *Manager) suspendDir(id string) string { return filepath.Join(m.dir(id), "suspend") }

// suspendMeta is DIR/suspend/suspend.json.
type suspendMeta struct {
	SuspendedAt time.Time           `json:"suspended_at"`
	Restore     api.SnapshotRestore `json:"restore"`
}

// suspended reads a workspace's suspend record (nil: not suspended).
func (m *Manager) suspended(id string) *suspendMeta {
	var s suspendMeta
	if err := readJSON(filepath.Join(m.suspendDir(id), "suspend.json"), &s); err != nil {
		return nil
	}
	return &s
}

// discardSuspend drops a suspended workspace's saved memory (its disk is
// about to change, or the resume failed).
func (m *Manager) discardSuspend(id string) {
	os.RemoveAll(m.suspendDir(id))
	os.RemoveAll(m.suspendDir(id) + ".tmp")
}

// prepareMemoryFile makes an empty RAM file for a boot of rec (mode 0600:
// it will hold the guest's memory).
func (m *Manager) prepareMemoryFile(rec *record) (string, error) {
	p := m.newMemoryFile(rec.ID, int64(rec.MemoryMiB)<<20)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("guest memory file: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(rec.MemoryMiB) << 20); err != nil {
		return "", fmt.Errorf("guest memory file: %w", err)
	}
	return p, nil
}

// placeMemory puts a saved RAM file where rec's VM runs from: a copy of
// src (snapshots are never written), or with move the file itself.
func (m *Manager) placeMemory(ctx context.Context, rec *record, src string, move bool) error {
	size := int64(rec.MemoryMiB) << 20
	if fi, err := os.Stat(src); err == nil {
		size = fi.Size()
	}
	dst := m.newMemoryFile(rec.ID, size)
	if move {
		if err := moveFile(ctx, src, dst, 0o600); err != nil {
			return fmt.Errorf("guest memory file: %w", err)
		}
		return os.Chmod(dst, 0o600)
	}
	if _, err := sparse.CopyFile(ctx, src, dst, sparse.Options{Mode: 0o600, Free: snapshotFree}); err != nil {
		return fmt.Errorf("copy the saved memory: %w", err)
	}
	return nil
}

// memoryBlocker says why rec's memory cannot be saved ("" when it can).
func (m *Manager) memoryBlocker(rec *record, what string) string {
	if rec.Backend != "qemu" && rec.Backend != "firecracker" {
		return fmt.Sprintf("workspace %s runs on %s, which cannot save a running guest", rec.Name, rec.Backend)
	}
	if len(rec.Disks) > 0 {
		var names []string
		for _, d := range rec.Disks {
			names = append(names, d.Disk)
		}
		return fmt.Sprintf("workspace %s has named data disks attached (%s), whose contents are not saved with its memory: detach them first, or take a disk snapshot", rec.Name, strings.Join(names, ", "))
	}
	for _, s := range rec.Secrets {
		if s.Mode == secrets.ModeEnv {
			return fmt.Sprintf("workspace %s exposes secret %s as an environment variable, which running processes may hold in memory, and %s would keep it: remove it (workspace secret rm) and restart the workspace, or take a disk snapshot", rec.Name, s.Name, what)
		}
	}
	return ""
}

// saveMemory saves a running rec's guest into dir (which exists): device
// state, RAM and, with disk, a copy of its writable disk, all of one
// instant. The guest's file system is synced first and its secret files
// are wiped for the save (and sent again after, unless stop).
func (m *Manager) saveMemory(ctx context.Context, rec *record, vs vmState, dir string, disk, stop bool) (*supervisor.SaveResponse, error) {
	c := &guest.Client{Socket: vs.status.AgentSocket}
	if len(rec.Secrets) > 0 {
		if err := c.UnmountSecrets(ctx); err != nil {
			return nil, err
		}
		if !stop {
			defer func() {
				if err := m.applySecrets(context.WithoutCancel(ctx), rec, false); err != nil {
					m.log.Warn("send secret files again after a memory save", "workspace", rec.ID, "err", err)
				}
			}()
		}
	}
	// Dirty pages reach the disk: the saved disk is what the guest's
	// kernel believes, whatever restores it.
	fr, err := c.Freeze(ctx, snapshotFreezeTimeout)
	if err != nil {
		return nil, fmt.Errorf("sync the guest's file system: %w", err)
	}
	if _, err := fr.Thaw(); err != nil {
		return nil, fmt.Errorf("sync the guest's file system: %w", err)
	}
	req := &supervisor.SaveRequest{Dir: dir, Stop: stop}
	if disk {
		req.Copies = []supervisor.Copy{{Src: filepath.Join(m.dir(rec.ID), "disk.ext4"), Dst: filepath.Join(dir, "disk.ext4")}}
	}
	return supervisor.Save(ctx, m.runDir(rec.ID), req)
}

// restoreOf builds the restore record of a save.
func (m *Manager) restoreOf(rec *record, c vmm.Compat) api.SnapshotRestore {
	return api.SnapshotRestore{Backend: rec.Backend, Image: rec.Image, KernelVersion: rec.KernelVersion, DiskSizeBytes: rec.DiskSizeBytes,
		VMMVersion: c.Version, Accel: c.Accel, CPUModel: c.CPUModel, CPUs: c.CPUs, MemoryMiB: c.MemoryMiB, NIC: m.networkConfig(rec) != nil}
}

// takeMemorySnapshot records memory snapshot name of a running rec (the
// caller holds its lifecycle lock).
func (m *Manager) takeMemorySnapshot(ctx context.Context, rec *record, name string) (*api.Snapshot, error) {
	start := time.Now()
	vs := m.vmState(rec.ID)
	if vs.state != api.StateRunning {
		return nil, fmt.Errorf("workspace %s is %s: a memory snapshot saves a running VM: start it first, or take a disk snapshot (without memory): %w", rec.Name, vs.state, errdefs.ErrFailedPrecondition)
	}
	if why := m.memoryBlocker(rec, "memory snapshots"); why != "" {
		return nil, fmt.Errorf("%s: %w", why, errdefs.ErrFailedPrecondition)
	}
	final := m.snapDir(rec.ID, name)
	if _, err := os.Stat(final); err == nil {
		return nil, errdefs.Mark(fmt.Errorf("workspace %s already has a snapshot %q: pick another name, or remove it first", rec.Name, name), errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(m.snapRoot(rec.ID), 0o700); err != nil {
		return nil, err
	}
	m.cleanSnapshotTemps(rec.ID)
	tmp := m.snapDir(rec.ID, ".tmp-"+name)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	res, err := m.saveMemory(ctx, rec, vs, tmp, true, false)
	if err != nil {
		return nil, fmt.Errorf("memory snapshot %s of %s: %w", name, rec.Name, err)
	}
	s := &api.Snapshot{
		Name: name, Workspace: rec.ID, Kind: api.SnapshotMemory, CreatedAt: start.UTC(), Parent: rec.Parent,
		Running: true, Method: "sparse", FrozenMS: res.PausedMS, Restore: m.restoreOf(rec, res.Compat),
	}
	s.SizeBytes = m.snapshotBytes(tmp)
	s.DurationMS = time.Since(start).Milliseconds()
	if err := atomicfile.WriteJSON(filepath.Join(tmp, "snapshot.json"), s, 0o400); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", name, err)
	}
	ok = true
	syncDir(m.snapRoot(rec.ID))
	m.log.Info("memory snapshot taken", "workspace", rec.ID, "name", name, "bytes", s.SizeBytes, "ms", s.DurationMS, "paused_ms", res.PausedMS, "state_bytes", res.StateBytes)
	return s, nil
}

// snapshotBytes is the host space of the files in a snapshot directory.
func (m *Manager) snapshotBytes(dir string) int64 {
	var total int64
	for _, f := range []string{"disk.ext4", supervisor.MemoryFile, supervisor.StateFile, "snapshot.json"} {
		if n, err := sparse.Allocated(filepath.Join(dir, f)); err == nil {
			total += n
		}
	}
	return total
}

// compatDiff lists what differs between what a saved VM needs and what
// this host would run it with.
func compatDiff(saved api.SnapshotRestore, now vmm.Compat) []string {
	var d []string
	add := func(what, was, is string) {
		if was != is {
			d = append(d, fmt.Sprintf("%s %s, here %s", what, orNone(was), orNone(is)))
		}
	}
	add("backend", saved.Backend, now.Backend)
	add("VMM version", saved.VMMVersion, now.Version)
	add("accelerator", saved.Accel, now.Accel)
	add("CPU model", saved.CPUModel, now.CPUModel)
	if saved.CPUs != now.CPUs {
		d = append(d, fmt.Sprintf("CPUs %d, here %d", saved.CPUs, now.CPUs))
	}
	if saved.MemoryMiB != now.MemoryMiB {
		d = append(d, fmt.Sprintf("memory %d MiB, here %d MiB", saved.MemoryMiB, now.MemoryMiB))
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// hostCompatFunc returns what a VM of backend started now would be; a
// variable so tests can fake another host.
var hostCompatFunc = func(ctx context.Context, m *Manager, rec *record) (vmm.Compat, error) {
	b, err := m.backends(ctx, rec.Backend, false)
	if err != nil {
		return vmm.Compat{}, err
	}
	hc, ok := b.(interface {
		HostCompat(ctx context.Context, kernel string, cpus, memMiB int) (vmm.Compat, error)
	})
	if !ok {
		return vmm.Compat{}, fmt.Errorf("the %s backend cannot restore memory snapshots in this hearth: %w", b.Name(), errdefs.ErrNotImplemented)
	}
	return hc.HostCompat(ctx, filepath.Join(m.dir(rec.ID), "vmlinux"), rec.CPUs, rec.MemoryMiB)
}

// checkRestorable refuses a saved VM (what names it: `snapshot "m1"`, or
// "the suspended state") that this host cannot resume.
func (m *Manager) checkRestorable(ctx context.Context, rec *record, what string, saved api.SnapshotRestore) error {
	if saved.Image != "" && saved.Image != rec.Image {
		return fmt.Errorf("%s was taken on image %s, the workspace runs %s: %w", what, saved.Image, rec.Image, errdefs.ErrFailedPrecondition)
	}
	now, err := hostCompatFunc(ctx, m, rec)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if nic := m.networkConfig(rec) != nil; nic != saved.NIC {
		was, is := "none", "egress or open"
		if saved.NIC {
			was, is = is, was
		}
		return fmt.Errorf("%s was saved with network mode %s, the workspace now has %s: the VM's devices would differ; set the network mode back (workspace network set) to resume it, or use a disk snapshot: %w", what, was, is, errdefs.ErrFailedPrecondition)
	}
	if d := compatDiff(saved, now); len(d) > 0 {
		return fmt.Errorf("%s cannot be resumed here: it was saved with %s: a memory snapshot resumes only on the same backend, VMM version, accelerator, CPU model, CPUs and memory; use a disk snapshot (reset or fork from one boots afresh) or resume it on a host that matches: %w",
			what, strings.Join(d, "; "), errdefs.ErrFailedPrecondition)
	}
	return nil
}

// startRestore boots rec from a saved VM: its RAM file already in place
// (placeMemory), its device state in state.
func (m *Manager) startRestore(ctx context.Context, rec *record, state string) (*supervisor.Status, error) {
	return m.boot(ctx, rec, rec.Backend, &vmm.Restore{StateFile: state})
}

// suspend saves a running workspace's memory into DIR/suspend and ends its
// VM (the caller holds the lifecycle lock and has drained its calls).
func (m *Manager) suspend(ctx context.Context, rec *record) error {
	vs := m.vmState(rec.ID)
	if vs.state != api.StateRunning {
		return nil // nothing runs: nothing to save (a suspended one stays so)
	}
	if why := m.memoryBlocker(rec, "suspends"); why != "" {
		return fmt.Errorf("%s: %w", why, errdefs.ErrFailedPrecondition)
	}
	m.discardSuspend(rec.ID)
	tmp := m.suspendDir(rec.ID) + ".tmp"
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	res, err := m.saveMemory(ctx, rec, vs, tmp, false, true)
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("suspend %s: %w", rec.Name, err)
	}
	if err := m.finishSuspend(rec, supervisor.Saved{At: time.Now().UTC(), Compat: res.Compat}); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitRecorded(wctx, vs.status.Supervisor(), m.runDir(rec.ID)); err != nil {
		m.forceStop(rec.ID)
	}
	m.log.Info("workspace suspended", "workspace", rec.ID, "memory_bytes", res.MemoryBytes, "paused_ms", res.PausedMS)
	return nil
}

// unadoptedSuspend returns the record of a whole save in the temporary
// directory of a suspend whose caller died (nil: none).
func (m *Manager) unadoptedSuspend(id string) *supervisor.Saved {
	var saved supervisor.Saved
	if err := readJSON(filepath.Join(m.suspendDir(id)+".tmp", supervisor.SavedFile), &saved); err != nil {
		return nil
	}
	return &saved
}

// adoptSuspend finishes a suspend whose caller died after the supervisor
// had saved the VM (its directory holds supervisor.SavedFile), and removes
// any other leftover of one. The caller holds rec's lifecycle lock.
func (m *Manager) adoptSuspend(rec *record) {
	tmp := m.suspendDir(rec.ID) + ".tmp"
	saved := m.unadoptedSuspend(rec.ID)
	if saved == nil {
		os.RemoveAll(tmp)
		return
	}
	for _, f := range []string{supervisor.StateFile, supervisor.MemoryFile} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err != nil {
			os.RemoveAll(tmp)
			return
		}
	}
	if err := m.finishSuspend(rec, *saved); err != nil {
		m.log.Warn("finish the suspend of a caller that was gone", "workspace", rec.ID, "err", err)
		return
	}
	m.log.Info("workspace suspend finished for a caller that was gone", "workspace", rec.ID, "saved_at", saved.At)
}

// finishSuspend turns the suspend's temporary directory, which holds a
// whole save, into the suspended state a start resumes (removing it if
// that fails).
func (m *Manager) finishSuspend(rec *record, saved supervisor.Saved) error {
	tmp := m.suspendDir(rec.ID) + ".tmp"
	meta := suspendMeta{SuspendedAt: saved.At, Restore: m.restoreOf(rec, saved.Compat)}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, "suspend.json"), meta, 0o600); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	os.RemoveAll(m.suspendDir(rec.ID))
	if err := os.Rename(tmp, m.suspendDir(rec.ID)); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	syncDir(m.dir(rec.ID))
	return nil
}

// resume starts a suspended workspace from its saved memory. A resume
// that fails discards the saved memory (the next start boots from the
// disk, which is as the guest left it).
func (m *Manager) resume(ctx context.Context, rec *record, sm *suspendMeta) error {
	if err := m.checkRestorable(ctx, rec, "the suspended state of "+rec.Name, sm.Restore); err != nil {
		return err
	}
	dir := m.suspendDir(rec.ID)
	if err := m.placeMemory(ctx, rec, filepath.Join(dir, supervisor.MemoryFile), true); err != nil {
		return err
	}
	_, err := m.startRestore(ctx, rec, filepath.Join(dir, supervisor.StateFile))
	m.discardSuspend(rec.ID)
	if err != nil {
		return fmt.Errorf("resume %s: %w; its saved memory is discarded: the next start boots from its disk", rec.Name, err)
	}
	return nil
}

// readJSON reads a JSON file into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.Join(fmt.Errorf("%s: corrupt", path), err)
	}
	return nil
}
