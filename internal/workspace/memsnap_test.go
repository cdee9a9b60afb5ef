package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthvm/hearth/api"
	"github.com/hearthvm/hearth/internal/atomicfile"
	"github.com/hearthvm/hearth/internal/errdefs"
	"github.com/hearthvm/hearth/internal/supervisor"
	"github.com/hearthvm/hearth/internal/vmm"
)

// fakeMemorySnapshot writes a memory snapshot of rec as a save would, with
// restore needs r.
func fakeMemorySnapshot(t *testing.T, m *Manager, rec *record, name string, r api.SnapshotRestore) {
	t.Helper()
	dir := m.snapDir(rec.ID, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"disk.ext4", supervisor.MemoryFile, supervisor.StateFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("saved "+f), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	s := api.Snapshot{Name: name, Workspace: rec.ID, Kind: api.SnapshotMemory, CreatedAt: time.Now().UTC(), Running: true, Restore: r}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "snapshot.json"), s, 0o400); err != nil {
		t.Fatal(err)
	}
}

// TestMemorySnapshotIncompatible: a memory snapshot (or a suspended
// state) saved under another QEMU, accelerator, CPU model, CPU count or
// memory size is refused before anything changes, naming what differs.
func TestMemorySnapshotIncompatible(t *testing.T) {
	host := vmm.Compat{Backend: "qemu", Version: "7.2.22", Accel: "tcg", CPUModel: "max", CPUs: 1, MemoryMiB: 256}
	defer func(f func(context.Context, *Manager, *record) (vmm.Compat, error)) { hostCompatFunc = f }(hostCompatFunc)
	hostCompatFunc = func(context.Context, *Manager, *record) (vmm.Compat, error) { return host, nil }
	saved := api.SnapshotRestore{Backend: "qemu", Image: "debian-12", VMMVersion: "7.2.22", Accel: "tcg", CPUModel: "max", CPUs: 1, MemoryMiB: 256}
	for _, tc := range []struct {
		name string
		edit func(*api.SnapshotRestore)
		want string
	}{
		{"qemu version", func(r *api.SnapshotRestore) { r.VMMVersion = "8.2.1" }, "VMM version 8.2.1, here 7.2.22"},
		{"accelerator", func(r *api.SnapshotRestore) { r.Accel = "kvm" }, "accelerator kvm, here tcg"},
		{"cpu model", func(r *api.SnapshotRestore) { r.CPUModel = "host:AMD EPYC" }, "CPU model host:AMD EPYC, here max"},
		{"memory", func(r *api.SnapshotRestore) { r.MemoryMiB = 512 }, "memory 512 MiB, here 256 MiB"},
		{"cpus", func(r *api.SnapshotRestore) { r.CPUs = 2 }, "CPUs 2, here 1"},
		{"backend", func(r *api.SnapshotRestore) { r.Backend = "firecracker" }, "backend firecracker, here qemu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testManager(t, time.Second, time.Second)
			rec := stoppedWorkspace(t, m, "w", "live")
			r := saved
			tc.edit(&r)
			fakeMemorySnapshot(t, m, rec, "m1", r)
			ctx := context.Background()
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "disk snapshot") {
					t.Fatalf("%s: got %v, want a failed precondition naming %q and what to do", op, err, tc.want)
				}
			}
			_, err := m.Reset(ctx, "w", ResetOptions{To: "m1", Force: true})
			check("reset", err)
			if got := readDisk(t, m, rec); got != "live" {
				t.Fatalf("a refused reset changed the disk: %q", got)
			}
			_, err = m.Fork(ctx, "w", ForkOptions{Name: "f", From: "m1"})
			check("fork", err)
			if ws, _ := m.List(ctx); len(ws) != 1 {
				t.Fatalf("a refused fork left %d workspaces", len(ws))
			}
			// The same check guards a suspended workspace's start.
			if err := os.MkdirAll(m.suspendDir(rec.ID), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := atomicfile.WriteJSON(filepath.Join(m.suspendDir(rec.ID), "suspend.json"), suspendMeta{SuspendedAt: time.Now(), Restore: r}, 0o600); err != nil {
				t.Fatal(err)
			}
			if w, _ := m.Get(ctx, "w"); !w.Suspended {
				t.Fatal("workspace show does not say suspended")
			}
			_, err = m.Start(ctx, "w")
			check("start of a suspended workspace", err)
		})
	}
}

// TestMemorySnapshotNeedsRunningVM: a memory snapshot of a stopped
// workspace, or of one with named data disks, says why not.
func TestMemorySnapshotRefusals(t *testing.T) {
	m := testManager(t, time.Second, time.Second)
	rec := stoppedWorkspace(t, m, "w", "live")
	ctx := context.Background()
	_, err := m.SnapshotCreateWith(ctx, "w", "m1", SnapshotOptions{Memory: true})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "start it first") {
		t.Fatalf("stopped: %v", err)
	}
	rec.Disks = []wsDisk{{Disk: "data1"}}
	if why := m.memoryBlocker(rec, "memory snapshots"); !strings.Contains(why, "data1") || !strings.Contains(why, "detach") {
		t.Fatalf("disks: %q", why)
	}
	rec.Disks = nil
	rec.Secrets = []api.WorkspaceSecret{{Name: "TOKEN", Mode: "env"}}
	if why := m.memoryBlocker(rec, "memory snapshots"); !strings.Contains(why, "TOKEN") {
		t.Fatalf("env secret: %q", why)
	}
	rec.Secrets = nil
	rec.Backend = "other"
	if why := m.memoryBlocker(rec, "memory snapshots"); !strings.Contains(why, "cannot save") {
		t.Fatalf("other backend: %q", why)
	}
	if _, err := os.Stat(m.snapDir(rec.ID, "m1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused memory snapshot left a directory")
	}
}
