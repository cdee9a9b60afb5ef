package workspace

// Snapshots, reset and fork.
//
// A workspace's snapshots live in DIR/snapshots/<name>/:
//
//	disk.ext4       a copy of the writable disk (read-only, never written
//	                again): a reflink, or a sparse copy of its data extents
//	snapshot.json   its metadata (api.Snapshot)
//
// A snapshot is written under DIR/snapshots/.tmp-<name> and renamed into
// place once whole, so a process killed mid-snapshot leaves no snapshot
// (its temporary directory is removed by the next snapshot operation).
// Every workspace gets the snapshot "baseline" right after its create and
// seed; reset goes back to it by default. Deleting a workspace removes its
// snapshots with its directory.
//
// Taking a snapshot of a running workspace asks the agent to sync and
// freeze the guest's data disk (guestproto.OpFreeze) for the copy only;
// commands keep running (their writes wait). Snapshot, reset and fork hold
// the workspace's lifecycle lock, so none overlaps a start, stop or delete.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/cmdlog"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/guest"
	"github.com/hearthvm/hearth/internal/guestproto"
	"github.com/hearthvm/hearth/internal/sparse"
	"github.com/hearthvm/hearth/internal/supervisor"
)

// snapshotFreezeTimeout is how long the agent keeps the guest frozen if
// the host never thaws it (the host died mid-copy).
const snapshotFreezeTimeout = 2 * time.Minute

// MaxForkCount bounds one fork call.
const MaxForkCount = 16

// snapshotFree reports the free bytes of a directory's file system; tests
// fake a full disk.
var snapshotFree = sparse.FreeBytes

func (m *Manager) snapRoot(id string) string { return filepath.Join(m.dir(id), "snapshots") }
func (m *Manager) snapDir(id, name string) string {
	return filepath.Join(m.snapRoot(id), name)
}

// ValidateSnapshotName checks a snapshot name: the rules of workspace
// names.
func ValidateSnapshotName(name string) error { return checkSnapshotName("name", name) }

// checkSnapshotName checks a snapshot name given as argument arg.
func checkSnapshotName(arg, name string) error {
	if name == "" {
		return errdefs.Arg(arg, "no snapshot name given")
	}
	if !nameRE.MatchString(name) {
		return errdefs.Arg(arg, "snapshot name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// readSnapshot reads one snapshot's metadata; a missing one is ErrNotFound.
func (m *Manager) readSnapshot(id, name string) (*api.Snapshot, error) {
	b, err := os.ReadFile(filepath.Join(m.snapDir(id, name), "snapshot.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("snapshot %q: %w", name, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var s api.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("snapshot %q: corrupt metadata: %w", name, err)
	}
	s.Name, s.Workspace = name, id
	if n := m.snapshotBytes(m.snapDir(id, name)); n > 0 {
		s.SizeBytes = n
	}
	return &s, nil
}

// findSnapshot reads snapshot name of rec, or explains why there is none:
// a snapshot of another workspace is named as such.
func (m *Manager) findSnapshot(rec *record, name string) (*api.Snapshot, error) {
	if !nameRE.MatchString(name) { // callers check names; never a path
		return nil, fmt.Errorf("snapshot %q: %w", name, errdefs.ErrNotFound)
	}
	s, err := m.readSnapshot(rec.ID, name)
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return s, err
	}
	if name == api.BaselineSnapshot {
		return nil, fmt.Errorf("workspace %s has no baseline snapshot (it was created before hearth recorded one): take named snapshots to go back to: %w", rec.Name, errdefs.ErrNotFound)
	}
	var others []string
	if rs, err := m.records(); err == nil {
		for _, r := range rs {
			if r.ID == rec.ID {
				continue
			}
			if _, err := os.Stat(filepath.Join(m.snapDir(r.ID, name), "snapshot.json")); err == nil {
				others = append(others, fmt.Sprintf("%s (%s)", r.Name, r.ID))
			}
		}
	}
	if len(others) > 0 {
		return nil, errdefs.Mark(fmt.Errorf("workspace %s has no snapshot %q; %s has one, but a workspace only goes back to its own snapshots: fork that workspace from it instead",
			rec.Name, name, strings.Join(others, ", ")), errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("workspace %s has no snapshot %q: list them with snapshot_list: %w", rec.Name, name, errdefs.ErrNotFound)
}

// listSnapshots returns rec's snapshots, oldest first.
func (m *Manager) listSnapshots(id string) ([]api.Snapshot, error) {
	ents, err := os.ReadDir(m.snapRoot(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.Snapshot
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		s, err := m.readSnapshot(id, e.Name())
		if err != nil {
			continue
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// snapshotUsage counts a workspace's snapshots and the bytes they take.
func (m *Manager) snapshotUsage(id string) (int, int64) {
	ents, err := os.ReadDir(m.snapRoot(id))
	if err != nil {
		return 0, 0
	}
	n, total := 0, int64(0)
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		n++
		total += m.snapshotBytes(filepath.Join(m.snapRoot(id), e.Name()))
	}
	return n, total
}

// cleanSnapshotTemps removes what killed snapshot, reset and fork calls
// left behind. The caller holds the workspace's lifecycle lock, so no live
// call owns them.
func (m *Manager) cleanSnapshotTemps(id string) {
	if ents, err := os.ReadDir(m.snapRoot(id)); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				os.RemoveAll(filepath.Join(m.snapRoot(id), e.Name()))
			}
		}
	}
	os.Remove(filepath.Join(m.dir(id), "disk.ext4.next"))
	if ents, err := os.ReadDir(m.dir(id)); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".disk.ext4.next.tmp-") {
				os.Remove(filepath.Join(m.dir(id), e.Name()))
			}
		}
	}
}

// diskCopy says how copyDisk went.
type diskCopy struct {
	res      *sparse.Result
	running  bool
	frozenMS int64
}

// copyDisk copies rec's writable disk to dst (which must not exist),
// whole or not at all. A running guest's file system is frozen for the
// copy, and thawed whatever happens.
func (m *Manager) copyDisk(ctx context.Context, rec *record, dst string, mode os.FileMode) (*diskCopy, error) {
	out := &diskCopy{}
	var fr *guest.Frozen
	vs := m.vmState(rec.ID)
	if vs.state == api.StateError && vs.status != nil && vs.status.VMMPID > 0 && recordedAlive(vs.status.VMM(), m.dir(rec.ID)) {
		// A VMM without its supervisor still writes the disk, and nothing
		// can freeze it.
		return nil, fmt.Errorf("workspace %s: %s: stop it first: %w", rec.Name, vs.err, errdefs.ErrFailedPrecondition)
	}
	if vs.state == api.StateRunning {
		out.running = true
		c := &guest.Client{Socket: vs.status.AgentSocket}
		var err error
		if fr, err = c.Freeze(ctx, snapshotFreezeTimeout); err != nil {
			return nil, fmt.Errorf("make the guest's file system consistent for the copy: %w", err)
		}
		defer fr.Close() // thaws if we return before Thaw
	}
	res, err := sparse.CopyFile(ctx, filepath.Join(m.dir(rec.ID), "disk.ext4"), dst, sparse.Options{Mode: mode, Free: snapshotFree})
	if fr != nil {
		fres, terr := fr.Thaw()
		if fres != nil {
			out.frozenMS = fres.FrozenMS
		}
		if err == nil && terr != nil {
			os.Remove(dst)
			err = terr
		}
	}
	if err != nil {
		return nil, err
	}
	out.res = res
	return out, nil
}

// takeSnapshot records snapshot name of rec (the caller holds its
// lifecycle lock).
func (m *Manager) takeSnapshot(ctx context.Context, rec *record, name string) (*api.Snapshot, error) {
	start := time.Now()
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
	dc, err := m.copyDisk(ctx, rec, filepath.Join(tmp, "disk.ext4"), 0o400)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s of %s: %w", name, rec.Name, err)
	}
	s := &api.Snapshot{
		Name: name, Workspace: rec.ID, Kind: api.SnapshotDisk, CreatedAt: start.UTC(), Parent: rec.Parent,
		Running: dc.running, Method: dc.res.Method, FrozenMS: dc.frozenMS, SizeBytes: dc.res.Allocated,
		Restore: api.SnapshotRestore{Backend: rec.Backend, Image: rec.Image, KernelVersion: rec.KernelVersion, DiskSizeBytes: rec.DiskSizeBytes},
	}
	if n, err := sparse.Allocated(filepath.Join(tmp, "disk.ext4")); err == nil {
		s.SizeBytes = n
	}
	s.DurationMS = time.Since(start).Milliseconds()
	if err := atomicfile.WriteJSON(filepath.Join(tmp, "snapshot.json"), s, 0o400); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", name, err)
	}
	ok = true
	syncDir(m.snapRoot(rec.ID))
	m.log.Info("snapshot taken", "workspace", rec.ID, "name", name, "method", s.Method, "bytes", s.SizeBytes, "ms", s.DurationMS, "frozen_ms", s.FrozenMS)
	return s, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// SnapshotCreate takes a disk snapshot called name of a running or stopped
// workspace. A running guest's file system is frozen for the copy only;
// its commands keep running.
func (m *Manager) SnapshotCreate(ctx context.Context, ref, name string) (*api.Snapshot, error) {
	return m.SnapshotCreateWith(ctx, ref, name, SnapshotOptions{})
}

// SnapshotOptions configure SnapshotCreateWith.
type SnapshotOptions struct {
	// Memory also saves the running VM's memory and device state (see
	// memsnap.go).
	Memory bool
}

// SnapshotCreateWith is SnapshotCreate with options.
func (m *Manager) SnapshotCreateWith(ctx context.Context, ref, name string, o SnapshotOptions) (*api.Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return nil, err
	}
	if name == api.BaselineSnapshot {
		return nil, errdefs.Arg("name", "%q is the snapshot every workspace gets at create: pick another name", name)
	}
	l, err := m.beginLifecycle(ctx, ref, "snapshot")
	if err != nil {
		return nil, err
	}
	defer l.release()
	if !l.rec.Ready {
		return nil, notReady(l.rec)
	}
	if o.Memory {
		return m.takeMemorySnapshot(ctx, l.rec, name)
	}
	return m.takeSnapshot(ctx, l.rec, name)
}

func notReady(rec *record) error {
	return fmt.Errorf("workspace %s: its create did not finish: delete it (with force) and create it again: %w", rec.Name, errdefs.ErrFailedPrecondition)
}

// SnapshotList returns a workspace's snapshots, oldest first, and the
// bytes they take.
func (m *Manager) SnapshotList(ctx context.Context, ref string) (*api.SnapshotList, error) {
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	l, err := m.listSnapshots(rec.ID)
	if err != nil {
		return nil, err
	}
	out := &api.SnapshotList{Snapshots: l}
	if out.Snapshots == nil {
		out.Snapshots = []api.Snapshot{}
	}
	_, out.TotalBytes = m.snapshotUsage(rec.ID)
	return out, nil
}

// SnapshotShow returns one snapshot.
func (m *Manager) SnapshotShow(ctx context.Context, ref, name string) (*api.Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return nil, err
	}
	rec, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	return m.findSnapshot(rec, name)
}

// SnapshotRemove deletes a snapshot. The baseline stays (reset needs it).
func (m *Manager) SnapshotRemove(ctx context.Context, ref, name string) (*api.Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return nil, err
	}
	if name == api.BaselineSnapshot {
		return nil, errdefs.Arg("name", "the baseline snapshot goes only with its workspace: a reset to baseline needs it")
	}
	l, err := m.beginLifecycle(ctx, ref, "snapshot rm")
	if err != nil {
		return nil, err
	}
	defer l.release()
	s, err := m.findSnapshot(l.rec, name)
	if err != nil {
		return nil, err
	}
	// Renamed away first: a kill mid-removal leaves no half snapshot.
	gone := m.snapDir(l.rec.ID, ".rm-"+name)
	os.RemoveAll(gone)
	if err := os.Rename(m.snapDir(l.rec.ID, name), gone); err != nil {
		return nil, err
	}
	syncDir(m.snapRoot(l.rec.ID))
	if err := os.RemoveAll(gone); err != nil {
		return nil, err
	}
	return s, nil
}

// ResetOptions configure Reset.
type ResetOptions struct {
	// To is the snapshot to go back to (default "baseline").
	To string
	// Force resets even while commands or shells run: they end.
	Force bool
}

// Reset puts a workspace's whole writable disk back to a snapshot. A
// running workspace is stopped, its disk swapped (a rename: a reset killed
// half-way leaves the old disk or the new one, never a mix) and booted
// again; a stopped one stays stopped. Without Force it refuses while
// commands or shells run. The command log is kept, with an entry for the
// reset, and the diff baseline stays the one recorded at create.
func (m *Manager) Reset(ctx context.Context, ref string, o ResetOptions) (*api.Workspace, error) {
	if o.To == "" {
		o.To = api.BaselineSnapshot
	}
	if err := checkSnapshotName("to", o.To); err != nil {
		return nil, err
	}
	l, err := m.beginLifecycle(ctx, ref, "reset")
	if err != nil {
		return nil, err
	}
	defer l.release()
	rec := l.rec
	if !rec.Ready {
		return nil, notReady(rec)
	}
	snap, err := m.findSnapshot(rec, o.To)
	if err != nil {
		return nil, err
	}
	memory := snap.Kind == api.SnapshotMemory
	if snap.Kind != api.SnapshotDisk && !memory {
		return nil, fmt.Errorf("snapshot %q is a %s snapshot, which this hearth does not know: %w", o.To, snap.Kind, errdefs.ErrNotImplemented)
	}
	if memory {
		if err := m.checkRestorable(ctx, rec, fmt.Sprintf("snapshot %q", o.To), snap.Restore); err != nil {
			return nil, err
		}
	}
	if snap.Restore.Image != "" && snap.Restore.Image != rec.Image {
		return nil, fmt.Errorf("snapshot %q was taken on image %s, the workspace runs %s: %w", o.To, snap.Restore.Image, rec.Image, errdefs.ErrFailedPrecondition)
	}
	vs := m.vmState(rec.ID)
	running := vs.state == api.StateRunning
	if running && !o.Force {
		if busy := m.busyWork(ctx, rec, vs); len(busy) > 0 {
			return nil, fmt.Errorf("reset %s: %s: a reset ends them; wait for them, or reset with force: %w",
				rec.Name, strings.Join(busy, "; "), errdefs.ErrFailedPrecondition)
		}
	}
	var preempt func()
	if o.Force {
		preempt = func() { m.forceStop(rec.ID) }
	}
	if err := l.drain(ctx, preempt); err != nil {
		return nil, err
	}
	m.cleanSnapshotTemps(rec.ID)
	// The copy is made while the VM still runs: only the stop, the rename
	// and the boot happen with the workspace down.
	disk := filepath.Join(m.dir(rec.ID), "disk.ext4")
	next := disk + ".next"
	if _, err := sparse.CopyFile(ctx, filepath.Join(m.snapDir(rec.ID, o.To), "disk.ext4"), next, sparse.Options{Mode: 0o600, Free: snapshotFree}); err != nil {
		return nil, fmt.Errorf("reset %s to %s: %w", rec.Name, o.To, err)
	}
	defer os.Remove(next) // gone already once renamed
	// The VM's disk is about to be replaced whole, so nothing on it needs
	// flushing: the VM is killed, not shut down (a reset costs a boot, not
	// a shutdown and a boot).
	m.forceStop(rec.ID)
	if err := os.Rename(next, disk); err != nil {
		return nil, fmt.Errorf("reset %s: swap the disk: %w", rec.Name, err)
	}
	syncDir(m.dir(rec.ID))
	// A suspended state belongs to the disk that was just replaced.
	m.discardSuspend(rec.ID)
	rec.Parent = o.To
	if err := m.writeRecord(rec); err != nil {
		return nil, err
	}
	m.logReset(rec, snap)
	if memory {
		// Running or not before, the workspace resumes the snapshot's
		// processes.
		sdir := m.snapDir(rec.ID, o.To)
		if err := m.placeMemory(ctx, rec, filepath.Join(sdir, supervisor.MemoryFile), false); err != nil {
			return nil, fmt.Errorf("reset %s to %s: %w", rec.Name, o.To, err)
		}
		if _, err := m.startRestore(ctx, rec, filepath.Join(sdir, supervisor.StateFile)); err != nil {
			return nil, fmt.Errorf("reset %s: the disk is back to %s, but its memory did not resume: %w", rec.Name, o.To, err)
		}
		return m.info(rec), nil
	}
	if running {
		if _, err := m.start(ctx, rec, rec.Backend); err != nil {
			return nil, fmt.Errorf("reset %s: the disk is back to %s, but the VM did not boot again: %w", rec.Name, o.To, err)
		}
	}
	return m.info(rec), nil
}

// busyWork names what a reset of a running workspace would end: running
// commands, open shells and running services.
func (m *Manager) busyWork(ctx context.Context, rec *record, vs vmState) []string {
	var busy []string
	if cs, err := m.commandLog(rec.ID).List(0); err == nil {
		var ids []string
		for _, c := range cs {
			if c.Status == api.CommandRunning {
				ids = append(ids, c.ID)
			}
		}
		if len(ids) > 0 {
			busy = append(busy, fmt.Sprintf("%d command(s) running (%s)", len(ids), strings.Join(ids, ", ")))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &guest.Client{Socket: vs.status.AgentSocket}
	if ss, err := c.ShellList(cctx); err == nil {
		var ids []string
		for _, s := range ss {
			if s.State == "running" {
				ids = append(ids, s.ID)
			}
		}
		if len(ids) > 0 {
			busy = append(busy, fmt.Sprintf("%d shell(s) open (%s)", len(ids), strings.Join(ids, ", ")))
		}
	}
	if ss, err := c.ServiceList(cctx); err == nil {
		var names []string
		for _, s := range ss {
			if s.PID > 0 || s.State == guestproto.ServiceReady || s.State == guestproto.ServiceUnready {
				names = append(names, s.Name)
			}
		}
		if len(names) > 0 {
			busy = append(busy, fmt.Sprintf("%d service(s) running (%s; they start again after the reset)", len(names), strings.Join(names, ", ")))
		}
	}
	return busy
}

// logReset records a reset in the command log, as a finished entry.
func (m *Manager) logReset(rec *record, snap *api.Snapshot) {
	run, err := m.commandLog(rec.ID).Begin(api.Command{Shell: "# hearth: reset to snapshot " + snap.Name}, cmdlog.Self())
	if err != nil {
		m.log.Warn("command log: record the reset", "workspace", rec.ID, "err", err)
		return
	}
	zero := 0
	c := run.Cmd
	c.Status, c.Reason, c.ExitCode = api.CommandFinished, api.ReasonExited, &zero
	c.DurationMS = time.Since(c.StartedAt).Milliseconds()
	c.Message = fmt.Sprintf("reset: the workspace's disk was put back to snapshot %q (taken %s); what ran before was ended",
		snap.Name, snap.CreatedAt.Format(time.RFC3339))
	if err := run.End(); err != nil {
		m.log.Warn("command log: record the reset", "workspace", rec.ID, "err", err)
	}
}

// ForkOptions configure Fork.
type ForkOptions struct {
	// Name of the new workspace; with Count > 1 they are Name-1 … Name-N.
	Name string
	// From is the parent's snapshot to fork; empty: its disk now.
	From  string
	Count int
	// Rebaseline records the forks' own diff baseline (and baseline
	// snapshot) at their first boot; by default they keep the parent's.
	Rebaseline bool
}

// Fork makes new workspaces from a workspace's snapshot, or from its disk
// as it is now (a consistent copy; the parent keeps running). Each fork
// has its own id, disk, hostname (its name) and machine-id (new at its
// first boot), and boots. Its diff baseline, and the snapshot a reset to
// "baseline" goes back to, are its parent's unless Rebaseline.
func (m *Manager) Fork(ctx context.Context, ref string, o ForkOptions) ([]api.Workspace, error) {
	if o.Name == "" {
		return nil, errdefs.Arg("name", "a fork needs a name")
	}
	if o.Count == 0 {
		o.Count = 1
	}
	if o.Count < 1 || o.Count > MaxForkCount {
		return nil, errdefs.Arg("count", "%d: want 1 to %d", o.Count, MaxForkCount)
	}
	names := []string{o.Name}
	if o.Count > 1 {
		names = names[:0]
		for i := 1; i <= o.Count; i++ {
			names = append(names, fmt.Sprintf("%s-%d", o.Name, i))
		}
	}
	for _, n := range names {
		if !nameRE.MatchString(n) || strings.HasPrefix(n, "ws-") {
			return nil, errdefs.Arg("name", "workspace name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit, and not \"ws-\"", n)
		}
	}
	if o.From != "" {
		if err := checkSnapshotName("from_snapshot", o.From); err != nil {
			return nil, err
		}
	}
	l, err := m.beginLifecycle(ctx, ref, "fork")
	if err != nil {
		return nil, err
	}
	// The parent is held only until the fork's source is in hand (a link
	// to the snapshot's disk, or a consistent copy of the disk now), not
	// through the forks' boots.
	held := true
	defer func() {
		if held {
			l.release()
		}
	}()
	parent := l.rec
	if !parent.Ready {
		return nil, notReady(parent)
	}
	if rs, err := m.records(); err == nil {
		for _, r := range rs {
			for _, n := range names {
				if r.Name == n && r.Ready {
					return nil, errdefs.Mark(fmt.Errorf("a workspace named %q already exists (%s): pick another name", n, r.ID), errdefs.ErrAlreadyExists)
				}
			}
		}
	}
	m.cleanSnapshotTemps(parent.ID)
	m.cleanForkTemps()
	// The source lives in a directory of this call, outside the parent's
	// (whose temporaries the parent's next operation removes).
	tmp := filepath.Join(m.wsRoot(), fmt.Sprintf(".fork-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "disk.ext4")
	var origin string
	memory := false
	if o.From != "" {
		s, err := m.findSnapshot(parent, o.From)
		if err != nil {
			return nil, err
		}
		if s.Kind != api.SnapshotDisk && s.Kind != api.SnapshotMemory {
			return nil, fmt.Errorf("snapshot %q is a %s snapshot, which this hearth does not know: %w", o.From, s.Kind, errdefs.ErrNotImplemented)
		}
		files := []string{"disk.ext4"}
		if s.Kind == api.SnapshotMemory {
			if err := m.checkRestorable(ctx, parent, fmt.Sprintf("snapshot %q", o.From), s.Restore); err != nil {
				return nil, err
			}
			files = append(files, supervisor.MemoryFile, supervisor.StateFile)
			memory = true
		}
		// A snapshot is never written: links keep it for this fork even
		// if it is removed meanwhile.
		for _, f := range files {
			if err := os.Link(filepath.Join(m.snapDir(parent.ID, o.From), f), filepath.Join(tmp, f)); err != nil {
				return nil, fmt.Errorf("fork %s: %w", parent.Name, err)
			}
		}
		origin = parent.ID + "/" + o.From
	} else {
		// One consistent copy of the disk as it is now, which every fork
		// copies.
		if _, err := m.copyDisk(ctx, parent, src, 0o400); err != nil {
			return nil, fmt.Errorf("fork %s: %w", parent.Name, err)
		}
		origin = parent.ID + "/@" + time.Now().UTC().Format(time.RFC3339)
	}
	parentCopy := *parent
	parent = &parentCopy
	held = false
	l.release()
	var out []api.Workspace
	for _, n := range names {
		w, err := m.forkOne(ctx, parent, n, src, origin, o.Rebaseline, memory)
		if err != nil {
			if len(out) > 0 {
				done := make([]string, len(out))
				for i, w := range out {
					done[i] = w.Name
				}
				err = fmt.Errorf("%w (forks made before it: %s)", err, strings.Join(done, ", "))
			}
			return out, err
		}
		out = append(out, *w)
	}
	return out, nil
}

// forkOne makes one fork of parent from the disk file src and boots it;
// with memory, it resumes the memory saved beside src (memory.ram, state)
// as a new machine (new machine-id and hostname).
func (m *Manager) forkOne(ctx context.Context, parent *record, name, src, origin string, rebaseline, memory bool) (_ *api.Workspace, err error) {
	unlock, err := lock(ctx, filepath.Join(m.wsRoot(), ".lock"))
	if err != nil {
		return nil, err
	}
	rs, err := m.records()
	if err != nil {
		unlock()
		return nil, err
	}
	for _, r := range rs {
		if r.Name != name {
			continue
		}
		if !r.Ready {
			gone, err := m.reclaimAbandoned(r)
			if err != nil {
				unlock()
				return nil, err
			}
			if gone {
				continue
			}
		}
		unlock()
		return nil, errdefs.Mark(fmt.Errorf("a workspace named %q already exists (%s): pick another name", name, r.ID), errdefs.ErrAlreadyExists)
	}
	id := newID()
	dir := m.dir(id)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		unlock()
		return nil, err
	}
	os.MkdirAll(m.logDir(id), 0o700)
	rec := &record{ID: id, Name: name, Image: parent.Image, Backend: parent.Backend, CreatedAt: time.Now().UTC(),
		CPUs: parent.CPUs, MemoryMiB: parent.MemoryMiB, DiskSizeBytes: parent.DiskSizeBytes, Seed: parent.Seed,
		KernelVersion: parent.KernelVersion, Parent: origin, NetLink: parent.NetLink}
	held, err := m.lockNew(rec, "fork")
	if err != nil {
		unlock()
		os.RemoveAll(dir)
		return nil, err
	}
	err = m.writeRecord(rec)
	unlock()
	if err != nil {
		os.RemoveAll(dir)
		held.release()
		return nil, err
	}
	defer func() {
		if err != nil {
			m.forceStop(id)
			os.RemoveAll(dir)
		}
		held.release()
	}()
	pdir := m.dir(parent.ID)
	if memory {
		// A resumed VM needs the devices it was saved with: the parent's
		// network device comes with its policy.
		if b, err := os.ReadFile(m.networkPath(parent.ID)); err == nil {
			if err := os.WriteFile(m.networkPath(id), b, 0o600); err != nil {
				return nil, fmt.Errorf("fork %s: network policy: %w", name, err)
			}
		}
	}
	for _, f := range []string{"base.ext4", "vmlinux"} {
		if err := os.Link(filepath.Join(pdir, f), filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("pin the parent's image file: %w", err)
		}
	}
	if _, err := sparse.CopyFile(ctx, src, filepath.Join(dir, "disk.ext4"), sparse.Options{Mode: 0o600, Free: snapshotFree}); err != nil {
		return nil, fmt.Errorf("fork %s: copy the disk: %w", name, err)
	}
	if !rebaseline {
		if err := m.inheritBaseline(parent, rec); err != nil {
			return nil, fmt.Errorf("fork %s: keep the parent's baseline: %w", name, err)
		}
	}
	if memory {
		sdir := filepath.Dir(src)
		if err := m.placeMemory(ctx, rec, filepath.Join(sdir, supervisor.MemoryFile), false); err != nil {
			return nil, fmt.Errorf("fork %s: %w", name, err)
		}
		if _, err := m.startRestore(ctx, rec, filepath.Join(sdir, supervisor.StateFile)); err != nil {
			return nil, err
		}
	} else if _, err := m.start(ctx, rec, rec.Backend); err != nil {
		return nil, err
	}
	if rebaseline {
		if err := m.recordBaseline(ctx, rec); err != nil {
			return nil, fmt.Errorf("record baseline: %w", err)
		}
		if _, err := m.takeSnapshot(ctx, rec, api.BaselineSnapshot); err != nil {
			return nil, err
		}
	}
	rec.Ready = true
	if err := m.writeRecord(rec); err != nil {
		return nil, err
	}
	return m.info(rec), nil
}

// cleanForkTemps removes the source copies of fork calls whose process
// is gone (killed mid-fork).
func (m *Manager) cleanForkTemps() {
	ents, _ := filepath.Glob(filepath.Join(m.wsRoot(), ".fork-*"))
	for _, p := range ents {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(p), ".fork-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if pid != os.Getpid() && !pidAlive(pid, "") {
			os.RemoveAll(p)
		}
	}
}

// inheritBaseline gives a fork its parent's diff baseline and baseline
// snapshot. Both are immutable, so they are hard links, not copies.
func (m *Manager) inheritBaseline(parent, rec *record) error {
	if err := linkTree(m.baselineDir(parent.ID), m.baselineDir(rec.ID)); err != nil {
		return err
	}
	ps, err := m.readSnapshot(parent.ID, api.BaselineSnapshot)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil // a parent from before baseline snapshots
	}
	if err != nil {
		return err
	}
	dst := m.snapDir(rec.ID, api.BaselineSnapshot)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(m.snapDir(parent.ID, api.BaselineSnapshot), "disk.ext4"), filepath.Join(dst, "disk.ext4")); err != nil {
		return err
	}
	ps.Workspace = rec.ID
	ps.Parent = parent.ID + "/" + api.BaselineSnapshot
	return atomicfile.WriteJSON(filepath.Join(dst, "snapshot.json"), ps, 0o400)
}

// linkTree hard-links the regular files of src (one level) into dst.
func linkTree(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
